//! `runtools-model-server`: the wire-format model server as a process, for benchmarks that must
//! not share a process (or its CPU accounting) with the client under test. Every conversation
//! calls one tool `--tool-steps` times, then answers; see [`runtools_model_server::workload`].
//! Prints `listening on http://ADDR` once ready.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

fn main() -> std::process::ExitCode {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut tool_steps = 9usize;
    let mut tool = "noop".to_owned();
    let mut delay_ms = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        let parsed = match (arg.as_str(), value) {
            ("--listen", Some(value)) => {
                listen = value;
                true
            }
            ("--tool-steps", Some(value)) => value.parse().map(|v| tool_steps = v).is_ok(),
            ("--tool", Some(value)) => {
                tool = value;
                true
            }
            ("--delay-ms", Some(value)) => value.parse().map(|v| delay_ms = v).is_ok(),
            _ => false,
        };
        if !parsed {
            eprintln!("usage: runtools-model-server [--listen ADDR] [--tool-steps N] [--tool NAME] [--delay-ms MS]");
            return std::process::ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let addr = match listen.parse() {
            Ok(addr) => addr,
            Err(error) => {
                eprintln!("error: --listen {listen}: {error}");
                return std::process::ExitCode::from(2);
            }
        };
        let server = match runtools_model_server::ModelServer::start_on(addr).await {
            Ok(server) => server,
            Err(error) => {
                eprintln!("error: cannot listen on {listen}: {error}");
                return std::process::ExitCode::FAILURE;
            }
        };
        server.set_recording(false);
        server.set_responder(runtools_model_server::workload::tool_loop(
            tool_steps,
            &tool,
            Duration::from_millis(delay_ms),
        ));
        println!("listening on {}", server.url());
        let _ = tokio::signal::ctrl_c().await;
        std::process::ExitCode::SUCCESS
    })
}
