//! Serving the routes on a listener that faces the internet: a bound on
//! connections, a deadline for each request's headers (which also closes
//! kept-alive connections left idle), a most a connection may live (so a
//! client that stops reading its answers cannot hold a slot), and a
//! graceful stop. Bodies have their own deadline and size check, on every
//! route (`server::body`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// How the listener treats clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// Connections served at once; others wait in the backlog.
    pub max_connections: usize,
    /// Time to send a request's headers; also the idle limit between
    /// requests on a kept-alive connection.
    pub header_timeout: Duration,
    /// Longest a connection is kept, however busy: then it finishes the
    /// request under way and closes.
    pub max_age: Duration,
    /// How long requests under way may take to finish once stopping.
    pub finish_timeout: Duration,
}

/// After an accept error (out of descriptors, say), wait this long before
/// accepting again instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serve `router` on `listener` until `shutdown` resolves; then stop
/// accepting and let requests under way finish, up to `finish_timeout`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let (stopping, stop) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Take a slot before accepting: at the limit, clients wait in the
        // kernel's backlog rather than costing a descriptor each.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(serve_connection(
            stream,
            router.clone(),
            limits,
            stop.clone(),
            slot,
        ));
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection gives its slot back when it closes.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.finish_timeout, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("requests still under way at shutdown were cut off");
    }
}

/// One connection, until the client closes it, it outlives `max_age`, or
/// igloo stops; holds `slot` until then.
async fn serve_connection(
    stream: TcpStream,
    router: axum::Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
    slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    let mut connection = std::pin::pin!(connection);
    let ended = tokio::select! {
        result = connection.as_mut() => Some(result),
        _ = tokio::time::sleep(limits.max_age) => None,
        _ = stop.wait_for(|stopping| *stopping) => None,
    };
    let result = match ended {
        Some(result) => result,
        None => {
            // Finish the request under way, then close; a client that does
            // not read its answer is cut off after one more header timeout.
            connection.as_mut().graceful_shutdown();
            tokio::time::timeout(limits.header_timeout, connection)
                .await
                .unwrap_or(Ok(()))
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
    drop(slot);
}
