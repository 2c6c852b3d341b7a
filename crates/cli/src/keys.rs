//! `runtools keys create|list|revoke`.

use clap::Subcommand;
use runtools_protocol::{ApiKey, EnvironmentKind, KeyId};

use crate::{GlobalArgs, connect, output};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for an environment and print its secret (shown only this once).
    Create {
        /// `development` (a `pk_test_` key) or `production` (an `sk_live_` key).
        #[arg(long = "env", value_name = "ENV")]
        environment: EnvironmentKind,
        /// A label to recognise the key by.
        #[arg(long)]
        name: Option<String>,
    },
    /// List every key with its prefix, last 4 characters and times.
    #[command(alias = "ls")]
    List,
    /// Revoke a key: it stops working immediately.
    Revoke {
        /// The key's id (`key_…`).
        id: KeyId,
    },
}

pub async fn run(global: &GlobalArgs, command: KeysCommand) -> anyhow::Result<()> {
    let client = connect::client(global)?;
    match command {
        KeysCommand::Create { environment, name } => {
            let created = client.create_key(environment, name).await?;
            if global.json {
                return output::json(&created);
            }
            println!("Created {} key {} ({}).", created.key.kind, created.key.id, created.key.name);
            println!("Store the secret now; it will not be shown again:\n");
            println!("    {}\n", created.secret);
        }
        KeysCommand::List => {
            let keys = client.all_keys().await?;
            if global.json {
                return output::json(&keys);
            }
            output::table(
                &["ID", "KIND", "NAME", "KEY", "CREATED", "LAST USED", "STATUS"],
                &keys.iter().map(row).collect::<Vec<_>>(),
            );
        }
        KeysCommand::Revoke { id } => {
            let key = client.revoke_key(id).await?;
            if global.json {
                return output::json(&key);
            }
            println!("Revoked {} ({}).", key.id, key.redacted);
        }
    }
    Ok(())
}

fn row(key: &ApiKey) -> Vec<String> {
    vec![
        key.id.to_string(),
        key.kind.to_string(),
        key.name.clone(),
        key.redacted.clone(),
        output::time(Some(key.created_at)),
        output::time(key.last_used_at),
        if key.revoked_at.is_some() { format!("revoked {}", output::time(key.revoked_at)) } else { "active".into() },
    ]
}
