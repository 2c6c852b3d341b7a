//! The `exec` and `attach` streams: validating an [`ExecSpec`] into a spawn plan (argv or shell
//! command, environment, cwd, user, PTY), starting the process with its output pump and timeout,
//! then following it: output and exit to the client, stdin / signals / resizes / cancel from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use runtools_protocol::envd::{AttachSpec, Control, EnvdError, EnvdErrorCode, ExecSpec, PtySize, Reply};

use super::EnvdState;
use super::connection::{HandlerError, HandlerResult, Outbound, StreamContext, StreamInput, envd_error};
use super::processes::{ManagedProcess, OutputEvent, ProcessMeta, Subscription, parse_signal, pump_output};
use super::spawn::SpawnPlan;
use super::users;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn invalid(message: impl Into<String>) -> EnvdError {
    envd_error(EnvdErrorCode::InvalidRequest, message)
}

fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

/// Turns a request into what to spawn.
fn plan(state: &EnvdState, spec: &ExecSpec) -> Result<SpawnPlan, EnvdError> {
    let (program, args) = match (&spec.argv, &spec.cmd) {
        (Some(argv), None) => match argv.split_first() {
            Some((program, args)) if !program.is_empty() => (program.clone(), args.to_vec()),
            _ => return Err(invalid("argv must name a program")),
        },
        (None, Some(cmd)) => ("/bin/sh".to_owned(), vec!["-c".to_owned(), cmd.clone()]),
        _ => return Err(invalid("exactly one of argv and cmd must be set")),
    };
    if has_nul(&program) || args.iter().any(|arg| has_nul(arg)) {
        return Err(invalid("arguments may not contain NUL bytes"));
    }
    if spec.tag.as_deref().is_some_and(str::is_empty) {
        return Err(invalid("a tag may not be empty"));
    }
    if let Some(PtySize { cols, rows }) = spec.pty
        && (cols == 0 || rows == 0)
    {
        return Err(invalid("a terminal needs at least one column and one row"));
    }

    let root = &state.root;
    let (user_name, home, identity) = match &spec.user {
        Some(user) => {
            let user = users::resolve(root, user)?;
            (user.name, user.home, Some(user.identity))
        }
        None => {
            let (name, home) = users::current(root);
            (name, home, None)
        }
    };

    let mut env: Vec<(String, String)> = vec![
        ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
        ("HOME".to_owned(), home.clone()),
        ("USER".to_owned(), user_name.clone()),
        ("LOGNAME".to_owned(), user_name),
    ];
    if spec.pty.is_some() {
        env.push(("TERM".to_owned(), "xterm-256color".to_owned()));
    }
    let overrides = state.base_env.iter().cloned().chain(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (key, value) in overrides {
        if key.is_empty() || key.contains('=') || has_nul(&key) || has_nul(&value) {
            return Err(invalid(format!("invalid environment variable `{key}`")));
        }
        match env.iter_mut().find(|(existing, _)| *existing == key) {
            Some(slot) => slot.1 = value,
            None => env.push((key, value)),
        }
    }

    let cwd = match &spec.cwd {
        Some(cwd) if cwd.starts_with('/') && !has_nul(cwd) => PathBuf::from(cwd),
        Some(cwd) => return Err(invalid(format!("cwd `{cwd}` must be an absolute path"))),
        None if spec.user.is_some() && Path::new(&home).is_dir() => PathBuf::from(home),
        None => PathBuf::from("/"),
    };
    Ok(SpawnPlan { program, args, env, cwd, identity, pty: spec.pty })
}

/// Most argv bytes kept for `list_processes`, so a listing always fits in a frame.
const LISTED_ARGV_BYTES: usize = 4096;

/// The argv as listed: cut (marked with `…`) after [`LISTED_ARGV_BYTES`].
fn listed_argv<'a>(argv: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut budget = LISTED_ARGV_BYTES;
    let mut listed = Vec::new();
    for arg in argv {
        if arg.len() <= budget {
            budget -= arg.len();
            listed.push(arg.clone());
            continue;
        }
        let mut cut = budget;
        while !arg.is_char_boundary(cut) {
            cut -= 1;
        }
        listed.push(format!("{}…", &arg[..cut]));
        break;
    }
    listed
}

/// Kills a foreground process whose stream goes away before it exits.
#[derive(Debug)]
struct KillOnDrop(Option<Arc<ManagedProcess>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(process) = &self.0
            && process.alive()
        {
            tracing::debug!(pid = process.pid, "stream gone: killing its foreground process");
            process.kill();
        }
    }
}

