//! The RunTools agent engine: think → act → repeat with any model.
//!
//! - [`model`]: the provider-neutral [`Model`] interface every adapter implements.
//! - [`providers`]: the adapters (Anthropic, OpenAI Chat Completions and Responses, Gemini,
//!   OpenAI-compatible endpoints) and their shared retry logic.
//! - [`run`]: the loop — events, controls (cancel, pause, resume), limits, budget, compaction,
//!   and the serialisable [`RunState`] a run continues from after a restart.
//! - [`resolve`]: model strings (`claude-…`, `openai/gpt-…`, custom endpoints) to providers.
//! - [`pricing`]: token prices and run cost.
//! - [`toolset`]: the [`ToolSet`] interface tools implement for the loop.

pub mod model;
pub mod pricing;
pub mod providers;
pub mod resolve;
pub mod run;
pub mod toolset;

pub use model::{Delta, DeltaSink, Model, ModelError, ModelErrorKind, ModelRequest, ModelResponse, ThinkingConfig};
pub use pricing::{Price, PriceTable};
pub use providers::{ApiKey, ProviderSettings, RetryPolicy, WireProtocol};
pub use resolve::{CustomModel, ModelRef, ProvidersConfig, ResolveError};
pub use run::{Agent, ChannelSink, CollectingSink, EventSink, RunControl, RunLimits, RunState, SinkError, run};
pub use toolset::{NoTools, ToolCall, ToolOutput, ToolSet};
