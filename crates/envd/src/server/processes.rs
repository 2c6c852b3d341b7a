//! The processes envd started: the table (by id, by pid, by tag), each process's output fan-out
//! and ring buffer, its stdin and PTY, and the reaper that collects every exited child (envd is
//! PID 1, or a child subreaper) and routes the statuses of its own children to them.
//!
//! Spawning and reaping share one lock, so a child is always registered before the reaper can
//! collect it, and a pid is never confused with an earlier process that had the same pid.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use runtools_protocol::envd::{EnvdError, EnvdErrorCode, ProcessInfo, PtySize};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::signal::unix::Signal as SignalStream;
use tokio::sync::{mpsc, watch};

use super::connection::envd_error;
use super::spawn::{SpawnPlan, Spawned, spawn};

/// Output kept per background process for `attach`.
const RING_BYTES: usize = 1024 * 1024;
/// Finished background processes kept for `list_processes` and `attach`.
const FINISHED_KEPT: usize = 16;
/// Output events queued per follower before the process's output pump waits for it.
const FOLLOWER_QUEUE: usize = 32;

/// How a child ended, as `waitpid` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitOutcome {
    pub(crate) exit_code: Option<i32>,
    pub(crate) signal: Option<i32>,
}

/// How a process ended, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExitReport {
    pub(crate) exit_code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub(crate) timed_out: bool,
}

/// One event of a process's output.
#[derive(Debug, Clone)]
pub(crate) enum OutputEvent {
    Stdout(Bytes),
    Stderr(Bytes),
    Exited(ExitReport),
}

/// What a follower (an exec or attach stream) receives: what was buffered, then live events.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) replay: Vec<OutputEvent>,
    /// `None` when the process had already finished (the replay ends with `Exited`).
    pub(crate) live: Option<mpsc::Receiver<OutputEvent>>,
}

#[derive(Debug, Default)]
struct OutputState {
    ring: VecDeque<OutputEvent>,
    ring_bytes: usize,
    followers: Vec<mpsc::Sender<OutputEvent>>,
    finished: Option<ExitReport>,
}

/// Who a process is, for listing and lookup.
#[derive(Debug, Clone)]
pub(crate) struct ProcessMeta {
    pub(crate) argv: Vec<String>,
    pub(crate) tag: Option<String>,
    pub(crate) background: bool,
}

