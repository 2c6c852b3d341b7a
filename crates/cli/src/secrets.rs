//! `runtools secrets set|list|rm`: an environment's secrets (use an environment key).

use std::io::Read;

use anyhow::Context;
use clap::Subcommand;
use runtools_protocol::{Secret, SecretName};

use crate::{GlobalArgs, connect, output};

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Create or replace a secret. The value is read from standard input, so it stays out of your
    /// shell history: `printf %s "$TOKEN" | runtools secrets set GITHUB_TOKEN`.
    Set {
        /// The secret's name, e.g. `OPENAI_API_KEY`.
        name: SecretName,
    },
    /// List the environment's secrets (names only; values are never shown).
    #[command(alias = "ls")]
    List,
    /// Delete a secret.
    #[command(alias = "remove")]
    Rm { name: SecretName },
}

pub async fn run(global: &GlobalArgs, command: SecretsCommand) -> anyhow::Result<()> {
    let client = connect::client(global)?;
    match command {
        SecretsCommand::Set { name } => {
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .context("cannot read the secret's value from standard input")?;
            let value = value.strip_suffix('\n').unwrap_or(&value).to_owned();
            let secret = client.put_secret(&name, value).await?;
            if global.json {
                return output::json(&secret);
            }
            println!("Stored secret {}.", secret.name);
        }
        SecretsCommand::List => {
            let secrets: Vec<Secret> = client.all("/v1/secrets", &[]).await?;
            if global.json {
                return output::json(&secrets);
            }
            let rows: Vec<Vec<String>> = secrets
                .iter()
                .map(|s| vec![s.name.to_string(), output::time(Some(s.created_at)), output::time(Some(s.updated_at))])
                .collect();
            output::table(&["NAME", "CREATED", "UPDATED"], &rows);
        }
        SecretsCommand::Rm { name } => {
            client.delete_secret(&name).await?;
            println!("Deleted secret {name}.");
        }
    }
    Ok(())
}
