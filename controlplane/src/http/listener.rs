//! The HTTP listener and its limits against slow and idle clients (docs/api.md, Connection limits:
//! however many, they never lock out an operator).
//!
//! axum's own `serve` has no header-read timeout and no connection cap, so the accept loop is
//! ours, over hyper's HTTP/1 connection builder:
//! - hyper's header-read timeout starts whenever the server waits for a request's head (a new
//!   connection, or a kept-alive one after its answer) and closes the connection if the head
//!   is not complete in time: idle and slowloris connections both end there;
//! - tower-http's body timeout ends a declared body that does not come, and its request
//!   timeout a body trickled a byte at a time (see [`crate::http::api::app_with_limits`]);
//! - a semaphore caps the connections served at once: at the cap, the loop stops accepting
//!   and new connections wait in the kernel's listen backlog until one closes, so the daemon
//!   never runs out of file descriptors (`accept: Too many open files`) and an operator's
//!   request is served as soon as a slot frees.
//!
//! HTTP/1.1 only: the API is plain-text HTTP (no TLS, hence no ALPN), where browsers and the
//! softswitches' clients speak HTTP/1.1; hyper's HTTP/2 server has no header or idle timeout.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};

use crate::config::Config;

/// File descriptors kept for everything but HTTP connections and media sockets: the
/// database and its WAL, io_uring and epoll instances, event fds, webhook connections, logs.
pub const FD_RESERVE: u64 = 64;
/// The fewest connections the cap is lowered to, whatever the fd limit: below it an operator
/// could not get in.
const CONNECTIONS_MIN: usize = 16;
/// How long the loop pauses after an accept error other than a client's reset (e.g. EMFILE
/// from a descriptor the reserve did not foresee): the condition usually clears when a
/// connection closes, and retrying at once would spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// Largest request head hyper buffers (request line and headers). Above [`crate::http::api`]'s own
/// documented limits, so those answer with the JSON error shape; beyond this one hyper answers
/// a bare 431 itself.
const HEAD_BUF_MAX: usize = 128 * 1024;
/// Most header fields hyper parses; more are a bare 431 from hyper.
const HEADERS_MAX: usize = 200;

/// The connection cap the daemon applies: the configured one, lowered if the process's
/// file-descriptor limit (after raising its soft limit to the hard one) could not hold that
/// many connections besides every media port and [`FD_RESERVE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCap {
    pub connections: usize,
    /// The fd limit it was computed against (`None`: unknown, the configured cap is used).
    pub fd_limit: Option<u64>,
}

impl ConnectionCap {
    /// Raises the soft RLIMIT_NOFILE to the hard limit and computes the cap from it.
    pub fn for_config(config: &Config) -> ConnectionCap {
        let fd_limit = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => Some(limit),
            Err(err) => {
                tracing::warn!(%err, "cannot read or raise the file-descriptor limit");
                None
            }
        };
        ConnectionCap::compute(config, fd_limit)
    }

    /// The cap for `fd_limit`. Media ports are counted whole (RTP and RTCP, every port of the
    /// range): a leg's socket must never be refused for an HTTP client's.
    pub fn compute(config: &Config, fd_limit: Option<u64>) -> ConnectionCap {
        let configured = config.http.max_connections;
        let Some(limit) = fd_limit else {
            return ConnectionCap {
                connections: configured,
                fd_limit,
            };
        };
        let media = u64::from(config.media.port_max - config.media.port_min) + 1;
        let room = limit.saturating_sub(media + FD_RESERVE);
        let room = usize::try_from(room).unwrap_or(usize::MAX);
        ConnectionCap {
            connections: configured.min(room).max(CONNECTIONS_MIN),
            fd_limit,
        }
    }
}

/// Serves `app` on `listener` with the limits of `config.http`, at most `cap` connections at
/// once, until `stop`; then stops accepting and lets open connections finish for up to
/// `drain_max` (their answers in progress complete; kept-alive ones close after it).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &Config,
    cap: ConnectionCap,
    mut stop: oneshot::Receiver<()>,
    drain_max: Duration,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.http.header_read_timeout())
        .max_buf_size(HEAD_BUF_MAX)
        .max_headers(HEADERS_MAX);
    let slots = Arc::new(Semaphore::new(cap.connections));
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(app);
    loop {
        let slot = tokio::select! {
            _ = &mut stop => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                // Never closed; but if it were, serving on without a cap would be worse.
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(err) if is_connection_error(&err) => continue,
            Err(err) => {
                tracing::warn!(%err, "HTTP accept failed; retrying");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        // Answers are small and latency matters more than packing.
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                // A timeout, a reset or a malformed request: the client's doing.
                tracing::debug!(%err, "HTTP connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain_max) => {
            tracing::warn!("HTTP connections still open after {drain_max:?}; closing them");
        }
    }
}

/// Errors of one connection that never reached us (reset or aborted while in the backlog): the
/// next accept is fine.
fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_every_media_port_and_the_reserve() {
        let mut config = Config::default();
        (config.media.port_min, config.media.port_max) = (20000, 20099);
        config.http.max_connections = 4096;
        // Plenty of descriptors: the configured cap.
        let cap = ConnectionCap::compute(&config, Some(1 << 20));
        assert_eq!(cap.connections, 4096);
        // 1,024 descriptors: what is left after 100 media ports and the reserve.
        let cap = ConnectionCap::compute(&config, Some(1024));
        assert_eq!(cap.connections, 1024 - 100 - FD_RESERVE as usize);
        // Too few for anything: the floor, so an operator still gets in.
        let cap = ConnectionCap::compute(&config, Some(100));
        assert_eq!(cap.connections, CONNECTIONS_MIN);
        // Unknown limit: as configured.
        assert_eq!(ConnectionCap::compute(&config, None).connections, 4096);
    }
}
