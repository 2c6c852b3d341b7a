//! Streaming routes of a sandbox: the exec WebSocket (`/v1/sandboxes/{id}/exec/ws`: stdin, stdout,
//! stderr, signals, PTY resize, background processes and re-attach) and the port proxy under
//! `/v1/sandboxes/{id}/ports/{port}/…`.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use runtools_envd::{Process, ProcessEvent};
use runtools_protocol::envd::{AttachSpec, ExecSpec, PtySize};
use runtools_protocol::sandbox::{ExecStreamClientMessage, ExecStreamServerMessage};
use runtools_protocol::{ErrorBody, ErrorCode, SandboxId};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::proxy;
use crate::sandboxes::envd_error;
use crate::state::AppState;

/// Opens a streaming exec session over WebSocket. Send `{"type":"start",…}` or
/// `{"type":"attach",…}` first; binary frames are stdin; output comes as binary frames prefixed
/// with the channel byte (1 stdout, 2 stderr); `started`/`exited`/`error` come as JSON text frames.
#[utoipa::path(
    get,
    path = "/v1/sandboxes/{id}/exec/ws",
    tag = "sandboxes",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path)),
    responses((status = 101, description = "WebSocket upgrade"), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn exec_stream(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let environment = caller.require_environment()?;
    let service = state.sandboxes()?;
    let record = service.get(environment, id).await?;
    let envd = service.envd(&record).await?;
    Ok(upgrade.on_upgrade(move |socket| async move {
        if let Err(error) = run_exec_stream(socket, envd, id).await {
            tracing::debug!(sandbox = %id, %error, "exec stream ended with an error");
        }
    }))
}

async fn send_json(socket: &mut WebSocket, message: &ExecStreamServerMessage) -> Result<(), axum::Error> {
    let text = serde_json::to_string(message).unwrap_or_default();
    socket.send(Message::Text(text.into())).await
}

async fn send_error(socket: &mut WebSocket, code: ErrorCode, message: String) -> Result<(), axum::Error> {
    send_json(socket, &ExecStreamServerMessage::Error { code, message }).await?;
    socket.send(Message::Close(None)).await
}

async fn run_exec_stream(
    mut socket: WebSocket,
    envd: runtools_envd::EnvdClient,
    id: SandboxId,
) -> Result<(), axum::Error> {
    let first = match socket.recv().await {
        Some(Ok(Message::Text(text))) => serde_json::from_str::<ExecStreamClientMessage>(&text),
        _ => {
            return send_error(
                &mut socket,
                ErrorCode::InvalidRequest,
                "the first message must be a JSON `start` or `attach`".into(),
            )
            .await;
        }
    };
    let started = match first {
        Ok(ExecStreamClientMessage::Start(start)) => {
            if start.cmd.is_some() == start.argv.is_some() {
                return send_error(
                    &mut socket,
                    ErrorCode::InvalidRequest,
                    "give exactly one of `cmd` and `argv`".into(),
                )
                .await;
            }
            let spec = ExecSpec {
                argv: start.argv,
                cmd: start.cmd,
                env: start.env,
                cwd: start.cwd,
                user: start.user,
                pty: start.pty.map(|size| PtySize { cols: size.cols, rows: size.rows }),
                timeout_ms: start.timeout_secs.map(|secs| secs.saturating_mul(1000)),
                background: start.background,
                tag: start.tag,
            };
            envd.exec(spec).await
        }
        Ok(ExecStreamClientMessage::Attach { process_id, tag }) => envd.attach(AttachSpec { process_id, tag }).await,
        Ok(_) => {
            return send_error(&mut socket, ErrorCode::InvalidRequest, "start or attach a process first".into()).await;
        }
        Err(error) => {
            return send_error(&mut socket, ErrorCode::InvalidBody, format!("invalid message: {error}")).await;
        }
    };
    let mut process = match started {
        Ok(process) => process,
        Err(error) => {
            let error = envd_error(id, error);
            return send_error(&mut socket, error.code(), error.message().to_owned()).await;
        }
    };
    send_json(&mut socket, &ExecStreamServerMessage::Started { process_id: process.process_id, pid: process.pid })
        .await?;
    pump(&mut socket, &mut process).await
}

/// Moves bytes both ways until the process exits or the client leaves.
async fn pump(socket: &mut WebSocket, process: &mut Process) -> Result<(), axum::Error> {
    loop {
        tokio::select! {
            event = process.next() => match event {
                Some(ProcessEvent::Stdout(bytes)) => socket.send(Message::Binary(channel_frame(1, &bytes))).await?,
                Some(ProcessEvent::Stderr(bytes)) => socket.send(Message::Binary(channel_frame(2, &bytes))).await?,
                Some(ProcessEvent::Exited(exit)) => {
                    let message = ExecStreamServerMessage::Exited { exit_code: exit.exit_code, signal: exit.signal, timed_out: exit.timed_out };
                    send_json(socket, &message).await?;
                    return socket.send(Message::Close(None)).await;
                }
                None => return send_error(socket, ErrorCode::Unavailable, "the sandbox's agent closed the stream".into()).await,
            },
            message = socket.recv() => {
                let control = match message {
                    Some(Ok(Message::Binary(bytes))) => process.write_stdin(&bytes).await,
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<ExecStreamClientMessage>(&text) {
                        Ok(ExecStreamClientMessage::StdinEof) => process.close_stdin().await,
                        Ok(ExecStreamClientMessage::Signal { signal }) => process.signal(signal).await,
                        Ok(ExecStreamClientMessage::Resize { cols, rows }) => process.resize(cols, rows).await,
                        Ok(ExecStreamClientMessage::Detach) => return socket.send(Message::Close(None)).await,
                        Ok(_) => Ok(()),
                        Err(error) => return send_error(socket, ErrorCode::InvalidBody, format!("invalid message: {error}")).await,
                    },
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                    Some(Ok(_)) => Ok(()),
                };
                if let Err(error) = control {
                    tracing::debug!(%error, "cannot pass a client message to the process");
                }
            }
        }
    }
}

fn channel_frame(channel: u8, bytes: &[u8]) -> axum::body::Bytes {
    let mut frame = Vec::with_capacity(bytes.len() + 1);
    frame.push(channel);
    frame.extend_from_slice(bytes);
    frame.into()
}

/// `/v1/sandboxes/{id}/ports/{port}` without a trailing path: the port's `/`.
pub(crate) async fn proxy_port_root(
    State(state): State<AppState>,
    Path((id, port)): Path<(String, u16)>,
    request: Request,
) -> Result<Response, ApiError> {
    proxy_port(State(state), Path((id, port, String::new())), request).await
}

/// Proxies HTTP (and WebSocket) requests to a port inside the sandbox. Authorised by an
/// environment key of the sandbox's environment (or by the sandbox's access token).
pub(crate) async fn proxy_port(
    State(state): State<AppState>,
    Path((id, port, rest)): Path<(String, u16, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let id: SandboxId =
        id.parse().map_err(|e: runtools_protocol::IdParseError| ApiError::new(ErrorCode::InvalidId, e.to_string()))?;
    let path = format!("/{rest}");
    match crate::auth::optional_caller(&state, request.headers()).await? {
        Some(caller) => {
            let environment = caller.require_environment()?;
            let record = state.sandboxes()?.get(environment, id).await?;
            proxy::forward(&state, &record, port, request, Some(path)).await
        }
        None => {
            let (mut parts, body) = request.into_parts();
            parts.uri = format!("{path}{}", parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default())
                .parse()
                .map_err(|e: axum::http::uri::InvalidUri| ApiError::new(ErrorCode::InvalidRequest, e.to_string()))?;
            proxy::proxy_by_token(&state, id, port, Request::from_parts(parts, body), false).await
        }
    }
}
