//! Host memory per idle namespace sandbox, seen two ways: the sandboxes' own memory cgroups
//! (`Backend::usage`), and the host's `MemAvailable` from `/proc/meminfo` — how far it drops when
//! `idle` sandboxes are created and how far it comes back when they are deleted, divided by
//! `idle`, the mean of the two (which cancels a steady drift of everything else on the host). The
//! host figure counts everything on the machine, so other work shows up in it; it is taken over
//! several rounds and the median reported, with the kernel's share beside it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use runtools_sandbox::bench::create_to_first_exec;
use runtools_sandbox::{Backend, NamespaceBackend, Template};

use super::namespace::spec_for;
use super::{Row, mib};

const BACKEND: &str = "namespace";
/// How long idle sandboxes settle before the host's memory is read (and again after deleting).
const SETTLE: Duration = Duration::from_secs(2);
/// The target: less than this per idle sandbox.
const TARGET_BYTES: f64 = 5.0 * 1048576.0;
/// Rounds whose host figures differ by more than this make the host figure too noisy to judge.
const NOISE_BYTES: f64 = 1048576.0;
/// Kernel memory `/proc/meminfo` shows apart from processes and the page cache.
const KERNEL_FIELDS: [(&str, &str); 4] = [
    ("SUnreclaim", "unreclaimable slab"),
    ("KernelStack", "kernel stacks"),
    ("PageTables", "page tables"),
    ("Percpu", "per-cpu"),
];

/// `/proc/meminfo` in bytes by field name.
type Meminfo = BTreeMap<String, i64>;

