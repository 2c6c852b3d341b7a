//! RunTools envd: the agent that runs as PID 1 inside every sandbox, and the host-side client for
//! it. Both speak [`runtools_protocol::envd`] over one byte stream carrying many concurrent streams.
//!
//! - [`frame`]: the frame format, shared by both sides.
//! - [`client`] (re-exported here): [`EnvdClient`], what the server uses to exec, move files and
//!   search them (grep, glob).
//! - [`server`]: envd itself ([`server::Envd`], [`server::run`]); the `envd` binary is a thin
//!   wrapper around it.

pub mod client;
pub mod frame;
pub mod server;

pub use client::{
    ClientError, EnvdClient, ExecOutput, Exit, FileReader, GlobResults, GrepResults, Pong, Process, ProcessEvent,
    Watch, WriteOptions,
};
