//! `runtools sandbox create|ls|exec|shell|pause|resume|timeout|rm`. `exec` streams output live and
//! exits with the command's exit code; `shell` is an interactive terminal (a PTY in the sandbox).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, bail};
use clap::Subcommand;
use futures::{SinkExt, StreamExt};
use runtools_protocol::SandboxId;
use runtools_protocol::sandbox::{
    CreateSandboxRequest, ExecStreamClientMessage, ExecStreamServerMessage, ExecStreamStart, NetworkMode, OnTimeout,
    Sandbox, SandboxLimits, TerminalSize, VolumeMount,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{GlobalArgs, connect, output};

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Create a sandbox and print its id.
    Create {
        /// Template to start from.
        #[arg(long, default_value = "base")]
        template: String,
        /// CPU cores (e.g. 0.5).
        #[arg(long)]
        cpu: Option<f64>,
        /// Memory limit in MiB.
        #[arg(long)]
        memory_mb: Option<u64>,
        /// Process limit.
        #[arg(long)]
        pids: Option<u32>,
        /// Disk for the writable layer, in MiB.
        #[arg(long)]
        disk_mb: Option<u64>,
        /// Lifetime in seconds.
        #[arg(long)]
        timeout: Option<u64>,
        /// Pause instead of deleting when the lifetime runs out.
        #[arg(long)]
        pause_on_timeout: bool,
        /// Give the sandbox outbound network access.
        #[arg(long)]
        internet: bool,
        /// Environment variable for every process, `NAME=value` (repeatable).
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// Mount a named volume, `name:/path` (repeatable; `:ro` at the end for read-only).
        #[arg(long = "volume", value_name = "NAME:/PATH")]
        volumes: Vec<String>,
        /// A metadata label, `key=value` (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// List sandboxes.
    #[command(alias = "list")]
    Ls {
        /// Only sandboxes in this state (e.g. running, paused, stopped).
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        template: Option<String>,
        /// Only sandboxes with this label, `key=value` (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// Run a command in a sandbox, streaming its output; exits with its exit code.
    Exec {
        id: SandboxId,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true)]
        argv: Vec<String>,
    },
    /// Open an interactive shell in a sandbox.
    Shell {
        id: SandboxId,
        /// The shell to run.
        #[arg(long, default_value = "/bin/bash")]
        shell: String,
    },
    /// Pause a sandbox (its processes stop; state is kept).
    Pause { id: SandboxId },
    /// Resume a paused sandbox.
    Resume { id: SandboxId },
    /// Set a sandbox's remaining lifetime.
    Timeout { id: SandboxId, seconds: u64 },
    /// Delete a sandbox.
    #[command(alias = "delete")]
    Rm { id: SandboxId },
}

fn pairs(values: &[String], separator: char, what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    values
        .iter()
        .map(|value| {
            value
                .split_once(separator)
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("{what} `{value}` must look like KEY{separator}VALUE"))
        })
        .collect()
}

