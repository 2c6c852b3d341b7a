//! Benchmark hooks (for `runtools-bench` and the tests): timings of one sandbox's life measured
//! the way a client sees them.

use std::time::{Duration, Instant};

use runtools_protocol::envd::ExecSpec;

use crate::{Backend, BackendError, SandboxSpec};

/// How long the steps of creating a sandbox and running its first command took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstExecTiming {
    /// `Backend::create` (returns once envd answered a ping).
    pub create: Duration,
    /// A new envd connection and `/bin/true` run to completion.
    pub first_exec: Duration,
    /// Both: create-to-first-exec.
    pub total: Duration,
}

/// Creates the sandbox of `spec`, runs `/bin/true` in it and returns the timings. The sandbox is
/// left running; the caller deletes it.
pub async fn create_to_first_exec(backend: &dyn Backend, spec: &SandboxSpec) -> Result<FirstExecTiming, BackendError> {
    let started = Instant::now();
    backend.create(spec).await?;
    let created = started.elapsed();
    let stream = backend.connect_envd(spec.id).await?;
    let client = runtools_envd::EnvdClient::new(stream);
    let exec = ExecSpec { argv: Some(vec!["/bin/true".into()]), ..ExecSpec::default() };
    let output = client
        .run(exec, None)
        .await
        .map_err(|error| BackendError::Failed { id: spec.id, message: format!("first exec failed: {error}") })?;
    if !output.exit.success() {
        return Err(BackendError::Failed { id: spec.id, message: format!("/bin/true exited with {:?}", output.exit) });
    }
    let total = started.elapsed();
    Ok(FirstExecTiming { create: created, first_exec: total - created, total })
}

/// One exec round trip (`/bin/true`) on an existing connection.
pub async fn exec_round_trip(client: &runtools_envd::EnvdClient) -> Result<Duration, runtools_envd::ClientError> {
    let started = Instant::now();
    client.run(ExecSpec { argv: Some(vec!["/bin/true".into()]), ..ExecSpec::default() }, None).await?;
    Ok(started.elapsed())
}
