//! `runtools-bench agent`: the agent loop's own overhead, against a zero-latency model server,
//! side by side with OpenAI's Python `openai-agents` package on the same server in the same run.
//!
//! The workload: each run is an agent with one no-op tool; the model server (a separate
//! `runtools-model-server` process speaking OpenAI Chat Completions, so its CPU is not counted)
//! makes every conversation call the tool `steps - 1` times and then answer, so a run is `steps`
//! model calls. Measured:
//! - per step, sequential runs: wall time and CPU time of the client process (loop, HTTP client,
//!   SSE parsing, events);
//! - memory per run with `concurrent` runs in flight at once (the server holds every answer for
//!   `delay_ms`, so all runs are mid-conversation together): (peak RSS − RSS before) / runs.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use runtools_agent::providers::{ProviderSettings, RetryPolicy, WireProtocol, connect};
use runtools_agent::{Agent, EventSink, RunControl, RunState, SinkError, ToolCall, ToolOutput, ToolSet, run};
use runtools_protocol::agent::{AgentEvent, ToolSpec};
use runtools_protocol::{EventEnvelope, RunId};
use tokio::io::AsyncBufReadExt;

use crate::table::markdown;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Sequential runs for the per-step measurement.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Model calls per run (the last one answers; the others call the tool).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Runs in flight at once for the memory measurement.
    #[arg(long, default_value_t = 1000)]
    concurrent: usize,
    /// How long the server holds each answer during the memory measurement.
    #[arg(long, default_value_t = 1000)]
    delay_ms: u64,
    /// The Python interpreter with `openai-agents` installed; without it only RunTools is measured.
    #[arg(long)]
    python: Option<String>,
}

/// One measured workload.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    wall: Duration,
    cpu: Duration,
    steps: u64,
    runs: u64,
    rss_baseline: u64,
    rss_peak: u64,
}

impl Measured {
    fn cpu_per_step_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.steps.max(1) as f64
    }

    fn wall_per_step_us(&self) -> f64 {
        self.wall.as_secs_f64() * 1e6 / self.steps.max(1) as f64
    }

    fn kib_per_run(&self) -> f64 {
        self.rss_peak.saturating_sub(self.rss_baseline) as f64 / 1024.0 / self.runs.max(1) as f64
    }
}

pub fn run_bench(args: &AgentArgs) -> anyhow::Result<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("rt-load").build()?;
    runtime.block_on(async {
        let fast = ModelServerProcess::start(args.steps - 1, 0).await?;
        let slow = ModelServerProcess::start(args.steps - 1, args.delay_ms).await?;
        eprintln!("runtools: {} sequential runs of {} steps", args.runs, args.steps);
        let ours_sequential = ours(&fast.url, args.runs, false).await?;
        eprintln!("runtools: {} concurrent runs", args.concurrent);
        let ours_concurrent = ours(&slow.url, args.concurrent, true).await?;
        let theirs = match &args.python {
            Some(python) => {
                eprintln!("openai-agents: {} sequential runs", args.runs);
                let sequential = python_workload(python, &fast.url, "sequential", args.runs).await?;
                eprintln!("openai-agents: {} concurrent runs", args.concurrent);
                let concurrent = python_workload(python, &slow.url, "concurrent", args.concurrent).await?;
                Some((sequential, concurrent))
            }
            None => None,
        };
        print_table(args, &ours_sequential, &ours_concurrent, theirs.as_ref());
        anyhow::Ok(())
    })
}

fn print_table(args: &AgentArgs, sequential: &Measured, concurrent: &Measured, theirs: Option<&(Measured, Measured)>) {
    let ratio = |ours: f64, theirs: f64| if ours > 0.0 { format!("{:.1}×", theirs / ours) } else { "-".into() };
    let cell = |value: Option<f64>, unit: &str| value.map_or_else(|| "not run".into(), |v| format!("{v:.1} {unit}"));
    let rows = vec![
        vec![
            format!("CPU per step ({} runs × {} steps, sequential)", args.runs, args.steps),
            format!("{:.1} µs", sequential.cpu_per_step_us()),
            cell(theirs.map(|t| t.0.cpu_per_step_us()), "µs"),
            theirs.map_or("-".into(), |t| ratio(sequential.cpu_per_step_us(), t.0.cpu_per_step_us())),
        ],
        vec![
            "wall time per step (sequential)".into(),
            format!("{:.1} µs", sequential.wall_per_step_us()),
            cell(theirs.map(|t| t.0.wall_per_step_us()), "µs"),
            theirs.map_or("-".into(), |t| ratio(sequential.wall_per_step_us(), t.0.wall_per_step_us())),
        ],
        vec![
            format!("memory per run ({} concurrent runs)", args.concurrent),
            format!("{:.1} KiB", concurrent.kib_per_run()),
            cell(theirs.map(|t| t.1.kib_per_run()), "KiB"),
            theirs.map_or("-".into(), |t| ratio(concurrent.kib_per_run(), t.1.kib_per_run())),
        ],
        vec![
            format!("wall time, {} concurrent runs ({} ms per answer)", args.concurrent, args.delay_ms),
            format!("{:.2} s", concurrent.wall.as_secs_f64()),
            theirs.map_or_else(|| "not run".into(), |t| format!("{:.2} s", t.1.wall.as_secs_f64())),
            "-".into(),
        ],
    ];
    println!("{}", markdown(&["measurement", "runtools", "openai-agents", "runtools advantage"], &rows));
}