pub async fn run(global: &GlobalArgs, command: SandboxCommand) -> anyhow::Result<()> {
    let client = connect::client(global)?;
    let show = |sandbox: &Sandbox| -> anyhow::Result<()> {
        if global.json {
            return output::json(sandbox);
        }
        println!("{} {}", sandbox.id, sandbox.state);
        Ok(())
    };
    match command {
        SandboxCommand::Create {
            template,
            cpu,
            memory_mb,
            pids,
            disk_mb,
            timeout,
            pause_on_timeout,
            internet,
            env,
            volumes,
            labels,
        } => {
            let volumes = volumes
                .iter()
                .map(|spec| {
                    let (spec, read_only) = spec.strip_suffix(":ro").map_or((spec.as_str(), false), |s| (s, true));
                    let (volume, path) =
                        spec.split_once(':').with_context(|| format!("volume `{spec}` must look like NAME:/PATH"))?;
                    Ok(VolumeMount { volume: volume.to_owned(), path: path.to_owned(), read_only })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let request = CreateSandboxRequest {
                template: Some(template),
                limits: SandboxLimits { cpu, memory_mb, pids, disk_mb },
                timeout_secs: timeout,
                on_timeout: if pause_on_timeout { OnTimeout::Pause } else { OnTimeout::Kill },
                network: if internet { NetworkMode::Internet } else { NetworkMode::None },
                isolation: None,
                env: pairs(&env, '=', "--env")?,
                volumes,
                metadata: pairs(&labels, '=', "--label")?,
            };
            let sandbox = client.create_sandbox(&request).await?;
            if global.json {
                return output::json(&sandbox);
            }
            println!("{}", sandbox.id);
        }
        SandboxCommand::Ls { state, template, labels } => {
            let mut filters: Vec<(String, String)> = Vec::new();
            filters.extend(state.map(|s| ("state".to_owned(), s)));
            filters.extend(template.map(|t| ("template".to_owned(), t)));
            filters.extend(pairs(&labels, '=', "--label")?.into_iter().map(|(k, v)| (format!("metadata.{k}"), v)));
            let sandboxes: Vec<Sandbox> = client.all("/v1/sandboxes", &filters).await?;
            if global.json {
                return output::json(&sandboxes);
            }
            let rows: Vec<Vec<String>> = sandboxes
                .iter()
                .map(|s| {
                    vec![
                        s.id.to_string(),
                        s.state.to_string(),
                        s.template.clone(),
                        output::time(Some(s.created_at)),
                        output::time(s.timeout_at),
                        s.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                    ]
                })
                .collect();
            output::table(&["ID", "STATE", "TEMPLATE", "CREATED", "TIMES OUT", "LABELS"], &rows);
        }
        SandboxCommand::Exec { id, argv } => {
            let start = ExecStreamStart { argv: Some(argv), ..Default::default() };
            let code = stream(&client, id, start, false).await?;
            std::process::exit(code);
        }
        SandboxCommand::Shell { id, shell } => {
            let (cols, rows) = crossterm::terminal::size().unwrap_or((80, 24));
            let start = ExecStreamStart {
                argv: Some(vec![shell, "-l".into()]),
                pty: Some(TerminalSize { cols, rows }),
                env: BTreeMap::from([(
                    "TERM".to_owned(),
                    std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into()),
                )]),
                ..Default::default()
            };
            let code = stream(&client, id, start, true).await?;
            std::process::exit(code);
        }
        SandboxCommand::Pause { id } => show(&client.pause_sandbox(id).await?)?,
        SandboxCommand::Resume { id } => show(&client.resume_sandbox(id).await?)?,
        SandboxCommand::Timeout { id, seconds } => show(&client.set_sandbox_timeout(id, seconds).await?)?,
        SandboxCommand::Rm { id } => show(&client.delete_sandbox(id).await?)?,
    }
    Ok(())
}

/// Restores the terminal when the shell ends, however it ends.
struct RawMode;

impl RawMode {
    fn enable() -> anyhow::Result<Self> {
        crossterm::terminal::enable_raw_mode().context("cannot put the terminal in raw mode")?;
        Ok(Self)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// Runs a streamed exec; returns the exit code to exit with.
async fn stream(
    client: &runtools_client::Client,
    id: SandboxId,
    start: ExecStreamStart,
    interactive: bool,
) -> anyhow::Result<i32> {
    let (url, key) = client.exec_stream_url(id)?;
    let mut request = url.as_str().into_client_request()?;
    if let Some(key) = key {
        request.headers_mut().insert("authorization", format!("Bearer {key}").parse()?);
    }
    let (socket, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(connected) => connected,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
            bail!("the server refused the stream (HTTP {}): {body}", response.status());
        }
        Err(error) => return Err(error).context("cannot open the exec stream"),
    };
    let (mut sink, mut source) = socket.split();
    sink.send(Message::Text(serde_json::to_string(&ExecStreamClientMessage::Start(start))?.into())).await?;
    let _raw = if interactive { Some(RawMode::enable()?) } else { None };

    let (input_tx, mut input_rx) = tokio::sync::mpsc::channel::<Option<Vec<u8>>>(16);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buffer = [0u8; 4096];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => {
                    let _ = input_tx.blocking_send(None);
                    return;
                }
                Ok(n) => {
                    if input_tx.blocking_send(Some(buffer[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut resizes = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut stdin_open = true;
    loop {
        tokio::select! {
            message = source.next() => match message {
                Some(Ok(Message::Binary(bytes))) if !bytes.is_empty() => {
                    let data = &bytes[1..];
                    if bytes[0] == 2 {
                        let mut err = std::io::stderr();
                        err.write_all(data)?;
                        err.flush()?;
                    } else {
                        let mut out = std::io::stdout();
                        out.write_all(data)?;
                        out.flush()?;
                    }
                }
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<ExecStreamServerMessage>(&text)? {
                    ExecStreamServerMessage::Started { .. } => {}
                    ExecStreamServerMessage::Exited { exit_code, signal, timed_out } => {
                        drop(_raw);
                        if timed_out {
                            eprintln!("runtools: the command timed out");
                        }
                        return Ok(exit_code.unwrap_or_else(|| 128 + signal.unwrap_or(1)));
                    }
                    ExecStreamServerMessage::Error { code, message } => {
                        drop(_raw);
                        bail!("{message} ({code})");
                    }
                },
                Some(Ok(Message::Close(_))) | None => bail!("the stream closed before the command finished"),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error).context("the exec stream failed"),
            },
            input = input_rx.recv(), if stdin_open => match input {
                Some(Some(bytes)) => sink.send(Message::Binary(bytes.into())).await?,
                _ => {
                    stdin_open = false;
                    sink.send(Message::Text(serde_json::to_string(&ExecStreamClientMessage::StdinEof)?.into())).await?;
                }
            },
            _ = resizes.recv(), if interactive => {
                if let Ok((cols, rows)) = crossterm::terminal::size() {
                    let resize = ExecStreamClientMessage::Resize { cols, rows };
                    sink.send(Message::Text(serde_json::to_string(&resize)?.into())).await?;
                }
            }
        }
    }
}
