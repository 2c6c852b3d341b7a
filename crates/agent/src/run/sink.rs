//! Where a run's events and checkpoints go: the [`EventSink`] trait (the runs service persists
//! them; tests collect them), with two ready-made sinks — [`CollectingSink`] (in memory) and
//! [`ChannelSink`] (an mpsc channel, e.g. to a WebSocket).

use runtools_protocol::EventEnvelope;
use tokio::sync::mpsc;

use super::RunState;

/// Recording an event or checkpoint failed; the run stops (it must not go on unrecorded).
#[derive(Debug, Clone, thiserror::Error)]
#[error("recording the run failed: {0}")]
pub struct SinkError(pub String);

/// Receives a run's events, in `seq` order, and its checkpoints.
#[async_trait::async_trait]
pub trait EventSink: Send {
    /// One event. Returns once it is recorded (durably, for a persistent sink).
    async fn emit(&mut self, event: EventEnvelope) -> Result<(), SinkError>;

    /// The run's state at a point it can be continued from: every step boundary and every
    /// finished tool call. `state.next_seq` is one past the last event emitted before it.
    async fn checkpoint(&mut self, _state: &RunState) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Keeps every event and checkpoint in memory.
#[derive(Debug, Default)]
pub struct CollectingSink {
    pub events: Vec<EventEnvelope>,
    pub checkpoints: Vec<RunState>,
}

impl CollectingSink {
    /// The event types, in order.
    pub fn kinds(&self) -> Vec<&str> {
        self.events.iter().map(|event| event.kind.as_str()).collect()
    }
}

#[async_trait::async_trait]
impl EventSink for CollectingSink {
    async fn emit(&mut self, event: EventEnvelope) -> Result<(), SinkError> {
        self.events.push(event);
        Ok(())
    }

    async fn checkpoint(&mut self, state: &RunState) -> Result<(), SinkError> {
        self.checkpoints.push(state.clone());
        Ok(())
    }
}

/// Forwards events to a channel; a dropped receiver stops the run.
#[derive(Debug, Clone)]
pub struct ChannelSink(pub mpsc::Sender<EventEnvelope>);

#[async_trait::async_trait]
impl EventSink for ChannelSink {
    async fn emit(&mut self, event: EventEnvelope) -> Result<(), SinkError> {
        self.0.send(event).await.map_err(|_| SinkError("the event receiver is gone".into()))
    }
}