pub(crate) async fn exec(context: StreamContext, spec: ExecSpec) -> HandlerResult {
    let plan = plan(&context.state, &spec)?;
    let argv = listed_argv(std::iter::once(&plan.program).chain(&plan.args));
    let meta = ProcessMeta { argv, tag: spec.tag.clone(), background: spec.background };
    let table = context.state.processes.clone();
    let (process, output) = tokio::task::spawn_blocking(move || table.spawn(&plan, meta))
        .await
        .map_err(|error| envd_error(EnvdErrorCode::Io, format!("the spawn task failed: {error}")))??;
    tracing::debug!(process_id = process.process_id, pid = process.pid, "process started");
    let _kill_on_drop = KillOnDrop((!spec.background).then(|| process.clone()));
    // Follow before the pump starts, so this stream sees every byte.
    let subscription = process.subscribe();
    tokio::spawn(pump_output(process.clone(), output, context.state.processes.clone()));
    if let Some(timeout_ms) = spec.timeout_ms {
        tokio::spawn(enforce_timeout(process.clone(), Duration::from_millis(timeout_ms)));
    }
    context.out.reply(&Reply::Started { process_id: process.process_id, pid: process.pid }).await?;
    follow(context, process, subscription, !spec.background).await
}

async fn enforce_timeout(process: Arc<ManagedProcess>, timeout: Duration) {
    let mut outcome = process.wait_outcome();
    let exited = outcome.wait_for(Option::is_some);
    if tokio::time::timeout(timeout, exited).await.is_err() {
        tracing::debug!(pid = process.pid, "timed out: killing the process group");
        process.kill_for_timeout();
    }
}

pub(crate) async fn attach(context: StreamContext, spec: AttachSpec) -> HandlerResult {
    let processes = &context.state.processes;
    let process = match (&spec.process_id, &spec.tag) {
        (Some(id), None) => processes.get(*id),
        (None, Some(tag)) => processes.by_tag(tag),
        _ => return Err(invalid("exactly one of process_id and tag must be set").into()),
    };
    let process = process.ok_or_else(|| {
        let what = match (&spec.process_id, &spec.tag) {
            (Some(id), _) => format!("no process {id}"),
            (_, tag) => format!("no process tagged `{}`", tag.as_deref().unwrap_or_default()),
        };
        envd_error(EnvdErrorCode::NotFound, what)
    })?;
    let subscription = process.subscribe();
    context.out.reply(&Reply::Started { process_id: process.process_id, pid: process.pid }).await?;
    follow(context, process, subscription, false).await
}

/// Streams output to the client and applies its input, until the exit was sent or the client
/// cancels (which kills the process when `cancel_kills`, else just stops following).
async fn follow(
    mut context: StreamContext,
    process: Arc<ManagedProcess>,
    subscription: Subscription,
    cancel_kills: bool,
) -> HandlerResult {
    let out = context.out.clone();
    let mut output = std::pin::pin!(forward_output(&out, subscription));
    let input = apply_input(&mut context, &process);
    tokio::select! {
        sent = &mut output => sent,
        () = input => {
            if !cancel_kills {
                return Ok(());
            }
            process.kill();
            output.await
        }
    }
}

async fn forward_output(out: &Outbound, subscription: Subscription) -> HandlerResult {
    let Subscription { replay, live } = subscription;
    for event in replay {
        if send_event(out, event).await? {
            return Ok(());
        }
    }
    let Some(mut live) = live else { return Ok(()) };
    while let Some(event) = live.recv().await {
        if send_event(out, event).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// Sends one event; true when it was the exit.
async fn send_event(out: &Outbound, event: OutputEvent) -> Result<bool, HandlerError> {
    match event {
        OutputEvent::Stdout(bytes) => out.stdout(bytes).await.map(|()| false),
        OutputEvent::Stderr(bytes) => out.stderr(bytes).await.map(|()| false),
        OutputEvent::Exited(exit) => {
            let reply = Reply::Exited { exit_code: exit.exit_code, signal: exit.signal, timed_out: exit.timed_out };
            out.reply(&reply).await.map(|()| true)
        }
    }
}

/// Applies stdin and controls until the client sends `Cancel`.
async fn apply_input(context: &mut StreamContext, process: &ManagedProcess) {
    loop {
        match context.next_input().await {
            StreamInput::Data(bytes) => process.write_stdin(&bytes).await,
            StreamInput::Eof => process.close_stdin().await,
            StreamInput::Control(Control::Cancel) => return,
            StreamInput::Control(Control::Signal { signal }) => {
                if let Err(error) = parse_signal(signal).and_then(|signal| process.signal_group(signal)) {
                    tracing::debug!(%error, "cannot deliver a signal");
                }
            }
            StreamInput::Control(Control::Resize { cols, rows }) => {
                if let Err(error) = process.resize(PtySize { cols, rows }) {
                    tracing::debug!(%error, "cannot resize");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn listed_argv_is_cut_on_a_char_boundary() {
        let short = ["sh".to_owned(), "-c".to_owned(), "echo hi".to_owned()];
        assert_eq!(listed_argv(short.iter()), short);
        let long = ["sh".to_owned(), "é".repeat(5000)];
        let listed = listed_argv(long.iter());
        assert_eq!(listed.len(), 2);
        assert!(listed[1].ends_with('…'));
        assert!(listed[1].len() <= LISTED_ARGV_BYTES + '…'.len_utf8());
    }
}
