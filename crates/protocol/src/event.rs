//! The event envelope shared by every event stream (agent runs, tool sessions, webhooks):
//! `{seq, id, run_id, ts, type, step, data}`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{EventId, RunId};

/// One event of a run. `seq` starts at 1 and has no gaps within a run, so a client that resumes
/// from the last `seq` it saw receives every later event exactly once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventEnvelope {
    pub seq: u64,
    pub id: EventId,
    pub run_id: RunId,
    pub ts: DateTime<Utc>,
    /// The event type, e.g. `run.started`, `tool_call`, `complete`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The agent-loop step the event belongs to, when it belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// Type-specific payload.
    #[serde(default)]
    pub data: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_is_spelled_type_on_the_wire() {
        let event = EventEnvelope {
            seq: 1,
            id: EventId::new(),
            run_id: RunId::new(),
            ts: Utc::now(),
            kind: "run.started".into(),
            step: None,
            data: serde_json::json!({}),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "run.started");
        assert!(json.get("step").is_none());
        let back: EventEnvelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
}
