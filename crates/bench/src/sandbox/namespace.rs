//! The namespace backend's measurements, made the way a client sees them: sandboxes from the
//! `base` template created one at a time, `/bin/true` through envd, pause and resume through the
//! cgroup freezer. (Memory per idle sandbox is [`super::memory`]'s.)

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use runtools_envd::EnvdClient;
use runtools_protocol::SandboxId;
use runtools_protocol::envd::ExecSpec;
use runtools_protocol::sandbox::NetworkMode;
use runtools_sandbox::bench::{create_to_first_exec, exec_round_trip};
use runtools_sandbox::{Backend, NamespaceBackend, ResolvedLimits, SandboxSpec, Template};

use super::{Row, Samples, ms};

const BACKEND: &str = "namespace";
/// Unmeasured exec round trips before the measured ones.
const EXEC_WARMUP: usize = 20;

/// How many of each measurement.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub count: usize,
    pub execs: usize,
    pub pause_cycles: usize,
    pub idle: usize,
    pub memory_rounds: usize,
}

/// The limits every benchmark sandbox gets (the server's usual defaults).
pub const LIMITS: ResolvedLimits =
    ResolvedLimits { cpu: 1.0, memory_bytes: 256 << 20, pids: 256, disk_bytes: 256 << 20 };

pub(super) fn spec_for(base: &Template) -> SandboxSpec {
    SandboxSpec {
        id: SandboxId::new(),
        rootfs: base.rootfs.clone(),
        host_layers: base.host_layers.clone(),
        hostname: "sandbox".into(),
        env: base.env.iter().map(|(key, value)| (key.clone(), value.clone())).collect(),
        limits: LIMITS,
        network: NetworkMode::None,
        volumes: Vec::new(),
    }
}

/// Runs every measurement and returns the rows (the side-by-side `start true` row last) and
/// notes for under the table. Sandboxes are deleted as it goes; on an error some may be left
/// for [`delete_all`].
pub async fn measure(
    backend: &NamespaceBackend,
    base: &Template,
    plan: &Plan,
) -> anyhow::Result<(Vec<Row>, Vec<String>)> {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    // One unmeasured sandbox first: the template's files into the page cache, the first mounts.
    let warmup = spec_for(base);
    create_to_first_exec(backend, &warmup).await.context("the warm-up sandbox")?;
    backend.delete(warmup.id).await.context("deleting the warm-up sandbox")?;

    let start_true = first_exec(backend, base, plan.count, &mut rows).await?;
    exec_and_pause(backend, base, plan, &mut rows).await?;
    super::memory::measure(backend, base, plan.idle, plan.memory_rounds, &mut rows, &mut notes).await?;
    rows.push(start_true);
    Ok((rows, notes))
}

/// Deletes every sandbox the backend has anything of (it sees only this run's state dir and
/// cgroup parent).
pub async fn delete_all(backend: &NamespaceBackend) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for (id, _) in backend.list().await.context("cannot list the benchmark's sandboxes")? {
        if let Err(error) = backend.delete(id).await {
            failures.push(format!("{id}: {error}"));
        }
    }
    ensure!(failures.is_empty(), "cannot delete sandboxes: {}", failures.join("; "));
    Ok(())
}

/// `count` sandboxes one after another: create + first exec, then delete. Pushes the
/// create-to-first-exec rows and the delete row; returns the `start true` row (the whole life,
/// comparable with `bwrap … true` and `runsc run`).
async fn first_exec(
    backend: &NamespaceBackend,
    base: &Template,
    count: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<Row> {
    eprintln!("==> namespace: create-to-first-exec over {count} sandboxes");
    let (mut totals, mut creates, mut firsts, mut deletes, mut lives) =
        (Samples::default(), Samples::default(), Samples::default(), Samples::default(), Samples::default());
    for i in 1..=count {
        let spec = spec_for(base);
        let timing = create_to_first_exec(backend, &spec)
            .await
            .with_context(|| format!("sandbox {i}/{count}: create and exec"))?;
        let started = Instant::now();
        backend.delete(spec.id).await.with_context(|| format!("sandbox {i}/{count}: delete"))?;
        let deleted = started.elapsed();
        totals.push(timing.total);
        creates.push(timing.create);
        firsts.push(timing.first_exec);
        deletes.push(deleted);
        lives.push(timing.total + deleted);
        if i % 50 == 0 || i == count {
            let p50 = totals.p50().map_or_else(|| "-".into(), ms);
            eprintln!("    {i}/{count}: p50 so far {p50}");
        }
    }
    rows.push(Row::latency(
        "create-to-first-exec",
        BACKEND,
        &totals,
        Some(Duration::from_millis(20)),
        "create + a new envd connection + `/bin/true` run to its exit",
    ));
    rows.push(Row::latency(
        "- of which create",
        BACKEND,
        &creates,
        None,
        "namespaces, overlay, cgroups, envd as PID 1, until envd answers a ping",
    ));
    rows.push(Row::latency("- of which first exec", BACKEND, &firsts, None, "connect to envd, run `/bin/true`"));
    rows.push(Row::latency("delete", BACKEND, &deletes, None, "kill, unmount, remove cgroups and the writable layer"));
    Ok(Row::latency("start `true`", BACKEND, &lives, None, "create-to-first-exec + delete of the same sandboxes"))
}

/// Exec round trips, then pause/resume cycles, on one sandbox.
async fn exec_and_pause(
    backend: &NamespaceBackend,
    base: &Template,
    plan: &Plan,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    eprintln!("==> namespace: {} exec round trips, {} pause/resume cycles", plan.execs, plan.pause_cycles);
    let spec = spec_for(base);
    backend.create(&spec).await.context("creating the exec sandbox")?;
    let client = EnvdClient::new(backend.connect_envd(spec.id).await.context("connecting to envd")?);
    for _ in 0..EXEC_WARMUP {
        exec_round_trip(&client).await.context("exec warm-up")?;
    }
    let mut execs = Samples::default();
    for _ in 0..plan.execs {
        execs.push(exec_round_trip(&client).await.context("exec round trip")?);
    }
    rows.push(Row::latency(
        "exec round trip",
        BACKEND,
        &execs,
        Some(Duration::from_millis(1)),
        &format!("`/bin/true` on one open envd connection, after {EXEC_WARMUP} unmeasured"),
    ));

    let (mut pauses, mut resumes) = (Samples::default(), Samples::default());
    for cycle in 1..=plan.pause_cycles {
        let started = Instant::now();
        backend.pause(spec.id).await.with_context(|| format!("pause {cycle}"))?;
        pauses.push(started.elapsed());
        let started = Instant::now();
        backend.resume(spec.id).await.with_context(|| format!("resume {cycle}"))?;
        resumes.push(started.elapsed());
    }
    let after = client
        .run(ExecSpec { argv: Some(vec!["/bin/true".into()]), ..ExecSpec::default() }, None)
        .await
        .context("exec after the pause/resume cycles")?;
    ensure!(after.exit.success(), "`/bin/true` after the pause/resume cycles exited with {:?}", after.exit);
    rows.push(Row::latency(
        "pause",
        BACKEND,
        &pauses,
        Some(Duration::from_millis(10)),
        "cgroup freezer, until every process is frozen",
    ));
    rows.push(Row::latency(
        "resume",
        BACKEND,
        &resumes,
        Some(Duration::from_millis(10)),
        "thaw; envd answered exec afterwards",
    ));
    backend.delete(spec.id).await.context("deleting the exec sandbox")?;
    Ok(())
}