/// A process envd started.
#[derive(Debug)]
pub(crate) struct ManagedProcess {
    pub(crate) process_id: u64,
    pub(crate) pid: u32,
    pub(crate) meta: ProcessMeta,
    stdin: tokio::sync::Mutex<Option<pipe::Sender>>,
    pty_master: Mutex<Option<OwnedFd>>,
    is_pty: bool,
    wait_outcome: watch::Sender<Option<WaitOutcome>>,
    timed_out: AtomicBool,
    output: Mutex<OutputState>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ManagedProcess {
    fn group(&self) -> Option<Pid> {
        Pid::from_raw(i32::try_from(self.pid).ok()?)
    }

    /// True until the reaper collected the process.
    pub(crate) fn alive(&self) -> bool {
        self.wait_outcome.borrow().is_none()
    }

    /// Sends `signal` to the process's group (a no-op once it was reaped).
    pub(crate) fn signal_group(&self, signal: Signal) -> Result<(), EnvdError> {
        if !self.alive() {
            return Ok(());
        }
        let Some(group) = self.group() else { return Ok(()) };
        match rustix::process::kill_process_group(group, signal) {
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(error) => Err(envd_error(EnvdErrorCode::Io, format!("cannot signal process {}: {error}", self.pid))),
        }
    }

    /// SIGKILL to the whole group.
    pub(crate) fn kill(&self) {
        if let Err(error) = self.signal_group(Signal::KILL) {
            tracing::warn!(%error, pid = self.pid, "cannot kill process");
        }
    }

    pub(crate) fn kill_for_timeout(&self) {
        if self.alive() {
            self.timed_out.store(true, Ordering::Release);
            self.kill();
        }
    }

    pub(crate) fn wait_outcome(&self) -> watch::Receiver<Option<WaitOutcome>> {
        self.wait_outcome.subscribe()
    }

    pub(crate) async fn write_stdin(&self, data: &[u8]) {
        let mut stdin = self.stdin.lock().await;
        if let Some(writer) = stdin.as_mut()
            && let Err(error) = writer.write_all(data).await
        {
            tracing::debug!(%error, pid = self.pid, "stdin closed");
            *stdin = None;
        }
    }

    /// Ends stdin; on a PTY, types end-of-file (`^D`) instead.
    pub(crate) async fn close_stdin(&self) {
        if self.is_pty {
            self.write_stdin(&[0x04]).await;
        } else {
            *self.stdin.lock().await = None;
        }
    }

    pub(crate) fn resize(&self, size: PtySize) -> Result<(), EnvdError> {
        let master = lock(&self.pty_master);
        let Some(master) = master.as_ref() else {
            return Err(envd_error(EnvdErrorCode::InvalidRequest, "the process has no terminal to resize"));
        };
        let winsize = rustix::termios::Winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
        rustix::termios::tcsetwinsize(master, winsize)
            .map_err(|error| envd_error(EnvdErrorCode::Io, format!("cannot resize the terminal: {error}")))
    }

    /// Registers a follower: the buffered output now, everything after it live.
    pub(crate) fn subscribe(&self) -> Subscription {
        let mut output = lock(&self.output);
        let mut replay: Vec<OutputEvent> = output.ring.iter().cloned().collect();
        if let Some(exit) = output.finished {
            replay.push(OutputEvent::Exited(exit));
            return Subscription { replay, live: None };
        }
        let (tx, rx) = mpsc::channel(FOLLOWER_QUEUE);
        output.followers.push(tx);
        Subscription { replay, live: Some(rx) }
    }

    /// Hands an output chunk to the ring buffer and every follower (waiting for slow followers).
    async fn publish(&self, event: OutputEvent) {
        let followers = {
            let mut output = lock(&self.output);
            if self.meta.background {
                let size = event_len(&event);
                output.ring.push_back(event.clone());
                output.ring_bytes += size;
                while output.ring_bytes > RING_BYTES {
                    match output.ring.pop_front() {
                        Some(old) => output.ring_bytes -= event_len(&old),
                        None => break,
                    }
                }
            }
            output.followers.clone()
        };
        let mut lost_one = false;
        for follower in followers {
            lost_one |= follower.send(event.clone()).await.is_err();
        }
        if lost_one {
            lock(&self.output).followers.retain(|follower| !follower.is_closed());
        }
    }

    async fn finish(&self, exit: ExitReport) {
        let followers = {
            let mut output = lock(&self.output);
            output.finished = Some(exit);
            std::mem::take(&mut output.followers)
        };
        *self.stdin.lock().await = None;
        *lock(&self.pty_master) = None;
        for follower in followers {
            let _ = follower.send(OutputEvent::Exited(exit)).await;
        }
    }

    fn finished(&self) -> Option<ExitReport> {
        lock(&self.output).finished
    }

    fn info(&self) -> ProcessInfo {
        let finished = self.finished();
        ProcessInfo {
            process_id: self.process_id,
            pid: self.pid,
            tag: self.meta.tag.clone(),
            argv: self.meta.argv.clone(),
            background: self.meta.background,
            exit_code: finished.and_then(|exit| exit.exit_code),
            signal: finished.and_then(|exit| exit.signal),
            running: finished.is_none(),
        }
    }
}

fn event_len(event: &OutputEvent) -> usize {
    match event {
        OutputEvent::Stdout(bytes) | OutputEvent::Stderr(bytes) => bytes.len(),
        OutputEvent::Exited(_) => 0,
    }
}

#[derive(Debug, Default)]
struct Table {
    by_id: BTreeMap<u64, Arc<ManagedProcess>>,
    /// Children not reaped yet.
    by_pid: HashMap<i32, Arc<ManagedProcess>>,
    next_id: u64,
}

/// Every process envd started.
#[derive(Debug, Default)]
pub(crate) struct ProcessTable {
    table: Mutex<Table>,
}

/// The pipes (or terminal) of a freshly spawned process, for its output pump.
#[derive(Debug)]
pub(crate) struct ProcessOutput {
    stdout: OwnedFd,
    stderr: Option<OwnedFd>,
}

impl ProcessTable {
    /// Spawns `plan` and registers it, atomically with respect to the reaper. Blocks (fork/exec):
    /// call it from a blocking task.
    pub(crate) fn spawn(
        &self,
        plan: &SpawnPlan,
        meta: ProcessMeta,
    ) -> Result<(Arc<ManagedProcess>, ProcessOutput), EnvdError> {
        let mut table = lock(&self.table);
        if let Some(tag) = &meta.tag {
            let in_use = table.by_id.values().any(|p| p.meta.tag.as_ref() == Some(tag) && p.finished().is_none());
            if in_use {
                return Err(envd_error(EnvdErrorCode::TagInUse, format!("tag `{tag}` is used by a running process")));
            }
        }
        let Spawned { pid, stdin, stdout, stderr, pty_master } = spawn(plan).map_err(|error| {
            envd_error(EnvdErrorCode::SpawnFailed, format!("cannot start `{}`: {error}", plan.program))
        })?;
        let stdin = nonblocking(stdin)
            .and_then(pipe::Sender::from_owned_fd_unchecked)
            .map_err(|error| envd_error(EnvdErrorCode::Io, format!("cannot watch stdin: {error}")))?;
        table.next_id += 1;
        let process = Arc::new(ManagedProcess {
            process_id: table.next_id,
            pid,
            meta,
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            is_pty: pty_master.is_some(),
            pty_master: Mutex::new(pty_master),
            wait_outcome: watch::Sender::new(None),
            timed_out: AtomicBool::new(false),
            output: Mutex::default(),
        });
        table.by_id.insert(process.process_id, process.clone());
        if let Ok(raw) = i32::try_from(pid) {
            table.by_pid.insert(raw, process.clone());
        }
        Ok((process, ProcessOutput { stdout, stderr }))
    }

