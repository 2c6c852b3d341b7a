//! The agent loop's behaviour with a scripted in-process model and scripted tools: the event
//! sequence and envelope, every control (cancel both ways, pause/resume), max turns, tool and run
//! timeouts, the budget, bounded parallel tools, compaction on overflow, and continuing from a
//! checkpoint after a crash without re-running finished tool calls.
//!
//! (The provider adapters are tested over real HTTP against the wire-format model server in
//! their own test files; here the model is a test double of the `Model` trait so that timing and
//! failures are exact.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runtools_agent::model::{Delta, DeltaSink, Model, ModelError, ModelErrorKind, ModelRequest, ModelResponse};
use runtools_agent::run::FinishedCall;
use runtools_agent::{
    Agent, CollectingSink, EventSink, Price, PriceTable, RunControl, RunState, SinkError, ToolCall, ToolOutput,
    ToolSet, run,
};
use runtools_protocol::agent::{
    AgentEvent, CancelMode, ContentBlock, Role, RunErrorCode, StopReason, ToolSpec, ToolStatus, Usage,
};
use runtools_protocol::{EventEnvelope, RunId};
use serde_json::json;

enum Step {
    Respond(ModelResponse),
    Fail(ModelError),
    Hang,
    Slow(Duration, ModelResponse),
}

#[derive(Debug, Default)]
struct ScriptedModel {
    steps: Mutex<VecDeque<StepBox>>,
    requests: Mutex<Vec<ModelRequest>>,
}

struct StepBox(Step);

impl std::fmt::Debug for StepBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Step")
    }
}

impl ScriptedModel {
    fn new(steps: Vec<Step>) -> Arc<Self> {
        Arc::new(Self { steps: Mutex::new(steps.into_iter().map(StepBox).collect()), requests: Mutex::default() })
    }

    fn calls(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

#[async_trait::async_trait]
impl Model for ScriptedModel {
    fn provider(&self) -> &'static str {
        "scripted"
    }

    async fn stream(&self, request: &ModelRequest, sink: DeltaSink<'_>) -> Result<ModelResponse, ModelError> {
        self.requests.lock().unwrap().push(request.clone());
        let step = self.steps.lock().unwrap().pop_front();
        let Some(StepBox(step)) = step else {
            return Err(ModelError::new("scripted", ModelErrorKind::InvalidRequest, "script exhausted"));
        };
        let response = match step {
            Step::Respond(response) => response,
            Step::Fail(error) => return Err(error),
            Step::Hang => std::future::pending().await,
            Step::Slow(wait, response) => {
                tokio::time::sleep(wait).await;
                response
            }
        };
        for block in &response.content {
            match block {
                ContentBlock::Thinking { thinking, .. } => {
                    for chunk in thinking.split_inclusive(' ') {
                        sink(Delta::Thinking(chunk.to_owned()));
                    }
                }
                ContentBlock::Text { text } => {
                    for chunk in text.split_inclusive(' ') {
                        sink(Delta::Text(chunk.to_owned()));
                    }
                }
                ContentBlock::ToolUse { id, name, .. } => {
                    sink(Delta::ToolCallStarted { id: id.clone(), name: name.clone() })
                }
                _ => {}
            }
        }
        Ok(response)
    }
}

fn usage(input: u64, output: u64) -> Usage {
    Usage { input_tokens: input, output_tokens: output, ..Usage::default() }
}

fn text(answer: &str) -> Step {
    Step::Respond(ModelResponse {
        content: vec![ContentBlock::text(answer)],
        stop_reason: StopReason::EndTurn,
        raw_stop_reason: Some("end_turn".into()),
        usage: usage(100, 20),
        model: "test-model".into(),
    })
}

fn tool_use(id: &str, name: &str, input: serde_json::Value) -> ContentBlock {
    ContentBlock::ToolUse { id: id.into(), name: name.into(), input, provider_data: None }
}

fn calls(blocks: Vec<ContentBlock>) -> ModelResponse {
    ModelResponse {
        content: blocks,
        stop_reason: StopReason::ToolUse,
        raw_stop_reason: Some("tool_use".into()),
        usage: usage(100, 20),
        model: "test-model".into(),
    }
}

/// `echo` answers its input; `sleep` sleeps `ms` (and counts how many run at once and how many
/// were dropped mid-way); every call is counted by id.
#[derive(Debug, Default)]
struct TestTools {
    runs: Mutex<Vec<String>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    dropped: AtomicUsize,
}

struct DropGuard<'a>(&'a TestTools, bool);

