//! The `bash` tool: runs a command line in the sandbox through envd (`/bin/bash -c`, or `/bin/sh -c`
//! when the sandbox has no bash), in the working directory, as the context's user, killed after its
//! timeout. Output is streamed into a bounded head + tail per stream, so a command printing
//! gigabytes costs no memory; a non-zero exit is a normal result the model reads.

use std::time::Duration;

use runtools_agent::ToolOutput;
use runtools_envd::{Exit, ProcessEvent};
use runtools_protocol::agent::ToolSpec;
use runtools_protocol::envd::ExecSpec;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::context::ToolContext;
use crate::output::HeadTail;

pub(crate) const NAME: &str = "bash";

const DEFAULT_TIMEOUT_SECS: u64 = 120;
const MAX_TIMEOUT_SECS: u64 = 600;
/// How long past the timeout the host waits for envd to report the kill before giving up itself.
const HOST_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BashInput {
    /// The command line to run, e.g. `cargo test 2>&1 | tail -n 50`.
    command: String,
    /// Seconds before the command is killed (default 120, at most 600).
    #[serde(default)]
    timeout_secs: Option<u64>,
    /// What the command does, in a few words (shown to the user watching the run).
    #[serde(default)]
    description: Option<String>,
}

pub(crate) fn spec() -> ToolSpec {
    ToolSpec {
        name: NAME.to_owned(),
        description: format!(
            "Runs a shell command in the sandbox with bash (`bash -c`) and returns its output and exit code. \
            Each call is a fresh shell in the working directory: `cd`, variables and background jobs do not \
            carry over to the next call, so chain dependent steps with `&&` or use absolute paths. Stdin is \
            empty, so never run interactive programs (editors, pagers, prompts): pass flags such as `-y` or \
            `--no-pager`. stdout and stderr are returned separately, labelled when both have output; a non-zero \
            exit code is reported, not treated as a failure of the tool. Long output is cut to its beginning and \
            end, so filter it (`| tail -n 50`, `| grep -m 20 error`) when you only need part of it. The command is \
            killed after `timeout_secs` (default {DEFAULT_TIMEOUT_SECS}, at most {MAX_TIMEOUT_SECS}); what it \
            printed until then is returned. Prefer the read_file, edit_file, grep and glob tools over cat, sed, \
            grep and find for reading, editing and searching files."
        ),
        input_schema: crate::schema::input_schema::<BashInput>(),
    }
}

pub(crate) async fn call(context: &ToolContext, input: &serde_json::Value) -> ToolOutput {
    let input: BashInput = match crate::parse_input(NAME, input) {
        Ok(input) => input,
        Err(output) => return output,
    };
    if input.command.trim().is_empty() {
        return ToolOutput::error("`command` is empty; give the command line to run");
    }
    let timeout_secs = input.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if timeout_secs == 0 || timeout_secs > MAX_TIMEOUT_SECS {
        return ToolOutput::error(format!(
            "`timeout_secs` must be between 1 and {MAX_TIMEOUT_SECS} (got {timeout_secs})"
        ));
    }
    tracing::debug!(description = input.description.as_deref(), timeout_secs, "bash");
    run(context, &input.command, timeout_secs).await
}

async fn run(context: &ToolContext, command: &str, timeout_secs: u64) -> ToolOutput {
    let shell = context.shell().await.to_owned();
    let cwd = context.working_dir().await.to_owned();
    let spec = ExecSpec {
        argv: Some(vec![shell, "-c".to_owned(), command.to_owned()]),
        cwd: Some(cwd.clone()),
        user: context.user().map(str::to_owned),
        timeout_ms: Some(timeout_secs * 1000),
        ..ExecSpec::default()
    };
    let mut process = match context.envd().exec(spec).await {
        Ok(process) => process,
        Err(error) => return ToolOutput::error(format!("could not start the command (in {cwd}): {error}")),
    };
    tracing::debug!(process_id = process.process_id, "bash started");
    if let Err(error) = process.close_stdin().await {
        tracing::debug!(%error, "could not close the command's stdin");
    }
    let limits = context.output_limits();
    let mut stdout = HeadTail::new(limits);
    let mut stderr = HeadTail::new(limits);
    let deadline = tokio::time::sleep(Duration::from_secs(timeout_secs) + HOST_GRACE);
    tokio::pin!(deadline);
    let mut exit = None;
    let mut host_timeout = false;
    loop {
        tokio::select! {
            event = process.next() => match event {
                Some(ProcessEvent::Stdout(bytes)) => stdout.push(&bytes),
                Some(ProcessEvent::Stderr(bytes)) => stderr.push(&bytes),
                Some(ProcessEvent::Exited(status)) => exit = Some(status),
                None => break,
            },
            () = &mut deadline => {
                // envd should have killed it already; dropping `process` cancels the stream.
                host_timeout = true;
                break;
            }
        }
    }
    drop(process);
    let mut content = render_streams(&stdout, &stderr);
    match exit {
        Some(Exit { timed_out: true, .. }) => {
            content.push_str(&format!("[timed out after {timeout_secs} s: the command was killed]"));
            ToolOutput::timeout(content)
        }
        None if host_timeout => {
            content.push_str(&format!("[timed out after {timeout_secs} s: the command was stopped]"));
            ToolOutput::timeout(content)
        }
        None => {
            content.push_str("[the connection to the sandbox was lost before the command finished]");
            ToolOutput::error(content)
        }
        Some(Exit { exit_code: Some(code), .. }) => {
            content.push_str(&format!("[exit code {code}]"));
            ToolOutput::ok(content).with_exit_code(Some(code))
        }
        Some(Exit { signal, .. }) => {
            let signal = signal.unwrap_or(0);
            content.push_str(&format!("[killed by signal {signal}{}]", signal_name(signal)));
            ToolOutput::ok(content).with_exit_code(Some(128 + signal))
        }
    }
}

/// stdout and stderr, labelled when there is something on stderr; ends with a line break.
fn render_streams(stdout: &HeadTail, stderr: &HeadTail) -> String {
    let mut text = String::new();
    let mut section = |label: Option<&str>, stream: &HeadTail| {
        if let Some(label) = label {
            text.push_str(label);
            text.push('\n');
        }
        let rendered = stream.render();
        text.push_str(&rendered);
        if !rendered.ends_with('\n') {
            text.push('\n');
        }
    };
    match (stdout.is_empty(), stderr.is_empty()) {
        (true, true) => text.push_str("(no output)\n"),
        (false, true) => section(None, stdout),
        (true, false) => section(Some("[stderr]"), stderr),
        (false, false) => {
            section(Some("[stdout]"), stdout);
            section(Some("[stderr]"), stderr);
        }
    }
    text
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        6 => " (SIGABRT)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        13 => " (SIGPIPE)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(text: &str) -> HeadTail {
        let mut kept = HeadTail::with_limits(1000, 1000);
        kept.push(text.as_bytes());
        kept
    }

    #[test]
    fn streams_are_labelled_only_when_stderr_has_output() {
        assert_eq!(render_streams(&stream(""), &stream("")), "(no output)\n");
        assert_eq!(render_streams(&stream("hi"), &stream("")), "hi\n");
        assert_eq!(render_streams(&stream(""), &stream("oops\n")), "[stderr]\noops\n");
        assert_eq!(render_streams(&stream("a\n"), &stream("b\n")), "[stdout]\na\n[stderr]\nb\n");
    }
}
