//! The `envd` binary: parses flags, sets up logging and a small tokio runtime, and runs
//! [`runtools_envd::server::run`] until SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use runtools_envd::server::{Config, Listen, run};

/// The RunTools in-sandbox agent: exec and files over one multiplexed connection.
#[derive(Debug, Parser)]
#[command(name = "envd", version)]
struct Args {
    /// Where to accept connections: `unix:/path/envd.sock`.
    #[arg(long)]
    listen: Listen,
    /// Directory that file operations are confined to.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Environment variable given to every process (`KEY=VALUE`; repeatable). Values on a command
    /// line are visible to every user of the host in `ps`: for secrets, set `ENVD_ENV_<KEY>=VALUE`
    /// in envd's own environment instead (the sandbox backend does).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
}

/// Prefix of envd's own environment variables that become every process's base environment.
const ENV_PREFIX: &str = "ENVD_ENV_";

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some(runtools_envd::server::EXEC_HELPER) {
        return ExitCode::from(runtools_envd::server::exec_helper(&raw[2..]));
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ENVD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let mut base_env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(key, value)| {
            let key = key.into_string().ok()?;
            Some((key.strip_prefix(ENV_PREFIX)?.to_owned(), value.into_string().ok()?))
        })
        .filter(|(key, _)| !key.is_empty())
        .collect();
    base_env.extend(args.env);
    let config = Config { root: args.root, base_env };
    match runtime.block_on(run(args.listen, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "envd failed");
            ExitCode::FAILURE
        }
    }
}
