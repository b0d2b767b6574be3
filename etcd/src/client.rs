//! The connection to an etcd cluster: one single-endpoint client per member, rotated when a
//! member does not answer.
//!
//! A client given several endpoints balances over them and kept sending requests to a dead
//! member (measured on etcd 3.4.23 with etcd-client 0.21); one client per endpoint, moving to
//! the next endpoint on `Unavailable`, a deadline or a transport error, does not stall.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, KvClient, WatchClient};
use strata_core::{Error, Result, Status};
use tokio::sync::OnceCell;

/// Largest gRPC message the clients decode: a page of a Range can hold up to etcd's request
/// limit per value times many keys; the default 4 MiB is too small for a limited Range of large
/// values.
const MAX_DECODE: usize = 1 << 30;

/// Parses the host part of a store URI, `etcd://HOST:PORT[,HOST:PORT…]` (or a bare
/// `HOST:PORT,…` list), into client URLs `http://HOST:PORT`.
pub fn parse_endpoints(uri: &str) -> Result<Vec<String>> {
    let list = uri.strip_prefix("etcd://").unwrap_or(uri).trim_end_matches('/');
    let endpoints: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| if e.contains("://") { e.to_string() } else { format!("http://{e}") })
        .collect();
    if endpoints.is_empty() {
        return Err(Error::InvalidArgument {
            what: "etcd store URI".into(),
            message: format!("{uri:?} names no endpoint; expected etcd://HOST:PORT[,HOST:PORT…]"),
        });
    }
    Ok(endpoints)
}

/// Whether an etcd error is worth retrying on another member.
pub(crate) fn retryable(e: &etcd_client::Error) -> bool {
    use tonic::Code;
    match e {
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted
        ),
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// Whether an etcd error says the revision asked for has been compacted away.
pub(crate) fn is_compacted(e: &etcd_client::Error) -> bool {
    e.to_string().contains("required revision has been compacted")
}

/// A connection to one etcd cluster: the endpoints, a lazily connected client per endpoint, and
/// the endpoint in use. Cheap to share (`Arc`).
pub struct EtcdConn {
    endpoints: Vec<String>,
    clients: Vec<OnceCell<Client>>,
    streams: Vec<OnceCell<Client>>,
    current: AtomicUsize,
    request_timeout: Duration,
}

impl std::fmt::Debug for EtcdConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConn").field("endpoints", &self.endpoints).finish_non_exhaustive()
    }
}

impl EtcdConn {
    /// A connection to these client URLs (`http://HOST:PORT`); connects lazily.
    pub fn new(endpoints: Vec<String>, request_timeout: Duration) -> EtcdConn {
        let n = endpoints.len();
        EtcdConn {
            endpoints,
            clients: (0..n).map(|_| OnceCell::new()).collect(),
            streams: (0..n).map(|_| OnceCell::new()).collect(),
            current: AtomicUsize::new(0),
            request_timeout,
        }
    }

    /// The client URLs.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    fn options(&self, with_timeout: bool) -> ConnectOptions {
        // etcd closes connections that ping more often than its --grpc-keepalive-min-time (5 s by
        // default) with GOAWAY "too_many_pings": ping every 10 s, give up after 5 more.
        let o = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        if with_timeout {
            o.with_timeout(self.request_timeout)
        } else {
            o
        }
    }

    /// The client of endpoint `i` for unary requests (with the request deadline).
    async fn client_at(&self, i: usize) -> std::result::Result<Client, etcd_client::Error> {
        let c =
            self.clients[i].get_or_try_init(|| Client::connect([&self.endpoints[i]], Some(self.options(true)))).await?;
        Ok(c.clone())
    }

    /// A client of endpoint `i` for streams (watches, lease keep-alives): no request deadline,
    /// keep-alive pings instead.
    pub async fn stream_client_at(&self, i: usize) -> Result<Client> {
        let c = self.streams[i]
            .get_or_try_init(|| Client::connect([&self.endpoints[i]], Some(self.options(false))))
            .await
            .map_err(|e| self.error(i, "connect", &e))?;
        Ok(c.clone())
    }

    /// The endpoint index in use now.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.endpoints.len()
    }

    /// Moves to the next endpoint after `from` failed (unless another caller already moved).
    pub fn rotate(&self, from: usize) {
        let _ = self.current.compare_exchange(
            from,
            (from + 1) % self.endpoints.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// A strata error for a failed etcd call at endpoint `i`.
    pub fn error(&self, i: usize, what: &str, e: &etcd_client::Error) -> Error {
        let status = if retryable(e) { Status::Temporary } else { Status::Permanent };
        Error::Kv { message: format!("etcd at {}: {what}: {e}", self.endpoints[i]), status }
    }

    /// Runs `call` with a key-value client, moving to the next endpoint and retrying (each
    /// endpoint twice) while the error is retryable. Non-idempotent calls (a plain put) may then
    /// be applied twice; compare-and-swap calls see their own earlier success and retry cleanly.
    pub async fn kv<T, F, Fut>(&self, what: &str, call: F) -> Result<T>
    where
        F: Fn(KvClient) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.raw(what, |c| call(c.kv_client().max_decoding_message_size(MAX_DECODE))).await
    }

    /// [`EtcdConn::kv`] with the whole client (maintenance, leases, …).
    ///
    /// Retries move to the next member at once; after every member failed in a row they pause
    /// (50 ms, doubling up to 1 s) so that an election after a leader died can finish. They give
    /// up after three request deadlines.
    pub async fn raw<T, F, Fut>(&self, what: &str, call: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.request_timeout * 3;
        let mut pause = Duration::from_millis(50);
        let mut failed_in_a_row = 0;
        loop {
            let i = self.current();
            let result = match self.client_at(i).await {
                Ok(client) => call(client).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if retryable(&e) && tokio::time::Instant::now() < deadline => {
                    self.rotate(i);
                    failed_in_a_row += 1;
                    if failed_in_a_row % self.endpoints.len() == 0 {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                    }
                }
                Err(e) => return Err(self.error(i, what, &e)),
            }
        }
    }

    /// A watch client of endpoint `i` (modulo the number of endpoints), with the raised decode
    /// limit.
    pub async fn watch_client(&self, i: usize) -> Result<(usize, WatchClient)> {
        let i = i % self.endpoints.len();
        let client = self.stream_client_at(i).await?;
        Ok((i, client.watch_client().max_decoding_message_size(MAX_DECODE)))
    }

    /// The deadline of one request.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_uris_parse_to_client_urls() {
        assert_eq!(
            parse_endpoints("etcd://127.0.0.1:2379,10.0.0.2:2379").unwrap(),
            vec!["http://127.0.0.1:2379".to_string(), "http://10.0.0.2:2379".to_string()]
        );
        assert_eq!(parse_endpoints("localhost:2379/").unwrap(), vec!["http://localhost:2379".to_string()]);
        assert!(parse_endpoints("etcd://").is_err());
    }
}
