//! `runtools-bench startup`: how long the real `runtools server` binary takes from spawn until
//! `GET /readyz` answers 200 — on an empty data dir (first start: creates the database, the
//! secrets key and the admin key, which it must print exactly once) and on a restart of the same
//! data dir (which must print no admin key). Stops the server with SIGTERM between starts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::table;

/// How often readiness is polled.
const POLL_EVERY: Duration = Duration::from_millis(2);
/// How long a start may take before the run fails.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// The prefix of admin key secrets.
const ADMIN_KEY_PREFIX: &str = "rt_admin_";

#[derive(Debug, clap::Args)]
pub struct StartupArgs {
    /// How many fresh data dirs to start (each is started, stopped and restarted once).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// The `runtools` binary [default: `runtools` next to this executable].
    #[arg(long)]
    runtools_bin: Option<PathBuf>,
}

pub fn run(args: &StartupArgs) -> anyhow::Result<()> {
    ensure!(args.runs > 0, "--runs must be at least 1");
    let binary = match &args.runtools_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("cannot find this executable")?.with_file_name("runtools"),
    };
    if !binary.is_file() {
        bail!(
            "no runtools binary at {}: build it with `cargo build --release -p runtools-cli` or pass --runtools-bin",
            binary.display()
        );
    }
    let mut first_starts = Vec::with_capacity(args.runs);
    let mut restarts = Vec::with_capacity(args.runs);
    for run in 1..=args.runs {
        let scratch = tempfile::Builder::new().prefix("runtools-bench-startup-").tempdir()?;
        let data_dir = scratch.path().join("data");
        std::fs::create_dir(&data_dir).context("cannot create the data dir")?;

        let first = start_and_stop(&binary, &data_dir, &scratch.path().join("first"))
            .with_context(|| format!("run {run}, first start"))?;
        let admin_keys = first.stdout.matches(ADMIN_KEY_PREFIX).count();
        ensure!(
            admin_keys == 1,
            "run {run}: the first start printed {admin_keys} admin keys instead of one; stdout:\n{}",
            first.stdout
        );

        let again = start_and_stop(&binary, &data_dir, &scratch.path().join("restart"))
            .with_context(|| format!("run {run}, restart"))?;
        ensure!(
            !again.stdout.contains(ADMIN_KEY_PREFIX),
            "run {run}: the restart printed an admin key; stdout:\n{}",
            again.stdout
        );
        eprintln!(
            "==> run {run}/{}: first start {} ms, restart {} ms",
            args.runs,
            table::duration_ms(first.ready_after),
            table::duration_ms(again.ready_after)
        );
        first_starts.push(first.ready_after);
        restarts.push(again.ready_after);
    }

    println!();
    println!(
        "`runtools server` from spawn until GET /readyz is 200 (polled every {} ms), {} runs, binary {}",
        POLL_EVERY.as_millis(),
        args.runs,
        binary.display()
    );
    println!("machine: {} cores", std::thread::available_parallelism().map_or(0, usize::from));
    println!();
    let row = |kind: &str, times: &mut Vec<Duration>| {
        times.sort();
        let p50 = times.get(times.len().saturating_sub(1) / 2).copied().unwrap_or_default();
        let max = times.last().copied().unwrap_or_default();
        vec![kind.to_owned(), table::duration_ms(p50), table::duration_ms(max)]
    };
    let rows = [row("first start", &mut first_starts), row("restart", &mut restarts)];
    print!("{}", table::markdown(&["run kind", "p50 ms", "max ms"], &rows));
    Ok(())
}

/// One start of the server.
struct Started {
    /// From spawn until `/readyz` answered 200.
    ready_after: Duration,
    /// Everything the server printed on stdout, up to its exit.
    stdout: String,
}

/// Starts `runtools server` on `data_dir` and a free port, waits for readiness, stops it with
/// SIGTERM and collects its stdout. `log_prefix` names the files stdout and stderr go to.
fn start_and_stop(binary: &Path, data_dir: &Path, log_prefix: &Path) -> anyhow::Result<Started> {
    let addr = free_port()?;
    let stdout_path = log_prefix.with_extension("stdout");
    let stderr_path = log_prefix.with_extension("stderr");
    let stdout = std::fs::File::create(&stdout_path).context("cannot create the stdout file")?;
    let stderr = std::fs::File::create(&stderr_path).context("cannot create the stderr file")?;

    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("server")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(addr.to_string())
        // Keep the user's environment from pointing the server elsewhere.
        .env_remove("RUNTOOLS_DATABASE_URL")
        .env_remove("RUNTOOLS_CONFIG")
        .env_remove("RUNTOOLS_SECRETS_KEY")
        .current_dir(data_dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let ready = wait_until_ready(&mut child, addr, started);
    let ready_after = match ready {
        Ok(elapsed) => elapsed,
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            return Err(error.context(format!("server stderr:\n{stderr}")));
        }
    };
    terminate(&mut child)?;
    let stdout = std::fs::read_to_string(&stdout_path).context("cannot read the server's stdout")?;
    Ok(Started { ready_after, stdout })
}

/// Polls `/readyz` until it answers 200, failing if the server exits or takes too long.
fn wait_until_ready(child: &mut Child, addr: SocketAddr, started: Instant) -> anyhow::Result<Duration> {
    loop {
        if readyz_ok(addr) {
            return Ok(started.elapsed());
        }
        if let Some(status) = child.try_wait().context("cannot check on the server")? {
            bail!("the server exited with {status} before it was ready");
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!("the server was not ready after {READY_TIMEOUT:?}");
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// One plain HTTP/1.1 `GET /readyz`; true on a 200 answer.
fn readyz_ok(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Sends SIGTERM and waits for a clean exit.
fn terminate(child: &mut Child) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .context("cannot run `kill` to stop the server")?;
    ensure!(status.success(), "`kill -TERM {}` failed with {status}", child.id());
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("cannot check on the server")? {
            ensure!(status.success(), "the server exited with {status} after SIGTERM");
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the server did not exit within {EXIT_TIMEOUT:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A loopback address with a port that was free a moment ago.
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    listener.local_addr().context("cannot find a free port")
}
