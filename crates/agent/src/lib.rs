//! The RunTools agent engine: think → act → repeat with any model.
//!
//! - [`model`]: the provider-neutral [`Model`] interface every adapter implements.
//! - [`providers`]: the adapters (Anthropic, OpenAI Chat Completions and Responses, Gemini,
//!   OpenAI-compatible endpoints) and their shared retry logic.
//! - [`toolset`]: the [`ToolSet`] interface tools implement for the loop.

pub mod model;
pub mod providers;
pub mod toolset;

pub use model::{Delta, DeltaSink, Model, ModelError, ModelErrorKind, ModelRequest, ModelResponse, ThinkingConfig};
pub use providers::{ApiKey, ProviderSettings, RetryPolicy, WireProtocol};
pub use toolset::{NoTools, ToolCall, ToolOutput, ToolSet};
