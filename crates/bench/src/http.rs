//! `runtools-bench http`: authenticated `GET /v1/me` throughput and latency. For each store
//! (SQLite always, PostgreSQL when a URL is given) it starts an in-process server on a fresh data
//! dir / database, creates a development (`pk_test_`) key, drives the load generator at each
//! requested connection count, and prints one Markdown table plus the CPU split.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use runtools_client::Client;
use runtools_protocol::EnvironmentKind;
use runtools_server::ServerConfig;
use runtools_test_support::POSTGRES_URL_VAR;
use tokio::runtime::Runtime;

use crate::cpu::{CpuSample, LOAD_THREAD_PREFIX, percent_of_core};
use crate::load::{self, LoadPlan, LoadReport};
use crate::server::{BenchServer, PostgresDatabase};
use crate::table;

#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// Concurrent keep-alive connections; a comma-separated list runs each count in turn.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    connections: Vec<usize>,
    /// Measured seconds per connection count.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Unmeasured seconds before each measurement.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// A PostgreSQL server to also benchmark on (a fresh database is created and dropped);
    /// falls back to `RUNTOOLS_TEST_POSTGRES_URL`.
    #[arg(long, env = "RUNTOOLS_BENCH_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,
    /// The route to request; `/v1/me` authenticates and reads the store, `/healthz` does neither
    /// (useful to separate HTTP overhead from store overhead).
    #[arg(long, default_value = "/v1/me")]
    path: String,
    /// Worker threads of the server's runtime.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    load_threads: usize,
}

/// Which database a server runs on.
#[derive(Debug, Clone)]
enum StoreKind {
    Sqlite,
    Postgres(String),
}

impl StoreKind {
    fn label(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// One measured pass.
struct Pass {
    store: &'static str,
    connections: usize,
    report: LoadReport,
    cpu: CpuSample,
    wall: Duration,
}

pub fn run(args: HttpArgs) -> anyhow::Result<()> {
    if args.connections.is_empty() || args.connections.contains(&0) {
        bail!("--connections needs at least one positive count");
    }
    if args.duration_secs == 0 {
        bail!("--duration-secs must be at least 1");
    }
    let postgres_url =
        args.postgres_url.clone().or_else(|| std::env::var(POSTGRES_URL_VAR).ok()).filter(|url| !url.is_empty());
    let mut stores = vec![StoreKind::Sqlite];
    match postgres_url {
        Some(url) => stores.push(StoreKind::Postgres(url)),
        None => eprintln!("note: no --postgres-url (or {POSTGRES_URL_VAR}); benchmarking SQLite only"),
    }
    let load_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.load_threads)
        .thread_name(LOAD_THREAD_PREFIX)
        .enable_all()
        .build()
        .context("cannot start the load generator's runtime")?;

    let mut passes = Vec::new();
    for store in &stores {
        bench_store(&load_runtime, store, &args, &mut passes)?;
    }
    print_report(&args, &passes);

    let errors: u64 = passes.iter().map(|pass| pass.report.errors).sum();
    if errors > 0 {
        let first = passes.iter().find_map(|pass| pass.report.first_error.clone()).unwrap_or_default();
        bail!("{errors} requests failed; the first: {first}");
    }
    Ok(())
}

/// Starts a server on `store`, runs every connection count against it, and tears it down.
fn bench_store(
    load_runtime: &Runtime,
    store: &StoreKind,
    args: &HttpArgs,
    passes: &mut Vec<Pass>,
) -> anyhow::Result<()> {
    let data_dir = tempfile::Builder::new().prefix("runtools-bench-").tempdir().context("cannot create a temp dir")?;
    let database = match store {
        StoreKind::Sqlite => None,
        StoreKind::Postgres(admin_url) => Some(load_runtime.block_on(PostgresDatabase::create(admin_url))?),
    };
    let config = ServerConfig {
        database_url: database.as_ref().map(|db| db.url.clone()),
        ..ServerConfig::ephemeral(data_dir.path())
    };
    let server = BenchServer::start(config, args.server_threads)?;
    let measured = measure(load_runtime, store.label(), &server, args, passes);
    let stopped = server.stop();
    if let Some(database) = database
        && let Err(error) = load_runtime.block_on(database.drop_database())
    {
        eprintln!("warning: could not drop the benchmark database: {error:#}");
    }
    measured?;
    stopped
}

fn measure(
    load_runtime: &Runtime,
    store: &'static str,
    server: &BenchServer,
    args: &HttpArgs,
    passes: &mut Vec<Pass>,
) -> anyhow::Result<()> {
    let key = load_runtime.block_on(async {
        let admin = Client::new(&server.url(), Some(server.admin_key().to_owned()))?;
        let created = admin.create_key(EnvironmentKind::Development, Some("bench".into())).await?;
        // One request through the typed client first, so a broken setup fails with a clear error.
        admin.with_api_key(created.secret.clone()).whoami().await?;
        anyhow::Ok(created.secret)
    })?;
    for &connections in &args.connections {
        eprintln!(
            "==> {store}: {connections} connections, {}s warmup + {}s measured",
            args.warmup_secs, args.duration_secs
        );
        let plan = LoadPlan {
            addr: server.addr(),
            path: args.path.clone(),
            authorization: format!("Bearer {key}"),
            connections,
            warmup: Duration::from_secs(args.warmup_secs),
            duration: Duration::from_secs(args.duration_secs),
        };
        let cpu_before = CpuSample::now();
        let started = Instant::now();
        let report = load_runtime.block_on(load::run(&plan))?;
        let wall = started.elapsed();
        let cpu = CpuSample::now().since(cpu_before);
        passes.push(Pass { store, connections, report, cpu, wall });
    }
    Ok(())
}

fn print_report(args: &HttpArgs, passes: &[Pass]) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let rows: Vec<Vec<String>> = passes
        .iter()
        .map(|pass| {
            let latency = &pass.report.latency_us;
            vec![
                pass.store.to_owned(),
                pass.connections.to_string(),
                pass.report.requests.to_string(),
                pass.report.errors.to_string(),
                format!("{:.0}", pass.report.requests_per_sec()),
                table::micros_as_ms(latency.value_at_quantile(0.50)),
                table::micros_as_ms(latency.value_at_quantile(0.90)),
                table::micros_as_ms(latency.value_at_quantile(0.99)),
                table::micros_as_ms(latency.max()),
            ]
        })
        .collect();
    println!();
    println!(
        "GET {} with a pk_test_ key, HTTP/1.1 keep-alive over loopback, {}s measured after {}s warmup",
        args.path, args.duration_secs, args.warmup_secs
    );
    println!(
        "machine: {cores} cores; server runtime {} worker threads, load generator runtime {} worker threads",
        args.server_threads, args.load_threads
    );
    println!();
    print!(
        "{}",
        table::markdown(
            &["store", "connections", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"],
            &rows
        )
    );
    println!();
    println!("CPU used during each pass (warmup included), as a share of one core:");
    for pass in passes {
        let note = if pass.store == "postgres" { "; PostgreSQL's own processes not counted" } else { "" };
        println!(
            "- {} / {} connections: server {} (runtime + store threads{note}), load generator {}",
            pass.store,
            pass.connections,
            percent_of_core(pass.cpu.server, pass.wall),
            percent_of_core(pass.cpu.load, pass.wall),
        );
    }
}
