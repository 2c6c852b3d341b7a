//! `runtools-bench sandbox`: the namespace sandbox backend measured on this machine with the real
//! [`NamespaceBackend`] and the built-in `base` template — create-to-first-exec, exec round trip,
//! pause and resume, host memory per idle sandbox — and, side by side in the same run, `bwrap` and
//! gVisor's `runsc` starting `true` in the same rootfs. Prints one Markdown table with the issue's
//! targets beside the figures.
//!
//! Everything it makes lives under one scratch directory (`--state-dir`, else a temp dir) and one
//! cgroup parent of its own (`runtools-bench-<ulid>`), so it never touches other sandboxes; every
//! sandbox is deleted and the cgroup parent removed afterwards, also when a measurement fails.
//!
//! - [`namespace`]: the namespace backend's latencies;
//! - [`memory`]: its host memory per idle sandbox;
//! - [`external`]: `bwrap` and `runsc`.

mod external;
mod memory;
mod namespace;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use runtools_protocol::SandboxId;
use runtools_sandbox::{NamespaceBackend, NamespaceConfig, Templates};

use crate::table::{self, Align};

/// Where `scripts/build-envd` puts envd, relative to the workspace root.
const ENVD_DEFAULT: &str = "target/envd/x86_64-unknown-linux-gnu/release/envd";

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Sandboxes created one after another for the create-to-first-exec distribution.
    #[arg(long, default_value_t = 200)]
    count: usize,
    /// `true` runs on one sandbox for the exec round trip.
    #[arg(long, default_value_t = 500)]
    execs: usize,
    /// Pause + resume cycles on one sandbox.
    #[arg(long, default_value_t = 100)]
    pause_cycles: usize,
    /// Idle sandboxes kept alive at once for the memory figures.
    #[arg(long, default_value_t = 50)]
    idle: usize,
    /// Rounds of `--idle` sandboxes for the memory figures (the host's memory moves with
    /// everything else the machine does; the median of the rounds is reported).
    #[arg(long, default_value_t = 3)]
    memory_rounds: usize,
    /// Runs of `bwrap … true` and of `runsc run` (each).
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// The static envd binary [default: `RUNTOOLS_ENVD_BINARY`, else
    /// `target/envd/x86_64-unknown-linux-gnu/release/envd`, which `scripts/build-envd` builds].
    #[arg(long, env = "RUNTOOLS_ENVD_BINARY")]
    envd: Option<PathBuf>,
    /// A directory for the templates, the sandboxes' state and runsc's bundle [default: a temp dir,
    /// removed afterwards].
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Row {
    pub measurement: String,
    pub backend: String,
    pub n: usize,
    pub p50: String,
    pub p99: String,
    pub target: String,
    pub notes: String,
}

impl Row {
    /// A latency row from `samples`, with `target` (a p50 bound) checked when there is one.
    pub fn latency(measurement: &str, backend: &str, samples: &Samples, target: Option<Duration>, notes: &str) -> Row {
        let target = match (target, samples.p50()) {
            (Some(bound), Some(p50)) => {
                let verdict = if p50 < bound { "met" } else { "MISSED" };
                format!("p50 < {} ms: {verdict}", bound.as_millis())
            }
            _ => "-".into(),
        };
        Row {
            measurement: measurement.into(),
            backend: backend.into(),
            n: samples.len(),
            p50: samples.p50().map_or_else(|| "-".into(), ms),
            p99: samples.p99().map_or_else(|| "-".into(), ms),
            target,
            notes: notes.into(),
        }
    }

    /// A row that could not be measured, saying why.
    pub fn unavailable(measurement: &str, backend: &str, why: &str) -> Row {
        Row {
            measurement: measurement.into(),
            backend: backend.into(),
            n: 0,
            p50: "-".into(),
            p99: "-".into(),
            target: "-".into(),
            notes: why.replace('|', "\\|"),
        }
    }
}

/// Durations of one measurement; percentiles by nearest rank.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, sample: Duration) {
        self.0.push(sample);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn p50(&self) -> Option<Duration> {
        self.quantile(0.50)
    }

    pub fn p99(&self) -> Option<Duration> {
        self.quantile(0.99)
    }

    fn quantile(&self, q: f64) -> Option<Duration> {
        let mut sorted = self.0.clone();
        sorted.sort();
        let rank = ((sorted.len() as f64 * q).ceil() as usize).max(1);
        sorted.get(rank - 1).copied()
    }
}

/// A duration as milliseconds with two decimals and the unit.
pub fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// Bytes as MiB with two decimals.
pub fn mib(bytes: f64) -> String {
    format!("{:.2} MiB", bytes / 1048576.0)
}

