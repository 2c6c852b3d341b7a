//! `runtools`: the one command-line entry point — it runs the server and talks to it.
//!
//! Each subcommand lives in its own file. Client commands find their server with
//! `--url`/`RUNTOOLS_URL` and their key with `--api-key`/`RUNTOOLS_API_KEY`, falling back to the
//! admin key a local server saved in its data dir.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a CLI talks to its user on stdout/stderr

mod connect;
mod init;
mod keys;
mod output;
mod sandbox;
mod secrets;
mod server;
mod validate;
mod whoami;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// RunTools: run AI agents in isolated sandboxes on your own machine.
#[derive(Debug, Parser)]
#[command(name = "runtools", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand accepts.
#[derive(Debug, clap::Args)]
struct GlobalArgs {
    /// The server to talk to.
    #[arg(long, global = true, env = "RUNTOOLS_URL", default_value = "http://127.0.0.1:7070")]
    url: String,
    /// API key to authenticate with; defaults to the admin key in the local data dir.
    #[arg(long, global = true, env = "RUNTOOLS_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The server's data directory [default: ~/.local/share/runtools].
    #[arg(long, global = true, env = "RUNTOOLS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Config file [default: ./runtools.toml when present].
    #[arg(long, global = true, env = "RUNTOOLS_CONFIG")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control-plane server.
    Server(server::ServerArgs),
    /// Scaffold a project: runtools.config.ts, agents/, templates/, tools/, package.json.
    Init(init::InitArgs),
    /// Check a project's agents (read statically) and print every problem at once.
    Validate(validate::ValidateArgs),
    /// Create, list and revoke API keys (needs the admin key).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Create and use sandboxes (needs an environment key).
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// Manage an environment's secrets (needs an environment key).
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Show which workspace, environment and key you are using.
    Whoami,
}

/// Every `RUNTOOLS_*` variable the CLI reads; others are reported as likely typos.
const KNOWN_ENV: &[&str] = &[
    "RUNTOOLS_URL",
    "RUNTOOLS_API_KEY",
    "RUNTOOLS_DATA_DIR",
    "RUNTOOLS_CONFIG",
    "RUNTOOLS_LOG",
    "RUNTOOLS_LISTEN",
    "RUNTOOLS_DATABASE_URL",
    "RUNTOOLS_SECRETS_KEY",
    "RUNTOOLS_SHUTDOWN_TIMEOUT_SECS",
    "RUNTOOLS_ENVD_BINARY",
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    for (name, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
        if name.starts_with("RUNTOOLS_") && !name.starts_with("RUNTOOLS_TEST_") && !KNOWN_ENV.contains(&name.as_str()) {
            tracing::warn!("ignoring unknown environment variable {name}");
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Server(args) => server::run(&cli.global, args).await,
        Command::Init(args) => init::run(&args),
        Command::Validate(args) => validate::run(&args, cli.global.json),
        Command::Keys(command) => keys::run(&cli.global, command).await,
        Command::Secrets(command) => secrets::run(&cli.global, command).await,
        Command::Sandbox(command) => sandbox::run(&cli.global, command).await,
        Command::Whoami => whoami::run(&cli.global).await,
    }
}

fn init_logging(cli: &Cli) {
    let default = match (&cli.command, cli.global.verbose) {
        (_, 2..) => "trace",
        (_, 1) => "debug",
        (Command::Server(_), 0) => "info",
        (_, 0) => "warn",
    };
    let filter = EnvFilter::try_from_env("RUNTOOLS_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
