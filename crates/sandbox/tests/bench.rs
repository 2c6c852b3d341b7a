//! Create-to-first-exec, exec round trip, pause and resume, measured (and printed) over a few
//! sandboxes. No timing is asserted — CI machines vary — only that everything works and cleans up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, can_run, traces_of};
use runtools_sandbox::Backend;
use runtools_sandbox::bench::{create_to_first_exec, exec_round_trip};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread")]
async fn create_to_first_exec_and_friends() {
    if !can_run("create_to_first_exec_and_friends") {
        return;
    }
    let harness = Harness::new();
    let runs = 20;
    let (mut totals, mut creates, mut execs, mut pauses, mut resumes, mut deletes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut memory = Vec::new();
    for _ in 0..runs {
        let spec = harness.spec();
        let timing = create_to_first_exec(&harness.backend, &spec).await.unwrap();
        totals.push(timing.total);
        creates.push(timing.create);
        let client = harness.client(spec.id).await;
        memory.push(harness.backend.usage(spec.id).await.unwrap().memory_bytes);
        for _ in 0..5 {
            execs.push(exec_round_trip(&client).await.unwrap());
        }
        let started = Instant::now();
        harness.backend.pause(spec.id).await.unwrap();
        pauses.push(started.elapsed());
        let started = Instant::now();
        harness.backend.resume(spec.id).await.unwrap();
        resumes.push(started.elapsed());
        let started = Instant::now();
        harness.backend.delete(spec.id).await.unwrap();
        deletes.push(started.elapsed());
        assert_eq!(traces_of(&harness, spec.id), Vec::<String>::new());
    }
    for (name, samples) in [
        ("create-to-first-exec", &mut totals),
        ("create (envd answering)", &mut creates),
        ("exec round trip (/bin/true)", &mut execs),
        ("pause", &mut pauses),
        ("resume", &mut resumes),
        ("delete", &mut deletes),
    ] {
        eprintln!("{name:<28} p50 {:>10.2?}  p99 {:>10.2?}", percentile(samples, 0.5), percentile(samples, 0.99));
    }
    memory.sort();
    eprintln!(
        "{:<28} p50 {:>7.2} MiB (the sandbox's memory cgroup after its first exec)",
        "memory",
        memory[memory.len() / 2] as f64 / 1048576.0
    );
}