pub fn run(args: &SandboxArgs) -> anyhow::Result<()> {
    for (name, value) in [
        ("--count", args.count),
        ("--execs", args.execs),
        ("--pause-cycles", args.pause_cycles),
        ("--idle", args.idle),
        ("--memory-rounds", args.memory_rounds),
        ("--runs", args.runs),
    ] {
        ensure!(value > 0, "{name} must be at least 1");
    }
    let envd = envd_binary(args.envd.as_deref())?;
    let temp;
    let scratch = match &args.state_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("runtools-bench-sandbox-")
                .tempdir()
                .context("cannot create a temp dir")?;
            temp.path().to_owned()
        }
    };
    let templates = Templates::open(scratch.join("templates")).context("cannot open the templates directory")?;
    let base = templates.get("base").context("cannot build the base template")?;
    let cgroup_parent = format!("runtools-bench-{}", SandboxId::new().ulid().to_string().to_ascii_lowercase());
    let mut config = NamespaceConfig::new(scratch.join("sandboxes"), &envd);
    config.cgroup_parent = cgroup_parent.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the benchmark's runtime")?;

    let backend = match NamespaceBackend::new(config) {
        Ok(backend) => backend,
        Err(error) => {
            remove_cgroup_parent(&cgroup_parent);
            return Err(error).context("cannot set up the namespace backend (it needs root, or delegated cgroups)");
        }
    };
    let plan = namespace::Plan {
        count: args.count,
        execs: args.execs,
        pause_cycles: args.pause_cycles,
        idle: args.idle,
        memory_rounds: args.memory_rounds,
    };
    let measured = runtime.block_on(namespace::measure(&backend, &base, &plan));
    let cleaned = runtime.block_on(namespace::delete_all(&backend));
    drop(backend);
    let leftover = remove_cgroup_parent(&cgroup_parent);
    let (mut rows, notes) = measured?;
    cleaned.context("cannot delete the benchmark's sandboxes")?;
    if !leftover.is_empty() {
        bail!("cgroup directories left behind: {}", leftover.join(", "));
    }

    eprintln!("==> host, bwrap: {} runs of `true` each", args.runs);
    rows.push(runtime.block_on(external::host(args.runs)));
    rows.push(runtime.block_on(external::bwrap(&base, args.runs)));
    eprintln!("==> runsc: {} runs of `true`", args.runs);
    rows.push(runtime.block_on(external::runsc(&base, args.runs, &scratch.join("runsc"))));

    print_report(args, &envd, &base, &rows, &notes);
    Ok(())
}

/// `--envd`, `RUNTOOLS_ENVD_BINARY` (both via clap), else the path `scripts/build-envd` builds,
/// taken from the current directory or from the target dir this executable lives in.
fn envd_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        ensure!(path.is_file(), "no envd binary at {} (build one with scripts/build-envd)", path.display());
        return Ok(path.to_owned());
    }
    let mut candidates = vec![PathBuf::from(ENVD_DEFAULT)];
    // `target/release/runtools-bench` → `target/envd/…`.
    if let Some(target) = std::env::current_exe().ok().and_then(|exe| exe.parent()?.parent().map(Path::to_owned)) {
        candidates.push(target.join(ENVD_DEFAULT.trim_start_matches("target/")));
    }
    match candidates.iter().find(|path| path.is_file()) {
        Some(path) => Ok(path.clone()),
        None => bail!(
            "no envd binary at {ENVD_DEFAULT}: build it with `scripts/build-envd` and pass --envd (or set RUNTOOLS_ENVD_BINARY)"
        ),
    }
}

/// Removes `<hierarchy>/<parent>` in every cgroup hierarchy (v1 controllers, the v2 mount, or
/// the v2 root); returns what could not be removed.
fn remove_cgroup_parent(parent: &str) -> Vec<String> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(parent)];
    if let Ok(entries) = std::fs::read_dir(root) {
        dirs.extend(entries.flatten().map(|entry| entry.path().join(parent)));
    }
    let mut leftover = Vec::new();
    for dir in dirs {
        if dir.is_dir()
            && let Err(error) = std::fs::remove_dir(&dir)
        {
            leftover.push(format!("{} ({error})", dir.display()));
        }
    }
    leftover
}

fn print_report(args: &SandboxArgs, envd: &Path, base: &runtools_sandbox::Template, rows: &[Row], notes: &[String]) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let layers: Vec<String> = base.host_layers.iter().map(|layer| layer.display().to_string()).collect();
    let rootfs =
        format!("the `base` template: {} plus the host's {} read-only", base.rootfs.display(), layers.join(", "));
    println!();
    println!("Sandboxes on this machine ({cores} cores, kernel {}), one run", kernel_release());
    println!();
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.measurement.clone(),
                row.backend.clone(),
                row.n.to_string(),
                row.p50.clone(),
                row.p99.clone(),
                row.target.clone(),
                row.notes.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::markdown_aligned(
            &["measurement", "backend", "n", "p50", "p99", "target (issue 3)", "notes"],
            &[Align::Left, Align::Left, Align::Right, Align::Right, Align::Right, Align::Left, Align::Left],
            &table_rows
        )
    );
    println!();
    println!("- rootfs, the same for namespace, bwrap and runsc: {rootfs}.");
    println!(
        "  namespace: an overlay with the template rootfs as the lower layer and {layers} each under its own \
         copy-on-write layer; bwrap: `--ro-bind` of the template rootfs at / and of {layers} at the same path, \
         `--proc /proc --dev /dev --unshare-all`; runsc: an OCI bundle whose root is the template rootfs \
         (read-only) with {layers} bind-mounted read-only, `--platform=ptrace --network=none`; host: the \
         host's own rootfs, no isolation (the floor: spawning a dynamically linked `true` at all).",
        layers = layers.join(", ")
    );
    println!(
        "- namespace sandboxes: envd {} as PID 1, no network, limits 1 CPU / 256 MiB / 256 pids; created \
         one at a time ({} for create-to-first-exec, one for {} exec round trips and {} pause/resume \
         cycles, {} idle at once for memory, {} rounds).",
        envd.display(),
        args.count,
        args.execs,
        args.pause_cycles,
        args.idle,
        args.memory_rounds
    );
    for note in notes {
        println!("- {note}");
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples = Samples::default();
        assert_eq!(samples.p50(), None);
        for ms in (1..=100).rev() {
            samples.push(Duration::from_millis(ms));
        }
        assert_eq!(samples.p50(), Some(Duration::from_millis(50)));
        assert_eq!(samples.p99(), Some(Duration::from_millis(99)));
        let row = Row::latency("x", "y", &samples, Some(Duration::from_millis(20)), "");
        assert_eq!(row.target, "p50 < 20 ms: MISSED");
        assert_eq!(row.p50, "50.00 ms");
    }
}
