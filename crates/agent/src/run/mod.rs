//! The agent loop: think → act → repeat until the model gives a final answer.
//!
//! [`run`] drives one run from a [`RunState`] (fresh, or restored after a restart) and reports
//! every event to an [`EventSink`] in the envelope `{seq, id, run_id, ts, type, step, data}`:
//! `run.started`, `thinking.delta`/`thinking`, `message.delta`/`message`, `tool_call`,
//! `tool_result`, `usage`, `context.compacted`, `run.paused`/`run.resumed`, and exactly one
//! terminal event — `complete`, `failed` or `cancelled`.
//!
//! A step is one model call plus the tool calls it asks for (run concurrently, at most
//! `max_parallel_tools` at a time). Between steps the loop checkpoints its state, honours
//! after-step cancellation and pausing; an immediate cancel, the run timeout and the budget are
//! checked throughout. Tool results are checkpointed one by one, so a run restored after a crash
//! re-runs no finished tool call.

mod compact;
mod control;
mod sink;
mod state;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use runtools_protocol::agent::{
    AgentEvent, CancelMode, ContentBlock, Message, Role, RunErrorCode, StopReason, ToolSpec, ToolStatus, Usage,
};
use runtools_protocol::{EventEnvelope, EventId};
use tokio::time::Instant;

pub use control::RunControl;
pub use sink::{ChannelSink, CollectingSink, EventSink, SinkError};
pub use state::{FinishedCall, RunState};

use crate::model::{Delta, Model, ModelErrorKind, ModelRequest, ModelResponse, ThinkingConfig};
use crate::pricing::PriceTable;
use crate::toolset::{ToolCall, ToolOutput, ToolSet};

/// Limits on one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLimits {
    /// Model calls at most (default 50); reaching it completes with `max_turns`.
    pub max_turns: u32,
    /// One tool call's time limit (default 10 minutes).
    pub tool_timeout: Duration,
    /// The whole run's active time limit (paused time does not count).
    pub run_timeout: Option<Duration>,
    /// Tokens (input, cached and output) the run may use.
    pub max_tokens: Option<u64>,
    /// Dollars the run may spend, by the price table.
    pub max_cost_usd: Option<f64>,
    /// Tool calls of one step run concurrently, at most this many at once (default 8).
    pub max_parallel_tools: usize,
    /// The model's context window in tokens: when a prompt passes 85% of it, older turns are
    /// compacted before the next call. Without it, compaction happens when the provider reports
    /// an overflow.
    pub context_window: Option<u64>,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            max_turns: 50,
            tool_timeout: Duration::from_secs(600),
            run_timeout: None,
            max_tokens: None,
            max_cost_usd: None,
            max_parallel_tools: 8,
            context_window: None,
        }
    }
}

/// An agent ready to run: model, prompt, tools and limits.
#[derive(Debug, Clone)]
pub struct Agent {
    pub model: Arc<dyn Model>,
    /// The model id sent to the provider (and looked up in the price table).
    pub model_id: String,
    pub system_prompt: Option<String>,
    pub tools: Arc<dyn ToolSet>,
    pub limits: RunLimits,
    pub prices: Arc<PriceTable>,
    pub thinking: Option<ThinkingConfig>,
    pub temperature: Option<f32>,
    /// `max_tokens` of each model call (default 8,192).
    pub max_output_tokens: u32,
    /// `tools.specs()`, asked once and shared by every call.
    tool_specs: std::sync::OnceLock<Arc<Vec<ToolSpec>>>,
}

impl Agent {
    pub fn new(model: Arc<dyn Model>, model_id: impl Into<String>, tools: Arc<dyn ToolSet>) -> Self {
        Self {
            model,
            model_id: model_id.into(),
            system_prompt: None,
            tools,
            limits: RunLimits::default(),
            prices: Arc::new(PriceTable::default()),
            thinking: None,
            temperature: None,
            max_output_tokens: 8_192,
            tool_specs: std::sync::OnceLock::new(),
        }
    }

    /// The tools as the model is told about them (asked of the tool set once).
    pub fn tool_specs(&self) -> Arc<Vec<ToolSpec>> {
        self.tool_specs.get_or_init(|| Arc::new(self.tools.specs())).clone()
    }
}

/// Why the loop stopped before the model's final answer.
enum Halt {
    Complete(StopReason),
    Cancelled(CancelMode),
    TimedOut,
    Failed(RunErrorCode, String),
    Sink(SinkError),
}