impl Drop for DropGuard<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        if !self.1 {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[async_trait::async_trait]
impl ToolSet for TestTools {
    fn specs(&self) -> Vec<ToolSpec> {
        ["echo", "sleep"]
            .into_iter()
            .map(|name| ToolSpec {
                name: name.into(),
                description: name.into(),
                input_schema: json!({"type": "object"}),
            })
            .collect()
    }

    async fn call(&self, call: &ToolCall) -> ToolOutput {
        self.runs.lock().unwrap().push(call.id.clone());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let mut guard = DropGuard(self, false);
        let output = match call.name.as_str() {
            "echo" => ToolOutput::ok(call.input.to_string()).with_exit_code(Some(0)),
            "sleep" => {
                let ms = call.input["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                ToolOutput::ok(format!("slept {ms} ms"))
            }
            other => ToolOutput::denied(format!("no tool `{other}`")),
        };
        guard.1 = true;
        output
    }
}

fn agent(model: Arc<ScriptedModel>, tools: Arc<TestTools>) -> Agent {
    let mut prices = PriceTable::empty();
    prices.set("test-model", Price::new(1.0, 2.0));
    let mut agent = Agent::new(model, "test-model", tools);
    agent.system_prompt = Some("You are a test.".into());
    agent.prices = Arc::new(prices);
    agent
}

/// Asks `control` to cancel `after_ms` from now.
fn cancel_after(control: &RunControl, after_ms: u64, mode: CancelMode) {
    let control = control.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        control.cancel(mode);
    });
}

fn assert_well_formed(events: &[EventEnvelope], run_id: RunId) {
    for (index, event) in events.iter().enumerate() {
        assert_eq!(
            event.seq,
            index as u64 + 1,
            "seq has no gaps: {:?}",
            events.iter().map(|e| &e.kind).collect::<Vec<_>>()
        );
        assert_eq!(event.run_id, run_id);
        AgentEvent::from_parts(&event.kind, event.data.clone()).expect("every event parses back");
    }
    let terminal = events.iter().filter(|event| matches!(event.kind.as_str(), "complete" | "failed" | "cancelled"));
    assert_eq!(terminal.count(), 1, "exactly one terminal event");
    assert!(matches!(events.last().unwrap().kind.as_str(), "complete" | "failed" | "cancelled"));
}

fn terminal(sink: &CollectingSink) -> AgentEvent {
    let last = sink.events.last().unwrap();
    AgentEvent::from_parts(&last.kind, last.data.clone()).unwrap()
}