/// `rounds` times: create `idle` sandboxes (each after its first exec), let them settle, read
/// their cgroups' usage and the host's memory, delete them, read the host's memory again.
pub async fn measure(
    backend: &NamespaceBackend,
    base: &Template,
    idle: usize,
    rounds: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let mut usage = Vec::with_capacity(idle * rounds);
    let mut estimates = Vec::with_capacity(rounds);
    let mut pairs = Vec::with_capacity(rounds);
    let mut readings = Vec::with_capacity(rounds);
    let mut kernel: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let per_sandbox = |bytes: i64| bytes as f64 / idle as f64;
    for round in 1..=rounds {
        eprintln!("==> namespace: memory of {idle} idle sandboxes, round {round}/{rounds}");
        let before = meminfo().await?;
        let mut ids = Vec::with_capacity(idle);
        for i in 1..=idle {
            let spec = spec_for(base);
            create_to_first_exec(backend, &spec).await.with_context(|| format!("idle sandbox {i}/{idle}"))?;
            ids.push(spec.id);
        }
        tokio::time::sleep(SETTLE).await;
        let during = meminfo().await?;
        for &id in &ids {
            usage.push(backend.usage(id).await.context("reading a sandbox's usage")?.memory_bytes);
        }
        for &id in &ids {
            backend.delete(id).await.context("deleting an idle sandbox")?;
        }
        tokio::time::sleep(SETTLE).await;
        let after = meminfo().await?;

        let available = |info: &Meminfo| field(info, "MemAvailable");
        let (before_avail, during_avail, after_avail) = (available(&before)?, available(&during)?, available(&after)?);
        // The drop on creating and the rise on deleting: their mean cancels a steady drift of
        // everything else on the host over the round.
        let (dropped, rose) = (per_sandbox(before_avail - during_avail), per_sandbox(after_avail - during_avail));
        estimates.push((dropped + rose) / 2.0);
        pairs.push(format!("{}/{}", mib(dropped), mib(rose)));
        readings.push(format!(
            "{} → {} → {}",
            mib(before_avail as f64),
            mib(during_avail as f64),
            mib(after_avail as f64)
        ));
        for (name, _) in KERNEL_FIELDS {
            if let (Ok(was), Ok(is)) = (field(&before, name), field(&during, name)) {
                kernel.entry(name).or_default().push(per_sandbox(is - was));
            }
        }
    }

    usage.sort_unstable();
    let rank = |q: f64| usage.get(((usage.len() as f64 * q).ceil() as usize).max(1) - 1).copied().unwrap_or(0);
    let mean = usage.iter().sum::<u64>() as f64 / usage.len().max(1) as f64;
    let verdict = |value: f64| if value < TARGET_BYTES { "met" } else { "MISSED" };
    rows.push(Row {
        measurement: "memory per idle sandbox: its memory cgroup".into(),
        backend: BACKEND.into(),
        n: usage.len(),
        p50: mib(rank(0.50) as f64),
        p99: mib(rank(0.99) as f64),
        target: format!("mean < 5 MiB: {}", verdict(mean)),
        notes: format!(
            "mean {}; `Backend::usage` (memory.usage_in_bytes on v1, memory.current on v2) of each sandbox, \
             {rounds} rounds of {idle} alive at once",
            mib(mean)
        ),
    });
    let host = median(&mut estimates);
    // Other work on the host moves MemAvailable by far more than a few sandboxes do: when the
    // rounds disagree (or the figure is negative) the verdict says so instead of judging noise.
    let spread = estimates.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        - estimates.iter().copied().fold(f64::INFINITY, f64::min);
    let noisy = host < 0.0 || spread > NOISE_BYTES;
    rows.push(Row {
        measurement: "memory per idle sandbox: host MemAvailable".into(),
        backend: BACKEND.into(),
        n: idle,
        p50: mib(host),
        p99: "-".into(),
        target: format!("< 5 MiB: {}", if noisy { "unclear (host too noisy)" } else { verdict(host) }),
        notes: format!(
            "median over {rounds} rounds of the mean of MemAvailable's drop on creating {idle} and rise on deleting \
             them, / {idle}; per round (drop/rise): {}",
            pairs.join(", ")
        ),
    });
    let kernel_parts: Vec<String> = KERNEL_FIELDS
        .iter()
        .filter_map(|(name, label)| kernel.get_mut(name).map(|values| format!("{label} {}", mib(median(values)))))
        .collect();
    notes.push(format!(
        "host MemAvailable (/proc/meminfo, median of 5 reads; before → with {idle} alive, {SETTLE:?} after the \
         last was created → {SETTLE:?} after deleting them), per round: {}. It counts the whole host, so anything \
         else this machine does meanwhile (builds, tests) moves it too.",
        readings.join("; ")
    ));
    notes.push(format!(
        "kernel memory growth per idle sandbox while alive (median over rounds; some of it may also be charged \
         to the sandboxes' cgroups): {}.",
        kernel_parts.join(", ")
    ));
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn field(info: &Meminfo, name: &str) -> anyhow::Result<i64> {
    info.get(name).copied().with_context(|| format!("no {name} in /proc/meminfo"))
}

/// `/proc/meminfo`, each field the median of five reads 100 ms apart.
async fn meminfo() -> anyhow::Result<Meminfo> {
    let mut reads: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for i in 0..5 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let text = std::fs::read_to_string("/proc/meminfo").context("cannot read /proc/meminfo")?;
        for (name, bytes) in parse_meminfo(&text) {
            reads.entry(name).or_default().push(bytes);
        }
    }
    Ok(reads
        .into_iter()
        .map(|(name, mut values)| {
            values.sort_unstable();
            (name, values[values.len() / 2])
        })
        .collect())
}

/// `Name:   123 kB` lines in bytes (lines without a unit, such as `HugePages_Total`, are skipped).
fn parse_meminfo(text: &str) -> Meminfo {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            let kib = value.trim().strip_suffix("kB")?.trim().parse::<i64>().ok()?;
            Some((name.to_owned(), kib * 1024))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo() {
        let info = parse_meminfo("MemTotal:       24000000 kB\nMemAvailable:   12345 kB\nHugePages_Total:       0\n");
        assert_eq!(info.get("MemAvailable"), Some(&(12345 * 1024)));
        assert_eq!(info.get("HugePages_Total"), None);
        assert_eq!(info.len(), 2);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