impl From<SinkError> for Halt {
    fn from(error: SinkError) -> Self {
        Halt::Sink(error)
    }
}

/// Runs (or continues) a run until its terminal event, which is emitted, recorded in the final
/// checkpoint and in the returned state. A state that already has a terminal event is returned
/// unchanged. Fails only when the sink does: the run then stops where it was.
pub async fn run(
    agent: &Agent,
    state: RunState,
    control: &RunControl,
    sink: &mut dyn EventSink,
) -> Result<RunState, SinkError> {
    if state.terminal.is_some() {
        return Ok(state);
    }
    let mut runner = Runner { agent, state, control, sink, segment_start: Instant::now() };
    let halt = match runner.drive().await {
        Ok(never) => match never {},
        Err(halt) => halt,
    };
    runner.finish(halt).await?;
    Ok(runner.state)
}

enum Never {}

struct Runner<'a> {
    agent: &'a Agent,
    state: RunState,
    control: &'a RunControl,
    sink: &'a mut dyn EventSink,
    /// When the current stretch of active (unpaused) time began.
    segment_start: Instant,
}

impl Runner<'_> {
    async fn drive(&mut self) -> Result<Never, Halt> {
        if !self.state.started {
            let event = AgentEvent::RunStarted {
                model: self.agent.model_id.clone(),
                tools: self.agent.tool_specs().iter().map(|spec| spec.name.clone()).collect(),
                max_turns: self.agent.limits.max_turns,
            };
            self.emit(None, event).await?;
            self.state.started = true;
        }
        loop {
            self.step_boundary().await?;
            let pending = self.state.pending_tool_calls();
            if !pending.is_empty() {
                self.run_tools(pending).await?;
                continue;
            }
            if self.state.turns >= self.agent.limits.max_turns {
                return Err(Halt::Complete(StopReason::MaxTurns));
            }
            self.check_budget()?;
            if let Some(window) = self.agent.limits.context_window
                && self.state.last_prompt_tokens * 100 > window * 85
            {
                let reason = format!("the prompt reached {} of {window} tokens", self.state.last_prompt_tokens);
                self.compact(&reason).await?;
            }
            let response = self.model_step().await?;
            let answered = !response.content.is_empty();
            if answered {
                let message = Message { role: Role::Assistant, content: response.content };
                Arc::make_mut(&mut self.state.messages).push(message);
            }
            // Only an answer just added can hold calls: the conversation ended with tool results.
            let calls = self.state.pending_tool_calls();
            if calls.is_empty() {
                match response.stop_reason {
                    // The provider paused a long turn: send it back and let the model go on.
                    StopReason::PauseTurn if answered => continue,
                    StopReason::ToolUse | StopReason::PauseTurn => return Err(Halt::Complete(StopReason::EndTurn)),
                    other => return Err(Halt::Complete(other)),
                }
            }
            let step = self.state.turns;
            for call in &calls {
                let event = AgentEvent::ToolCall {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    input: call.input.clone(),
                };
                self.emit(Some(step), event).await?;
            }
            self.check_budget()?;
            self.checkpoint().await?;
            self.run_tools(calls).await?;
        }
    }

    /// Between steps: checkpoint, then after-step cancellation and pausing.
    async fn step_boundary(&mut self) -> Result<(), Halt> {
        self.checkpoint().await?;
        if let Some(mode) = self.control.cancel_requested() {
            return Err(Halt::Cancelled(mode));
        }
        if self.control.pause_requested() {
            self.emit(None, AgentEvent::Paused {}).await?;
            self.checkpoint().await?;
            let cancel = self.control.resumed_or_cancelled().await;
            // Paused time does not count against the run timeout.
            self.segment_start = Instant::now();
            if let Some(mode) = cancel {
                return Err(Halt::Cancelled(mode));
            }
            self.emit(None, AgentEvent::Resumed {}).await?;
        }
        Ok(())
    }

    fn check_budget(&self) -> Result<(), Halt> {
        let limits = &self.agent.limits;
        let over_tokens = limits.max_tokens.is_some_and(|max| self.state.usage.total_tokens() >= max);
        let over_cost = limits.max_cost_usd.is_some_and(|max| self.state.cost_usd >= max);
        if over_tokens || over_cost {
            return Err(Halt::Complete(StopReason::BudgetExceeded));
        }
        Ok(())
    }

    /// One model call; a context overflow compacts the conversation and tries again.
    async fn model_step(&mut self) -> Result<ModelResponse, Halt> {
        let mut compactions = 0;
        loop {
            let request = self.request();
            match self.call_model(request).await? {
                Ok(response) => {
                    self.state.turns += 1;
                    let usage = response.usage;
                    self.state.last_prompt_tokens =
                        usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens;
                    self.emit_response(&response).await?;
                    self.account(usage, Some(self.state.turns)).await?;
                    return Ok(response);
                }
                Err(error) if error.kind == ModelErrorKind::ContextOverflow && compactions < 2 => {
                    compactions += 1;
                    if !self.compact(&format!("the provider reported a context overflow: {}", error.message)).await? {
                        return Err(Halt::Failed(RunErrorCode::ContextOverflow, error.to_string()));
                    }
                }
                Err(error) => {
                    let code = match error.kind {
                        ModelErrorKind::RateLimited
                        | ModelErrorKind::Overloaded
                        | ModelErrorKind::Server
                        | ModelErrorKind::Transport => RunErrorCode::ModelUnavailable,
                        ModelErrorKind::Authentication | ModelErrorKind::NotFound | ModelErrorKind::InvalidRequest => {
                            RunErrorCode::ModelRejected
                        }
                        ModelErrorKind::ContextOverflow => RunErrorCode::ContextOverflow,
                        ModelErrorKind::Protocol => RunErrorCode::ModelProtocol,
                    };
                    return Err(Halt::Failed(code, error.to_string()));
                }
            }
        }
    }

    fn request(&self) -> ModelRequest {
        ModelRequest {
            model: self.agent.model_id.clone(),
            system: self.agent.system_prompt.clone(),
            messages: self.state.messages.clone(),
            tools: self.agent.tool_specs(),
            max_tokens: self.agent.max_output_tokens,
            temperature: self.agent.temperature,
            thinking: self.agent.thinking,
        }
    }

    /// Streams one model call, forwarding (coalesced) deltas as events, interruptible by an
    /// immediate cancel and the run timeout.
    async fn call_model(
        &mut self,
        request: ModelRequest,
    ) -> Result<Result<ModelResponse, crate::model::ModelError>, Halt> {
        let step = self.state.turns + 1;
        let queue = Arc::new(DeltaQueue::default());
        let model = self.agent.model.clone();
        let producer = queue.clone();
        let call = async move {
            let mut forward = move |delta: Delta| producer.push(delta);
            model.stream(&request, &mut forward).await
        };
        tokio::pin!(call);
        loop {
            let deadline = self.deadline();
            tokio::select! {
                biased;
                () = self.control.cancelled_immediately() => return Err(Halt::Cancelled(CancelMode::Immediate)),
                () = sleep_until(deadline) => return Err(Halt::TimedOut),
                () = queue.ready.notified() => self.emit_deltas(step, queue.take()).await?,
                response = &mut call => {
                    self.emit_deltas(step, queue.take()).await?;
                    return Ok(response);
                }
            }
        }
    }

    /// Emits queued deltas, each run of one kind as one event.
    async fn emit_deltas(&mut self, step: u32, deltas: Vec<Delta>) -> Result<(), Halt> {
        let mut run: Option<(bool, String)> = None;
        for delta in deltas {
            let (thinking, text) = match delta {
                Delta::Text(text) => (false, text),
                Delta::Thinking(text) => (true, text),
                // The consolidated `tool_call` event follows once the arguments are complete.
                Delta::ToolCallStarted { .. } => continue,
            };
            match &mut run {
                Some((kind, pending)) if *kind == thinking => pending.push_str(&text),
                _ => {
                    if let Some((kind, pending)) = run.replace((thinking, text)) {
                        self.emit_delta(step, kind, pending).await?;
                    }
                }
            }
        }
        if let Some((thinking, text)) = run {
            self.emit_delta(step, thinking, text).await?;
        }
        Ok(())
    }

    async fn emit_delta(&mut self, step: u32, thinking: bool, text: String) -> Result<(), Halt> {
        let event = if thinking { AgentEvent::ThinkingDelta { text } } else { AgentEvent::MessageDelta { text } };
        self.emit(Some(step), event).await
    }

    async fn emit_response(&mut self, response: &ModelResponse) -> Result<(), Halt> {
        let step = Some(self.state.turns);
        let mut thinking = String::new();
        for block in &response.content {
            if let ContentBlock::Thinking { thinking: text, .. } = block {
                thinking.push_str(text);
            }
        }
        if !thinking.is_empty() {
            self.emit(step, AgentEvent::Thinking { text: thinking }).await?;
        }
        let text = response.text();
        if !text.is_empty() {
            self.emit(step, AgentEvent::Message { text }).await?;
        }
        Ok(())
    }

    /// Adds a call's usage and cost to the run's and reports them.
    async fn account(&mut self, usage: Usage, step: Option<u32>) -> Result<(), Halt> {
        self.state.usage.add(&usage);
        self.state.cost_usd += self.agent.prices.cost(&self.agent.model_id, &usage);
        let event = AgentEvent::Usage { usage, total: self.state.usage, cost_usd: self.state.cost_usd };
        self.emit(step, event).await
    }

    /// Runs the step's tool calls that have not finished yet, then adds every result (in the
    /// order the model asked) to the conversation.
    async fn run_tools(&mut self, calls: Vec<ToolCall>) -> Result<(), Halt> {
        let step = Some(self.state.turns);
        let finished: HashSet<&str> = self.state.finished_calls.iter().map(|call| call.call_id.as_str()).collect();
        let timeout = self.agent.limits.tool_timeout;
        let mut pending = Vec::with_capacity(calls.len());
        for call in calls.iter().filter(|call| !finished.contains(call.id.as_str())) {
            pending.push(call_tool(self.agent.tools.clone(), call.clone(), timeout));
        }
        let mut running = futures::stream::iter(pending).buffer_unordered(self.agent.limits.max_parallel_tools.max(1));
        loop {
            let next = guarded(self.control, self.deadline(), running.next()).await?;
            let Some((call, output, took)) = next else { break };
            let event = AgentEvent::ToolResult {
                call_id: call.id.clone(),
                name: call.name.clone(),
                status: output.status,
                output: output.content.clone(),
                duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                exit_code: output.exit_code,
                diff: output.diff,
            };
            self.emit(step, event).await?;
            self.state.finished_calls.push(FinishedCall {
                call_id: call.id,
                name: call.name,
                status: output.status,
                content: output.content,
            });
            self.checkpoint().await?;
        }
        let mut results = Vec::with_capacity(calls.len());
        for call in calls {
            let finished = self.state.finished_calls.iter().find(|finished| finished.call_id == call.id);
            let (content, is_error) = match finished {
                Some(finished) => (finished.content.clone(), finished.status != ToolStatus::Ok),
                None => (format!("`{}` produced no result", call.name), true),
            };
            results.push(ContentBlock::ToolResult { tool_use_id: call.id, name: call.name, content, is_error });
        }
        Arc::make_mut(&mut self.state.messages).push(Message { role: Role::User, content: results });
        self.state.finished_calls.clear();
        Ok(())
    }

    /// Compacts the conversation; false when there was nothing left to compact.
    async fn compact(&mut self, reason: &str) -> Result<bool, Halt> {
        let before = self.state.messages.len();
        if compact::shrink_old_tool_results(Arc::make_mut(&mut self.state.messages).as_mut_slice()) {
            self.emit_compacted(before, reason, "old tool results were cut").await?;
            return Ok(true);
        }
        let Some(split) = compact::split_point(&self.state.messages) else { return Ok(false) };
        let request = ModelRequest {
            model: self.agent.model_id.clone(),
            system: Some(compact::SUMMARY_SYSTEM_PROMPT.to_owned()),
            messages: Arc::new(vec![Message::user(compact::transcript(&self.state.messages[1..split]))]),
            tools: Arc::default(),
            max_tokens: self.agent.max_output_tokens.min(4_096),
            temperature: None,
            thinking: None,
        };
        let model = self.agent.model.clone();
        let summarise = async move { model.stream(&request, &mut |_| {}).await };
        let summary = match guarded(self.control, self.deadline(), summarise).await? {
            Ok(response) => {
                self.account(response.usage, None).await?;
                response.text()
            }
            Err(error) => {
                tracing::warn!(%error, "summarising for compaction failed; dropping older turns without a summary");
                format!("({} earlier messages were removed; their summary could not be written)", split - 1)
            }
        };
        self.state.messages = Arc::new(compact::apply(&self.state.messages, split, &summary));
        self.emit_compacted(before, reason, "older turns were summarised").await?;
        Ok(true)
    }

    async fn emit_compacted(&mut self, before: usize, reason: &str, how: &str) -> Result<(), Halt> {
        let event = AgentEvent::ContextCompacted {
            messages_before: u32::try_from(before).unwrap_or(u32::MAX),
            messages_after: u32::try_from(self.state.messages.len()).unwrap_or(u32::MAX),
            reason: format!("{reason}; {how}"),
        };
        self.emit(None, event).await
    }

    /// Emits the terminal event and records it in a last checkpoint.
    async fn finish(&mut self, halt: Halt) -> Result<(), SinkError> {
        self.update_elapsed();
        let state = &self.state;
        let event = match halt {
            Halt::Sink(error) => return Err(error),
            Halt::Complete(stop_reason) => AgentEvent::Complete {
                stop_reason,
                output: state.last_assistant_text(),
                usage: state.usage,
                cost_usd: state.cost_usd,
                turns: state.turns,
                duration_ms: state.elapsed_ms,
            },
            Halt::Cancelled(mode) => {
                AgentEvent::Cancelled { mode, usage: state.usage, cost_usd: state.cost_usd, turns: state.turns }
            }
            Halt::TimedOut => AgentEvent::Failed {
                code: RunErrorCode::Timeout,
                message: format!(
                    "the run exceeded its timeout of {} s",
                    self.agent.limits.run_timeout.unwrap_or_default().as_secs_f64()
                ),
                usage: state.usage,
                cost_usd: state.cost_usd,
                turns: state.turns,
            },
            Halt::Failed(code, message) => {
                AgentEvent::Failed { code, message, usage: state.usage, cost_usd: state.cost_usd, turns: state.turns }
            }
        };
        let step = (self.state.turns > 0).then_some(self.state.turns);
        match self.emit(step, event.clone()).await {
            Ok(()) => {}
            Err(Halt::Sink(error)) => return Err(error),
            Err(_) => {}
        }
        self.state.terminal = Some(event);
        self.sink.checkpoint(&self.state).await
    }

    async fn emit(&mut self, step: Option<u32>, event: AgentEvent) -> Result<(), Halt> {
        let envelope = EventEnvelope {
            seq: self.state.next_seq,
            id: EventId::new(),
            run_id: self.state.run_id,
            ts: Utc::now(),
            kind: event.kind().to_owned(),
            step,
            data: event.data(),
        };
        self.state.next_seq += 1;
        self.sink.emit(envelope).await.map_err(Halt::Sink)
    }

    async fn checkpoint(&mut self) -> Result<(), Halt> {
        self.update_elapsed();
        self.sink.checkpoint(&self.state).await.map_err(Halt::Sink)
    }

    fn update_elapsed(&mut self) {
        let now = Instant::now();
        let active = now.saturating_duration_since(self.segment_start);
        self.state.elapsed_ms += u64::try_from(active.as_millis()).unwrap_or(u64::MAX);
        self.segment_start = now;
    }

    /// When the run times out, given the active time used so far.
    fn deadline(&self) -> Option<Instant> {
        let timeout = self.agent.limits.run_timeout?;
        let used = Duration::from_millis(self.state.elapsed_ms);
        Some(self.segment_start + timeout.saturating_sub(used))
    }
}