#[tokio::test]
async fn thinks_acts_and_repeats_until_the_final_answer() {
    let model = ScriptedModel::new(vec![
        Step::Respond(calls(vec![
            ContentBlock::Thinking {
                thinking: "I should look around".into(),
                signature: Some("sig".into()),
                provider_data: None,
            },
            ContentBlock::text("Let me check two things."),
            tool_use("c1", "echo", json!({"say": "one"})),
            tool_use("c2", "echo", json!({"say": "two"})),
        ])),
        text("All done: one and two."),
    ]);
    let tools = Arc::new(TestTools::default());
    let agent = agent(model.clone(), tools.clone());
    let state = RunState::new(RunId::new(), "check things");
    let run_id = state.run_id;
    let mut sink = CollectingSink::default();
    let state = run(&agent, state, &RunControl::new(), &mut sink).await.unwrap();

    assert_well_formed(&sink.events, run_id);
    let kinds = sink.kinds();
    assert_eq!(kinds[0], "run.started");
    let expected_order =
        ["thinking.delta", "thinking", "message", "usage", "tool_call", "tool_call", "tool_result", "tool_result"];
    let mut position = 0;
    for kind in &kinds {
        if position < expected_order.len() && *kind == expected_order[position] {
            position += 1;
        }
    }
    assert_eq!(position, expected_order.len(), "events in order: {kinds:?}");
    assert!(kinds.contains(&"message.delta"));
    let thinking = sink.events.iter().find(|e| e.kind == "thinking").unwrap();
    assert_eq!(thinking.data["text"], "I should look around");
    assert_eq!(thinking.step, Some(1));
    let result = sink.events.iter().find(|e| e.kind == "tool_result").unwrap();
    assert_eq!(result.data["status"], "ok");
    assert_eq!(result.data["exit_code"], 0);
    match terminal(&sink) {
        AgentEvent::Complete { stop_reason, output, usage, cost_usd, turns, .. } => {
            assert_eq!(stop_reason, StopReason::EndTurn);
            assert_eq!(output, "All done: one and two.");
            assert_eq!(turns, 2);
            assert_eq!(usage.input_tokens, 200);
            assert_eq!(usage.output_tokens, 40);
            assert!((cost_usd - (200.0 * 1.0 + 40.0 * 2.0) / 1e6).abs() < 1e-12, "{cost_usd}");
        }
        other => panic!("expected complete, got {other:?}"),
    }
    // The second call carries the assistant turn (thinking with its signature) and both results.
    let requests = model.requests.lock().unwrap();
    assert_eq!(requests[1].system.as_deref(), Some("You are a test."));
    let assistant = &requests[1].messages[1];
    assert_eq!(assistant.role, Role::Assistant);
    assert!(matches!(&assistant.content[0], ContentBlock::Thinking { signature: Some(s), .. } if s == "sig"));
    let results = &requests[1].messages[2];
    assert_eq!(results.role, Role::User);
    let ids: Vec<_> = results
        .content
        .iter()
        .map(|block| match block {
            ContentBlock::ToolResult { tool_use_id, is_error, .. } => {
                assert!(!is_error);
                tool_use_id.as_str()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, ["c1", "c2"], "results in the order the model asked");
    assert_eq!(state.turns, 2);
    assert!(matches!(state.terminal, Some(AgentEvent::Complete { .. })));
}

#[tokio::test]
async fn max_turns_ends_the_run_with_a_clear_stop_reason() {
    let steps = (0..5).map(|i| Step::Respond(calls(vec![tool_use(&format!("c{i}"), "echo", json!({}))]))).collect();
    let model = ScriptedModel::new(steps);
    let mut agent = agent(model.clone(), Arc::new(TestTools::default()));
    agent.limits.max_turns = 3;
    let mut sink = CollectingSink::default();
    run(&agent, RunState::new(RunId::new(), "loop forever"), &RunControl::new(), &mut sink).await.unwrap();
    assert!(matches!(terminal(&sink), AgentEvent::Complete { stop_reason: StopReason::MaxTurns, turns: 3, .. }));
    assert_eq!(model.calls(), 3);
}

#[tokio::test]
async fn unknown_tools_are_denied_and_the_model_sees_it() {
    let model = ScriptedModel::new(vec![Step::Respond(calls(vec![tool_use("c1", "rm_rf", json!({}))])), text("ok")]);
    let agent = agent(model.clone(), Arc::new(TestTools::default()));
    let mut sink = CollectingSink::default();
    run(&agent, RunState::new(RunId::new(), "x"), &RunControl::new(), &mut sink).await.unwrap();
    let result = sink.events.iter().find(|e| e.kind == "tool_result").unwrap();
    assert_eq!(result.data["status"], "denied");
    let requests = model.requests.lock().unwrap();
    assert!(matches!(&requests[1].messages[2].content[0], ContentBlock::ToolResult { is_error: true, .. }));
}

#[tokio::test]
async fn immediate_cancel_aborts_the_model_call() {
    let model = ScriptedModel::new(vec![Step::Hang]);
    let agent = agent(model, Arc::new(TestTools::default()));
    let control = RunControl::new();
    cancel_after(&control, 50, CancelMode::Immediate);
    let mut sink = CollectingSink::default();
    let started = std::time::Instant::now();
    run(&agent, RunState::new(RunId::new(), "x"), &control, &mut sink).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(terminal(&sink), AgentEvent::Cancelled { mode: CancelMode::Immediate, turns: 0, .. }));
}

#[tokio::test]
async fn immediate_cancel_stops_running_tools() {
    let model = ScriptedModel::new(vec![Step::Respond(calls(vec![tool_use("c1", "sleep", json!({"ms": 60_000}))]))]);
    let tools = Arc::new(TestTools::default());
    let agent = agent(model, tools.clone());
    let control = RunControl::new();
    cancel_after(&control, 100, CancelMode::Immediate);
    let mut sink = CollectingSink::default();
    run(&agent, RunState::new(RunId::new(), "x"), &control, &mut sink).await.unwrap();
    assert!(matches!(terminal(&sink), AgentEvent::Cancelled { mode: CancelMode::Immediate, .. }));
    assert_eq!(tools.dropped.load(Ordering::SeqCst), 1, "the in-flight tool call was dropped");
    assert!(!sink.kinds().contains(&"tool_result"));
}

#[tokio::test]
async fn after_step_cancel_lets_the_step_finish() {
    let model = ScriptedModel::new(vec![
        Step::Respond(calls(vec![tool_use("c1", "sleep", json!({"ms": 300}))])),
        text("never asked"),
    ]);
    let tools = Arc::new(TestTools::default());
    let agent = agent(model.clone(), tools.clone());
    let control = RunControl::new();
    cancel_after(&control, 50, CancelMode::AfterStep);
    let mut sink = CollectingSink::default();
    run(&agent, RunState::new(RunId::new(), "x"), &control, &mut sink).await.unwrap();
    assert_eq!(tools.dropped.load(Ordering::SeqCst), 0, "the tool call finished");
    let result = sink.events.iter().find(|e| e.kind == "tool_result").unwrap();
    assert_eq!(result.data["output"], "slept 300 ms");
    assert!(matches!(terminal(&sink), AgentEvent::Cancelled { mode: CancelMode::AfterStep, turns: 1, .. }));
    assert_eq!(model.calls(), 1, "no model call after the step");
}

#[tokio::test]
async fn pause_waits_at_the_step_boundary_and_resume_carries_on() {
    let model = ScriptedModel::new(vec![
        Step::Slow(Duration::from_millis(200), calls(vec![tool_use("c1", "echo", json!({}))])),
        text("finished"),
    ]);
    let agent = agent(model.clone(), Arc::new(TestTools::default()));
    let control = RunControl::new();
    let (sender, mut receiver) = tokio::sync::mpsc::channel(64);
    let run_task = {
        let control = control.clone();
        tokio::spawn(async move {
            let mut sink = runtools_agent::ChannelSink(sender);
            run(&agent, RunState::new(RunId::new(), "x"), &control, &mut sink).await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    control.pause();
    let mut kinds = Vec::new();
    while let Some(event) = receiver.recv().await {
        kinds.push(event.kind.clone());
        if event.kind == "run.paused" {
            break;
        }
    }
    assert!(kinds.contains(&"tool_result".to_owned()), "the step in flight finished first: {kinds:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(model.calls(), 1, "no model call while paused");
    control.resume();
    let state = run_task.await.unwrap();
    while let Ok(event) = receiver.try_recv() {
        kinds.push(event.kind.clone());
    }
    assert!(
        kinds.ends_with(&[
            "run.resumed".into(),
            "message.delta".into(),
            "message".into(),
            "usage".into(),
            "complete".into()
        ]),
        "{kinds:?}"
    );
    assert_eq!(state.turns, 2);
}

#[tokio::test]
async fn cancel_while_paused_ends_the_run() {
    let model = ScriptedModel::new(vec![text("never asked")]);
    let agent = agent(model.clone(), Arc::new(TestTools::default()));
    let control = RunControl::new();
    control.pause();
    cancel_after(&control, 50, CancelMode::AfterStep);
    let mut sink = CollectingSink::default();
    run(&agent, RunState::new(RunId::new(), "x"), &control, &mut sink).await.unwrap();
    assert_eq!(sink.kinds(), ["run.started", "run.paused", "cancelled"]);
    assert_eq!(model.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_tool_times_out_and_the_run_goes_on() {
    let model = ScriptedModel::new(vec![
        Step::Respond(calls(vec![tool_use("c1", "sleep", json!({"ms": 5_000})), tool_use("c2", "echo", json!({}))])),
        text("handled the timeout"),
    ]);
    let tools = Arc::new(TestTools::default());
    let mut agent = agent(model.clone(), tools.clone());
    agent.limits.tool_timeout = Duration::from_secs(1);
    let mut sink = CollectingSink::default();
    run(&agent, RunState::new(RunId::new(), "x"), &RunControl::new(), &mut sink).await.unwrap();
    let statuses: Vec<_> = sink
        .events
        .iter()
        .filter(|e| e.kind == "tool_result")
        .map(|e| (e.data["call_id"].clone(), e.data["status"].clone()))
        .collect();
    assert!(statuses.contains(&(json!("c1"), json!("timeout"))), "{statuses:?}");
    assert!(statuses.contains(&(json!("c2"), json!("ok"))));
    assert!(matches!(terminal(&sink), AgentEvent::Complete { stop_reason: StopReason::EndTurn, .. }));
    let requests = model.requests.lock().unwrap();
    assert!(
        matches!(&requests[1].messages[2].content[0], ContentBlock::ToolResult { is_error: true, content, .. } if content.contains("did not finish"))
    );
}

#[tokio::test(start_paused = true)]
async fn the_run_timeout_fails_the_run() {
    let model = ScriptedModel::new(vec![Step::Respond(calls(vec![tool_use("c1", "sleep", json!({"ms": 60_000}))]))]);
    let mut agent = agent(model, Arc::new(TestTools::default()));
    agent.limits.run_timeout = Some(Duration::from_secs(10));
    let mut sink = CollectingSink::default();
    run(&agent, RunState::new(RunId::new(), "x"), &RunControl::new(), &mut sink).await.unwrap();
    match terminal(&sink) {
        AgentEvent::Failed { code, message, .. } => {
            assert_eq!(code, RunErrorCode::Timeout);
            assert!(message.contains("10 s"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_token_budget_stops_the_run_before_more_work() {
    let steps = (0..5).map(|i| Step::Respond(calls(vec![tool_use(&format!("c{i}"), "echo", json!({}))]))).collect();
    let model = ScriptedModel::new(steps);
    let tools = Arc::new(TestTools::default());
    let mut agent = agent(model.clone(), tools.clone());
    agent.limits.max_tokens = Some(250);
    let mut sink = CollectingSink::default();
    run(&agent, RunState::new(RunId::new(), "x"), &RunControl::new(), &mut sink).await.unwrap();
    // Each call uses 120 tokens: after the third (360 ≥ 250) its tool calls are not run.
    assert!(matches!(terminal(&sink), AgentEvent::Complete { stop_reason: StopReason::BudgetExceeded, turns: 3, .. }));
    assert_eq!(tools.runs.lock().unwrap().len(), 2);

    let model = ScriptedModel::new(
        (0..5).map(|i| Step::Respond(calls(vec![tool_use(&format!("c{i}"), "echo", json!({}))]))).collect(),
    );
    let mut agent = self::agent(model.clone(), Arc::new(TestTools::default()));
    // Each call costs 0.00014 USD: after the second (0.00028 ≥ 0.00025) the run stops.
    agent.limits.max_cost_usd = Some(0.00025);
    let mut sink = CollectingSink::default();
    run(&agent, RunState::new(RunId::new(), "x"), &RunControl::new(), &mut sink).await.unwrap();
    assert!(matches!(terminal(&sink), AgentEvent::Complete { stop_reason: StopReason::BudgetExceeded, turns: 2, .. }));
}

#[tokio::test]
async fn parallel_tool_calls_run_concurrently_but_bounded() {
    let blocks = (0..6).map(|i| tool_use(&format!("c{i}"), "sleep", json!({"ms": 100}))).collect();
    let model = ScriptedModel::new(vec![Step::Respond(calls(blocks)), text("done")]);
    let tools = Arc::new(TestTools::default());
    let mut agent = agent(model, tools.clone());
    agent.limits.max_parallel_tools = 2;
    let mut sink = CollectingSink::default();
    let started = std::time::Instant::now();
    run(&agent, RunState::new(RunId::new(), "x"), &RunControl::new(), &mut sink).await.unwrap();
    assert_eq!(tools.max_running.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() >= Duration::from_millis(300), "6 calls of 100 ms, 2 at a time");
    assert!(started.elapsed() < Duration::from_millis(590), "ran concurrently: {:?}", started.elapsed());
}

#[tokio::test]
async fn model_errors_fail_the_run_with_a_stable_code() {
    let error = ModelError::new("test", ModelErrorKind::Overloaded, "overloaded").with_status(529);
    let model = ScriptedModel::new(vec![Step::Fail(error)]);
    let agent = agent(model, Arc::new(TestTools::default()));
    let mut sink = CollectingSink::default();
    run(&agent, RunState::new(RunId::new(), "x"), &RunControl::new(), &mut sink).await.unwrap();
    match terminal(&sink) {
        AgentEvent::Failed { code, message, .. } => {
            assert_eq!(code, RunErrorCode::ModelUnavailable);
            assert!(message.contains("overloaded"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_context_overflow_compacts_older_turns_and_continues() {
    let mut steps: Vec<Step> =
        (0..4).map(|i| Step::Respond(calls(vec![tool_use(&format!("c{i}"), "echo", json!({"n": i}))]))).collect();
    steps.push(Step::Fail(
        ModelError::new("test", ModelErrorKind::ContextOverflow, "prompt is too long").with_status(400),
    ));
    steps.push(text("Summary: echoed 0..3"));
    steps.push(text("finished after compaction"));
    let model = ScriptedModel::new(steps);
    let agent = agent(model.clone(), Arc::new(TestTools::default()));
    let mut sink = CollectingSink::default();
    run(&agent, RunState::new(RunId::new(), "the task"), &RunControl::new(), &mut sink).await.unwrap();
    let compacted = sink.events.iter().find(|e| e.kind == "context.compacted").expect("compacted");
    assert!(compacted.data["messages_after"].as_u64() < compacted.data["messages_before"].as_u64());
    assert!(
        matches!(terminal(&sink), AgentEvent::Complete { ref output, .. } if output == "finished after compaction")
    );
    let requests = model.requests.lock().unwrap();
    let last = requests.last().unwrap();
    assert!(last.messages[0].text().contains("the task"), "the task is kept");
    assert!(last.messages[0].text().contains("Summary: echoed 0..3"), "with the summary");
    assert_eq!(last.messages[1].role, Role::Assistant);
    assert!(last.messages.len() < 9);
}

/// A sink that "crashes" (fails) after a number of checkpoints, like a server killed mid-run.
struct CrashingSink {
    inner: CollectingSink,
    checkpoints_left: usize,
}

#[async_trait::async_trait]
impl EventSink for CrashingSink {
    async fn emit(&mut self, event: EventEnvelope) -> Result<(), SinkError> {
        self.inner.emit(event).await
    }

    async fn checkpoint(&mut self, state: &RunState) -> Result<(), SinkError> {
        if self.checkpoints_left == 0 {
            return Err(SinkError("the server was killed".into()));
        }
        self.checkpoints_left -= 1;
        self.inner.checkpoint(state).await
    }
}

#[tokio::test]
async fn a_run_continues_from_its_checkpoint_without_rerunning_finished_tools() {
    let script = || {
        vec![
            Step::Respond(calls(vec![
                tool_use("c1", "echo", json!({"a": 1})),
                tool_use("c2", "sleep", json!({"ms": 200})),
            ])),
            text("both done"),
        ]
    };
    let tools = Arc::new(TestTools::default());
    let model = ScriptedModel::new(script());
    let agent1 = agent(model, tools.clone());
    let state = RunState::new(RunId::new(), "x");
    let run_id = state.run_id;
    // Checkpoints: the first step boundary, after the tool calls are announced, after c1's result — then the
    // crash, before c2's result is recorded.
    let mut crashing = CrashingSink { inner: CollectingSink::default(), checkpoints_left: 3 };
    let error = run(&agent1, state, &RunControl::new(), &mut crashing).await.unwrap_err();
    assert!(error.to_string().contains("killed"));
    let saved = crashing.inner.checkpoints.last().unwrap().clone();
    assert_eq!(
        saved.finished_calls,
        vec![FinishedCall {
            call_id: "c1".into(),
            name: "echo".into(),
            status: ToolStatus::Ok,
            content: "{\"a\":1}".into()
        }]
    );
    // Events the crashed node emitted after its last checkpoint are discarded by the store.
    let kept: Vec<EventEnvelope> = crashing.inner.events.iter().filter(|e| e.seq < saved.next_seq).cloned().collect();

    // "Restart": a new node restores the checkpoint (through JSON) and continues.
    let restored: RunState = serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();
    let model = ScriptedModel::new(script().split_off(1));
    let agent2 = agent(model.clone(), tools.clone());
    let mut sink = CollectingSink::default();
    let state = run(&agent2, restored, &RunControl::new(), &mut sink).await.unwrap();

    let runs = tools.runs.lock().unwrap().clone();
    assert_eq!(
        runs.iter().filter(|id| *id == "c1").count(),
        1,
        "c1 finished before the crash and was not re-run: {runs:?}"
    );
    assert_eq!(model.calls(), 1, "the first model call was not repeated");
    let mut all = kept;
    all.extend(sink.events.iter().cloned());
    assert_well_formed(&all, run_id);
    assert_eq!(all.iter().filter(|e| e.kind == "run.started").count(), 1);
    assert!(matches!(state.terminal, Some(AgentEvent::Complete { turns: 2, .. })));
    let results_sent = model.requests.lock().unwrap()[0].messages[2].content.len();
    assert_eq!(results_sent, 2, "both results reach the model");
    // A finished run is never run again.
    let again = run(&agent2, state.clone(), &RunControl::new(), &mut CollectingSink::default()).await.unwrap();
    assert_eq!(again, state);
}
