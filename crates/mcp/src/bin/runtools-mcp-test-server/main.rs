//! `runtools-mcp-test-server`: a small MCP server over stdio, used by this crate's integration
//! tests as a real child process (see `server.rs` for its tools).
//!
//! Flags: `--fail-startup` writes a line to stderr and exits with status 2 before speaking MCP,
//! standing in for a server that is misconfigured (e.g. missing credentials); `--linger` keeps
//! the process alive for a minute after its stdin closes, standing in for a server that does not
//! exit when its client goes away.

mod server;

use std::io::Write as _;
use std::sync::Arc;

use rmcp::ServiceExt as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if std::env::args().any(|arg| arg == "--fail-startup") {
        writeln!(std::io::stderr(), "test server: GITHUB_TOKEN is missing, cannot start")?;
        std::process::exit(2);
    }
    let running = server::TestServer::new(Arc::default()).serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    if std::env::args().any(|arg| arg == "--linger") {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }
    Ok(())
}