    /// Collects every exited child; ours get their status. Blocks while a spawn is in progress.
    pub(crate) fn reap(&self) {
        let mut table = lock(&self.table);
        loop {
            match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some((pid, status))) => {
                    let outcome = WaitOutcome { exit_code: status.exit_status(), signal: status.terminating_signal() };
                    match table.by_pid.remove(&pid.as_raw_nonzero().get()) {
                        Some(process) => {
                            tracing::debug!(pid = process.pid, ?outcome, "process exited");
                            process.wait_outcome.send_replace(Some(outcome));
                        }
                        None => tracing::debug!(pid = pid.as_raw_nonzero().get(), "reaped an orphan"),
                    }
                }
                Ok(None) | Err(Errno::CHILD) => break,
                Err(Errno::INTR) => {}
                Err(error) => {
                    tracing::warn!(%error, "waitpid failed");
                    break;
                }
            }
        }
    }

    pub(crate) fn get(&self, process_id: u64) -> Option<Arc<ManagedProcess>> {
        lock(&self.table).by_id.get(&process_id).cloned()
    }

    /// The running process with `tag`, else the latest finished one.
    pub(crate) fn by_tag(&self, tag: &str) -> Option<Arc<ManagedProcess>> {
        let table = lock(&self.table);
        let mut tagged = table.by_id.values().rev().filter(|p| p.meta.tag.as_deref() == Some(tag));
        let latest = tagged.clone().next().cloned();
        tagged.find(|p| p.finished().is_none()).cloned().or(latest)
    }

    pub(crate) fn list(&self) -> Vec<ProcessInfo> {
        lock(&self.table).by_id.values().map(|process| process.info()).collect()
    }

    pub(crate) fn signal(&self, process_id: u64, signal: i32) -> Result<(), EnvdError> {
        let signal = parse_signal(signal)?;
        let process = self
            .get(process_id)
            .ok_or_else(|| envd_error(EnvdErrorCode::NotFound, format!("no process {process_id}")))?;
        process.signal_group(signal)
    }

    pub(crate) fn signal_all_running(&self, signal: Signal) {
        let running: Vec<_> = lock(&self.table).by_pid.values().cloned().collect();
        for process in running {
            let _ = process.signal_group(signal);
        }
    }

    pub(crate) fn any_unreaped(&self) -> bool {
        !lock(&self.table).by_pid.is_empty()
    }

    /// Forgets finished foreground processes and all but the latest finished background ones.
    fn prune(&self) {
        let mut table = lock(&self.table);
        let finished: Vec<(u64, bool)> = table
            .by_id
            .values()
            .filter(|p| p.finished().is_some())
            .map(|p| (p.process_id, p.meta.background))
            .collect();
        let background_finished = finished.iter().filter(|(_, background)| *background).count();
        let mut background_to_drop = background_finished.saturating_sub(FINISHED_KEPT);
        for (id, background) in finished {
            if !background {
                table.by_id.remove(&id);
            } else if background_to_drop > 0 {
                table.by_id.remove(&id);
                background_to_drop -= 1;
            }
        }
    }
}

pub(crate) fn parse_signal(signal: i32) -> Result<Signal, EnvdError> {
    Signal::from_named_raw(signal)
        .ok_or_else(|| envd_error(EnvdErrorCode::InvalidRequest, format!("unsupported signal {signal}")))
}