/// Runs the workload with the RunTools loop in this process.
async fn ours(url: &str, runs: usize, concurrent: bool) -> anyhow::Result<Measured> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(usize::MAX).build()?;
    let mut settings = ProviderSettings::new("openai", WireProtocol::OpenaiChat, url);
    settings.retry = RetryPolicy::none();
    let model = connect(settings, http);
    let mut agent = Agent::new(model, "gpt-4.1", Arc::new(NoopTool));
    agent.system_prompt = Some("You are a benchmark.".into());
    agent.limits.max_turns = 1_000;
    let agent = Arc::new(agent);
    let steps = Arc::new(AtomicU64::new(0));
    one_run(&agent, &steps).await?; // warm-up: first connection, lazy statics
    steps.store(0, Ordering::SeqCst);
    let baseline = rss_bytes();
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = tokio::spawn({
        let peak = peak.clone();
        async move {
            loop {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let cpu_before = crate::cpu::process_cpu();
    let started = Instant::now();
    if concurrent {
        let mut tasks = Vec::with_capacity(runs);
        for _ in 0..runs {
            let (agent, steps) = (agent.clone(), steps.clone());
            tasks.push(tokio::spawn(async move { one_run(&agent, &steps).await }));
        }
        for task in tasks {
            task.await??;
        }
    } else {
        for _ in 0..runs {
            one_run(&agent, &steps).await?;
        }
    }
    let wall = started.elapsed();
    let cpu = crate::cpu::process_cpu().saturating_sub(cpu_before);
    sampler.abort();
    let rss_peak = peak.load(Ordering::Relaxed).max(rss_bytes());
    Ok(Measured { wall, cpu, steps: steps.load(Ordering::SeqCst), runs: runs as u64, rss_baseline: baseline, rss_peak })
}

async fn one_run(agent: &Agent, steps: &AtomicU64) -> anyhow::Result<()> {
    let mut sink = DiscardSink::default();
    let state = run(agent, RunState::new(RunId::new(), "go"), &RunControl::new(), &mut sink).await?;
    match state.terminal {
        Some(AgentEvent::Complete { turns, ref output, .. }) if output == "done" => {
            steps.fetch_add(u64::from(turns), Ordering::Relaxed);
            Ok(())
        }
        other => bail!("a benchmark run did not complete: {other:?}"),
    }
}

/// Drops events (a real deployment persists them; that cost is the store's, measured elsewhere).
#[derive(Debug, Default)]
struct DiscardSink {
    events: u64,
}

#[async_trait::async_trait]
impl EventSink for DiscardSink {
    async fn emit(&mut self, _event: EventEnvelope) -> Result<(), SinkError> {
        self.events += 1;
        Ok(())
    }
}

/// One tool that does nothing, like the Python side's.
#[derive(Debug)]
struct NoopTool;

#[async_trait::async_trait]
impl ToolSet for NoopTool {
    fn specs(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "noop".into(),
            description: "Does nothing and says so.".into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {"step": {"type": "integer"}},
                "required": ["step"],
            }),
        }]
    }

    async fn call(&self, _call: &ToolCall) -> ToolOutput {
        ToolOutput::ok("ok")
    }
}

async fn python_workload(python: &str, url: &str, mode: &str, runs: usize) -> anyhow::Result<Measured> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/openai_agents_bench.py");
    let output = tokio::process::Command::new(python)
        .args([script, "--base-url", url, "--mode", mode, "--runs", &runs.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .await
        .with_context(|| format!("running {python} {script}"))?;
    if !output.status.success() {
        bail!("{script} failed ({})", output.status);
    }
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("{script} printed: {}", String::from_utf8_lossy(&output.stdout)))?;
    let number = |key: &str| result[key].as_f64().with_context(|| format!("{script}: no `{key}` in {result}"));
    Ok(Measured {
        wall: Duration::from_secs_f64(number("wall_s")?),
        cpu: Duration::from_secs_f64(number("cpu_s")?),
        steps: number("steps")? as u64,
        runs: number("runs")? as u64,
        rss_baseline: number("rss_baseline")? as u64,
        rss_peak: number("rss_peak")? as u64,
    })
}

/// `runtools-model-server` (next to this binary) as a child process, killed on drop.
struct ModelServerProcess {
    _child: tokio::process::Child,
    url: String,
}

impl ModelServerProcess {
    async fn start(tool_steps: usize, delay_ms: u64) -> anyhow::Result<Self> {
        let binary = std::env::current_exe()?.with_file_name("runtools-model-server");
        let mut child = tokio::process::Command::new(&binary)
            .args(["--tool-steps", &tool_steps.to_string(), "--delay-ms", &delay_ms.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!("starting {} (cargo build --release -p runtools-model-server)", binary.display())
            })?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .context("the model server did not start within 10 s")??
            .context("the model server exited")?;
        let base = line.strip_prefix("listening on ").context("unexpected model server output")?;
        Ok(Self { _child: child, url: format!("{base}/v1") })
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}
