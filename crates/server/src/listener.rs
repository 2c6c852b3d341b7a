//! The accept loop. Each connection runs as a task this module owns, so shutdown is exact: stop
//! accepting, ask every connection to finish its current request and close (HTTP/1 keep-alive and
//! HTTP/2 alike), wait up to the deadline, then abort whatever is still running. (axum's own
//! `serve` spawns connections it cannot abort, which would let a stalled client outlive the
//! server and its store.)

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How a serve loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// Every in-flight request finished before the deadline.
    Cleanly,
    /// The deadline passed; this many connections were cut off.
    Aborted(usize),
}

/// Serves `router` on `listener` until `stop` turns true, then drains within `deadline`.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
    deadline: Duration,
) -> Drained {
    let builder = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(router.clone());
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                    let connection = graceful.watch(connection);
                    connections.spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%peer, %error, "connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Usually EMFILE: back off instead of spinning; established connections go on.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(connections = connections.len(), "shutting down: no new connections, finishing in-flight requests");
    let drained = tokio::select! {
        _ = graceful.shutdown() => Drained::Cleanly,
        _ = tokio::time::sleep(deadline) => Drained::Aborted(connections.len()),
    };
    connections.shutdown().await;
    drained
}
