//! Manual smoke test of the namespace backend: creates a sandbox from the base template, runs a
//! shell command in it, prints the output and the timings, and deletes it.
//!
//! ```text
//! cargo run -p runtools-sandbox --example sandbox-smoke -- <state dir> <templates dir> <envd> <cgroup parent> '<command>'
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use runtools_protocol::SandboxId;
use runtools_protocol::envd::ExecSpec;
use runtools_protocol::sandbox::NetworkMode;
use runtools_sandbox::{Backend, NamespaceBackend, NamespaceConfig, ResolvedLimits, SandboxSpec, Templates};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [state_dir, templates_dir, envd, cgroup_parent, command] = args.as_slice() else {
        eprintln!("usage: sandbox-smoke <state dir> <templates dir> <envd> <cgroup parent> '<command>'");
        return ExitCode::FAILURE;
    };
    match run(state_dir, templates_dir, envd, cgroup_parent, command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    state_dir: &str,
    templates_dir: &str,
    envd: &str,
    cgroup_parent: &str,
    command: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = NamespaceConfig::new(state_dir, envd);
    config.cgroup_parent = cgroup_parent.to_owned();
    let backend = NamespaceBackend::new(config)?;
    let base = Templates::open(templates_dir.into())?.get("base")?;
    let spec = SandboxSpec {
        id: SandboxId::new(),
        rootfs: base.rootfs,
        host_layers: base.host_layers,
        hostname: "smoke".into(),
        env: Vec::new(),
        limits: ResolvedLimits { cpu: 1.0, memory_bytes: 256 << 20, pids: 128, disk_bytes: 256 << 20 },
        network: NetworkMode::None,
        volumes: Vec::new(),
    };
    let timing = runtools_sandbox::bench::create_to_first_exec(&backend, &spec).await;
    let result = async {
        let timing = timing?;
        println!("created {} in {:?} (first exec after {:?})", spec.id, timing.create, timing.total);
        let client = runtools_envd::EnvdClient::new(backend.connect_envd(spec.id).await?);
        let output = client.run(ExecSpec { cmd: Some(command.to_owned()), ..ExecSpec::default() }, None).await?;
        print!("{}", String::from_utf8_lossy(&output.stdout));
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        println!("exit: {:?}", output.exit);
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    backend.delete(spec.id).await?;
    result
}
