//! `bwrap` and gVisor's `runsc` starting `true` in the same rootfs as the namespace sandboxes:
//! the `base` template's rootfs with the host directories it shares (its `host_layers`, `/usr` on
//! a merged-`/usr` host) bound read-only at the same paths. Each run is timed from spawn to exit.
//! A tool that is missing or fails gives a row saying why instead of failing the benchmark. The
//! same timing of `/bin/true` on the host, without isolation, is the floor under all of them.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use runtools_sandbox::Template;
use serde_json::json;
use tokio::process::Command;

use super::{Row, Samples};

const MEASUREMENT: &str = "start `true`";
/// How long one run may take before it counts as hung.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// `/bin/true` straight on the host, `runs` times: the floor under every row (spawning a
/// dynamically linked program at all).
pub async fn host(runs: usize) -> Row {
    match time_runs(runs, "coreutils", |_| Command::new("/bin/true")).await {
        Ok(samples) => {
            Row::latency(MEASUREMENT, "host, no isolation", &samples, None, "spawn to exit, the host's rootfs")
        }
        Err(error) => Row::unavailable(MEASUREMENT, "host, no isolation", &format!("not measured: {error:#}")),
    }
}

/// `bwrap --ro-bind <rootfs> / --ro-bind <layer> <layer>… --proc /proc --dev /dev --unshare-all
/// /bin/true`, `runs` times.
pub async fn bwrap(base: &Template, runs: usize) -> Row {
    let backend = "bwrap";
    let command = || {
        let mut command = Command::new("bwrap");
        command.arg("--ro-bind").arg(&base.rootfs).arg("/");
        for layer in &base.host_layers {
            command.arg("--ro-bind").arg(layer).arg(layer);
        }
        command.args(["--proc", "/proc", "--dev", "/dev", "--unshare-all", "/bin/true"]);
        command
    };
    match time_runs(runs, "bubblewrap", |_| command()).await {
        Ok(samples) => Row::latency(
            MEASUREMENT,
            backend,
            &samples,
            None,
            "spawn to exit; all namespaces unshared (`--unshare-all`), no cgroups",
        ),
        Err(error) => Row::unavailable(MEASUREMENT, backend, &format!("not measured: {error:#}")),
    }
}

/// `runsc --platform=ptrace --network=none run` of an OCI bundle whose root is the template's
/// rootfs (read-only) with its host layers as read-only bind mounts, `runs` times. `dir` holds the
/// bundle and runsc's state and is removed afterwards.
pub async fn runsc(base: &Template, runs: usize, dir: &Path) -> Row {
    let backend = "runsc (gVisor, ptrace)";
    let measured = runsc_runs(base, runs, dir).await;
    if let Err(error) = std::fs::remove_dir_all(dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("warning: could not remove {}: {error}", dir.display());
    }
    match measured {
        Ok(samples) => Row::latency(
            MEASUREMENT,
            backend,
            &samples,
            None,
            "`runsc run` spawn to exit: sandbox + gofer start, `true`, teardown; `--network=none`",
        ),
        Err(error) => Row::unavailable(MEASUREMENT, backend, &format!("not measured: {error:#}")),
    }
}

async fn runsc_runs(base: &Template, runs: usize, dir: &Path) -> anyhow::Result<Samples> {
    let bundle = dir.join("bundle");
    let state = dir.join("state");
    for path in [&bundle, &state] {
        std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    }
    let config = oci_config(base);
    let text = serde_json::to_string_pretty(&config).context("cannot encode config.json")?;
    std::fs::write(bundle.join("config.json"), text).context("cannot write config.json")?;
    let command = |run: usize| {
        let mut command = Command::new("runsc");
        command
            .arg("--root")
            .arg(&state)
            .args(["--platform=ptrace", "--network=none", "run", "--bundle"])
            .arg(&bundle)
            .arg(format!("runtools-bench-{run}"));
        command
    };
    let result = time_runs(runs, "runsc", command).await;
    if result.is_err() {
        // A run that hung or failed may have left its container: remove every one there is.
        for run in 0..=runs {
            let _ = Command::new("runsc")
                .arg("--root")
                .arg(&state)
                .args(["delete", "--force", &format!("runtools-bench-{run}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
        }
    }
    result
}

/// The OCI runtime spec for `/bin/true` in `base` (what `runsc spec` writes, plus the host
/// layers as read-only bind mounts).
fn oci_config(base: &Template) -> serde_json::Value {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    for layer in &base.host_layers {
        mounts.push(json!({"destination": layer, "type": "bind", "source": layer, "options": ["rbind", "ro"]}));
    }
    json!({
        "ociVersion": "1.0.0",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/true"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "inheritable": caps, "permitted": caps},
            "noNewPrivileges": true
        },
        "root": {"path": base.rootfs, "readonly": true},
        "hostname": "runsc",
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
        }
    })
}

/// Runs `command(i)` for i in 0..=runs (run 0 unmeasured: a first run that fails says why before
/// the rest), each to completion, and times the measured ones from spawn to exit. `package` is
/// the Debian package to name when the program is missing.
async fn time_runs(runs: usize, package: &str, command: impl Fn(usize) -> Command) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    for run in 0..=runs {
        let mut command = command(run);
        let program = command.as_std().get_program().to_string_lossy().into_owned();
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
        let started = Instant::now();
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                bail!("`{program}` is not installed (Debian package `{package}`)")
            }
            Err(error) => return Err(error).with_context(|| format!("cannot run `{program}`")),
        };
        let output = match tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output()).await {
            Ok(output) => output.with_context(|| format!("waiting for `{program}`"))?,
            Err(_) => bail!("run {run}: `{program}` did not exit within {RUN_TIMEOUT:?}"),
        };
        let elapsed = started.elapsed();
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("no output");
            bail!("run {run}: `{program}` exited with {}: {}", output.status, last.trim());
        }
        if run > 0 {
            samples.push(elapsed);
        }
    }
    Ok(samples)
}
