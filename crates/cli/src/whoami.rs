//! `runtools whoami`: the workspace, environment and key in use.

use crate::{GlobalArgs, connect, output};

pub async fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    let me = connect::client(global)?.whoami().await?;
    if global.json {
        return output::json(&me);
    }
    println!("server:      {}", global.url);
    println!("workspace:   {} ({})", me.workspace.name, me.workspace.id);
    match &me.environment {
        Some(env) => println!("environment: {} ({})", env.kind, env.id),
        None => println!("environment: - (admin key: manages keys and environments)"),
    }
    println!("key:         {} {} ({})", me.key.redacted, me.key.name, me.key.id);
    Ok(())
}