/// Reaps on every SIGCHLD (and once a second, in case a signal was coalesced away).
pub(crate) async fn reap_forever(table: Arc<ProcessTable>, mut sigchld: SignalStream) {
    loop {
        tokio::select! {
            _ = sigchld.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let table = table.clone();
        if let Err(error) = tokio::task::spawn_blocking(move || table.reap()).await {
            tracing::error!(%error, "the reaper task failed");
        }
    }
}

/// As PID 1: signals every other process in the sandbox's pid namespace.
pub(crate) fn signal_every_other_process(signal: Signal) {
    let Ok(proc_entries) = std::fs::read_dir("/proc") else { return };
    for entry in proc_entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        if let Some(pid) = Pid::from_raw(pid).filter(|pid| pid.as_raw_nonzero().get() != 1) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }
}

/// After the leader exits, how long output may pause before envd stops waiting for more (a
/// daemonised grandchild may hold the pipe open forever).
const DRAIN_IDLE: Duration = Duration::from_millis(200);
/// After the leader exits, the longest envd keeps draining output.
const DRAIN_MAX: Duration = Duration::from_secs(5);
const READ_CHUNK: usize = 64 * 1024;

/// Moves a process's output into its ring and followers until it exited and its pipes are
/// drained, then reports the exit.
pub(crate) async fn pump_output(process: Arc<ManagedProcess>, output: ProcessOutput, table: Arc<ProcessTable>) {
    let mut stdout = open_reader(output.stdout);
    let mut stderr = output.stderr.and_then(open_reader);
    let mut wait_outcome = process.wait_outcome();
    let mut outcome = *wait_outcome.borrow_and_update();
    let far_future = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    let mut drain_until = far_future;
    let mut idle_until = far_future;
    if outcome.is_some() {
        drain_until = tokio::time::Instant::now() + DRAIN_MAX;
        idle_until = tokio::time::Instant::now() + DRAIN_IDLE;
    }
    let mut stdout_buffer = vec![0u8; READ_CHUNK];
    let mut stderr_buffer = vec![0u8; READ_CHUNK];
    loop {
        if outcome.is_some() && stdout.is_none() && stderr.is_none() {
            break;
        }
        tokio::select! {
            chunk = read_chunk(&mut stdout, &mut stdout_buffer), if stdout.is_some() => match chunk {
                Some(bytes) => process.publish(OutputEvent::Stdout(bytes)).await,
                None => stdout = None,
            },
            chunk = read_chunk(&mut stderr, &mut stderr_buffer), if stderr.is_some() => match chunk {
                Some(bytes) => process.publish(OutputEvent::Stderr(bytes)).await,
                None => stderr = None,
            },
            changed = wait_outcome.changed(), if outcome.is_none() => {
                if changed.is_err() {
                    break;
                }
                outcome = *wait_outcome.borrow_and_update();
                if outcome.is_some() {
                    drain_until = tokio::time::Instant::now() + DRAIN_MAX;
                }
            }
            () = tokio::time::sleep_until(idle_until.min(drain_until)), if outcome.is_some() => break,
        }
        if outcome.is_some() {
            idle_until = tokio::time::Instant::now() + DRAIN_IDLE;
        }
    }
    let outcome = outcome.unwrap_or(WaitOutcome { exit_code: None, signal: None });
    let report = ExitReport {
        exit_code: outcome.exit_code,
        signal: outcome.signal,
        timed_out: process.timed_out.load(Ordering::Acquire),
    };
    process.finish(report).await;
    table.prune();
}

/// `fd` in non-blocking mode (the tokio pipe types need it; the PTY master is not a pipe, so the
/// checked constructors would refuse it).
fn nonblocking(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    rustix::io::ioctl_fionbio(&fd, true)?;
    Ok(fd)
}

fn open_reader(fd: OwnedFd) -> Option<pipe::Receiver> {
    match nonblocking(fd).and_then(pipe::Receiver::from_owned_fd_unchecked) {
        Ok(reader) => Some(reader),
        Err(error) => {
            tracing::warn!(%error, "cannot read process output");
            None
        }
    }
}

/// The next chunk, or `None` at end of file (a PTY whose every holder closed reports EIO).
async fn read_chunk(reader: &mut Option<pipe::Receiver>, buffer: &mut [u8]) -> Option<Bytes> {
    use tokio::io::AsyncReadExt;
    let reader = reader.as_mut()?;
    match reader.read(buffer).await {
        Ok(0) => None,
        Ok(read) => buffer.get(..read).map(Bytes::copy_from_slice),
        Err(error) => {
            if error.raw_os_error() != Some(Errno::IO.raw_os_error()) {
                tracing::debug!(%error, "reading process output failed");
            }
            None
        }
    }
}
