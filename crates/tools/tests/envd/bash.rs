//! bash through envd: exit codes, labelled streams, the working directory, timeouts, long output,
//! and cancellation by dropping the call.

use std::time::Duration;

use runtools_agent::{ToolCall, ToolSet};
use runtools_protocol::agent::ToolStatus;
use runtools_tools::OutputLimits;
use serde_json::json;

use crate::common::Fixture;

#[tokio::test]
async fn a_non_zero_exit_is_a_result_with_its_code() {
    let fixture = Fixture::new().await;
    let output = fixture.call("bash", json!({"command": "echo hi; exit 3"})).await;
    assert_eq!(output.status, ToolStatus::Ok);
    assert_eq!(output.exit_code, Some(3));
    assert_eq!(output.content, "hi\n[exit code 3]");

    let output = fixture.call("bash", json!({"command": "true"})).await;
    assert_eq!((output.exit_code, output.content.as_str()), (Some(0), "(no output)\n[exit code 0]"));
}

#[tokio::test]
async fn stdout_and_stderr_are_labelled() {
    let fixture = Fixture::new().await;
    let output = fixture.call("bash", json!({"command": "echo out; echo err >&2"})).await;
    assert_eq!(output.content, "[stdout]\nout\n[stderr]\nerr\n[exit code 0]");
}

#[tokio::test]
async fn commands_run_in_the_working_directory_with_bash() {
    let fixture = Fixture::new().await;
    fixture.write("marker.txt", "here");
    let output =
        fixture.call("bash", json!({"command": "pwd; cat marker.txt; echo; echo ${BASH_VERSION:+bash}"})).await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    // Run by bash, not sh: $BASH_VERSION is set.
    assert_eq!(output.content, format!("{}\nhere\nbash\n[exit code 0]", fixture.root()));
}

#[tokio::test]
async fn a_timeout_stops_the_command_and_keeps_its_output() {
    let fixture = Fixture::new().await;
    let started = std::time::Instant::now();
    let output = fixture.call("bash", json!({"command": "echo started; sleep 30", "timeout_secs": 1})).await;
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(output.status, ToolStatus::Timeout);
    assert_eq!(output.exit_code, None);
    assert_eq!(output.content, "started\n[timed out after 1 s: the command was killed]");
}

#[tokio::test]
async fn long_output_is_cut_to_its_head_and_tail() {
    let fixture = Fixture::with_context(|context| {
        context.with_output_limits(OutputLimits { head_bytes: 1_000, tail_bytes: 1_000, ..OutputLimits::default() })
    })
    .await;
    let output = fixture.call("bash", json!({"command": "seq 1 100000"})).await;
    assert_eq!(output.status, ToolStatus::Ok);
    assert!(output.content.starts_with("1\n2\n3\n"), "{}", &output.content[..50]);
    assert!(output.content.ends_with("99999\n100000\n[exit code 0]"), "{}", output.content);
    assert!(output.content.len() < 2_200, "{} bytes", output.content.len());
    let note = output.content.lines().find(|line| line.starts_with("[…")).expect("a cut note");
    assert!(note.ends_with("bytes cut …]"), "{note}");
    // The kept lines plus the cut lines are all 100,000 lines.
    let kept = output.content.lines().filter(|line| line.parse::<u32>().is_ok()).count();
    let cut: usize = note.trim_start_matches("[… ").split(' ').next().unwrap().replace(',', "").parse().unwrap();
    assert_eq!(kept + cut, 100_000);
}

#[tokio::test]
async fn invalid_input_is_refused() {
    let fixture = Fixture::new().await;
    let output = fixture.call("bash", json!({"command": "true", "timeout_secs": 601})).await;
    assert_eq!(output.status, ToolStatus::Error);
    assert!(output.content.contains("between 1 and 600"), "{}", output.content);
    let output = fixture.call("bash", json!({"command": "  "})).await;
    assert!(output.content.contains("`command` is empty"), "{}", output.content);
    let output = fixture.call("bash", json!({"cmd": "ls"})).await;
    assert!(output.content.contains("unknown field `cmd`"), "{}", output.content);
}

#[tokio::test]
async fn dropping_the_call_kills_the_command() {
    let fixture = Fixture::new().await;
    let marker = fixture.path("should-not-exist");
    let command = format!("sleep 2; touch {}", marker.display());
    let call = ToolCall { id: "c".into(), name: "bash".into(), input: json!({"command": command}) };
    let result = tokio::time::timeout(Duration::from_millis(500), fixture.toolbox.call(&call)).await;
    assert!(result.is_err(), "the command should still have been running");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!marker.exists(), "the command kept running after its call was dropped");
}
