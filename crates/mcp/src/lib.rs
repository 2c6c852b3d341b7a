//! MCP servers as agent tools.
//!
//! An operator configures MCP servers ([`McpServerConfig`]: a stdio child process or a
//! streamable HTTP endpoint); [`McpToolSet::connect`] starts or reaches them, lists their tools
//! and exposes them to the agent loop as a [`runtools_agent::toolset::ToolSet`], named
//! `<prefix>__<tool>` (the prefix defaults to the server name). [`CombinedToolSet`] merges it
//! with the built-in tools.
//!
//! Built on the official MCP SDK, [`rmcp`].

mod combined;
mod config;
mod connection;
mod error;
pub mod names;
mod render;
mod toolset;

pub use combined::CombinedToolSet;
pub use config::{DEFAULT_TIMEOUT_SECS, McpServerConfig, McpTransport};
pub use error::{CombineError, McpError};
pub use render::{EMPTY_RESULT, result_text};
pub use toolset::McpToolSet;
