//! `runtools-bench`: the benchmark command line. It owns argument parsing and dispatch only; each
//! benchmark lives in its own module and prints a Markdown table to stdout.
//!
//! - `http` ([`http`]): authenticated `GET /v1/me` throughput and latency against an in-process
//!   server, on SQLite and (with a URL) PostgreSQL.
//! - `startup` ([`startup`]): time from spawning the real `runtools server` binary until `/readyz`
//!   answers, on a fresh data dir and on a restart.
//! - `sandbox` ([`sandbox`]): the namespace sandbox backend (create-to-first-exec, exec round
//!   trip, pause/resume, memory per idle sandbox) beside `bwrap` and gVisor's `runsc`.
//! - `agent` ([`agent`]): the agent loop's CPU per step and memory per concurrent run against a
//!   zero-latency model server, beside Python's `openai-agents`.

// A benchmark CLI: its output is the table it prints on stdout, progress notes go to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod agent;
mod cpu;
mod http;
mod load;
mod sandbox;
mod server;
mod startup;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// RunTools benchmarks: load generators that print comparable Markdown tables.
#[derive(Debug, Parser)]
#[command(name = "runtools-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Authenticated `GET /v1/me` over HTTP/1.1 keep-alive against an in-process server.
    Http(http::HttpArgs),
    /// Time from spawning `runtools server` on an empty (then reused) data dir until `/readyz` is 200.
    Startup(startup::StartupArgs),
    /// The namespace sandbox backend beside `bwrap` and `runsc` (needs root and a static envd).
    Sandbox(sandbox::SandboxArgs),
    /// The agent loop's overhead per step and memory per concurrent run, beside `openai-agents`.
    Agent(agent::AgentArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Http(args) => http::run(args),
        Command::Startup(args) => startup::run(&args),
        Command::Sandbox(args) => sandbox::run(&args),
        Command::Agent(args) => agent::run_bench(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