/// Deltas a model call pushes (synchronously, from the adapter's sink) for the loop to drain.
/// Lighter than a channel: a run holds one for the length of a call.
#[derive(Debug, Default)]
struct DeltaQueue {
    pending: std::sync::Mutex<Vec<Delta>>,
    ready: tokio::sync::Notify,
}

impl DeltaQueue {
    fn push(&self, delta: Delta) {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(delta);
        // Stores a permit when the loop is not waiting, so no wake-up is lost.
        self.ready.notify_one();
    }

    fn take(&self) -> Vec<Delta> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// One tool call under the per-tool timeout, with how long it took.
async fn call_tool(tools: Arc<dyn ToolSet>, call: ToolCall, timeout: Duration) -> (ToolCall, ToolOutput, Duration) {
    let started = Instant::now();
    let output = match tokio::time::timeout(timeout, tools.call(&call)).await {
        Ok(output) => output,
        Err(_) => ToolOutput::timeout(format!(
            "`{}` did not finish within {} s and was stopped",
            call.name,
            timeout.as_secs_f64()
        )),
    };
    (call, output, started.elapsed())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Runs `work` unless an immediate cancel or the deadline comes first.
async fn guarded<T>(control: &RunControl, deadline: Option<Instant>, work: impl Future<Output = T>) -> Result<T, Halt> {
    tokio::select! {
        biased;
        () = control.cancelled_immediately() => Err(Halt::Cancelled(CancelMode::Immediate)),
        () = sleep_until(deadline) => Err(Halt::TimedOut),
        output = work => Ok(output),
    }
}
