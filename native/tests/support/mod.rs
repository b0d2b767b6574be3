//! What the storage server tests share: finding the servers scripts/test-all.sh started, the
//! URIs of a fresh directory on each, and a fault-injecting proxy in front of a real server.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The S3 buckets scripts/test-all.sh creates on its S3 server.
pub const S3_BUCKETS: [&str; 2] = ["strata-a", "strata-b"];
/// The Azure container scripts/test-all.sh creates on Azurite.
pub const AZURE_CONTAINER: &str = "strata-test";
/// The S3 secret key the tests use (moto accepts any credentials); it must never be shown.
pub const S3_SECRET: &str = "strata-s3-secret-0d9f7a/Zq+W";

/// The value of `var`, which scripts/test-all.sh sets once it has started `what`.
///
/// Outside the script, an unset variable skips the test with a loud message. Under the
/// script (`STRATA_REQUIRE_SERVERS=1`) or in CI (`CI=true`) it fails the test: there the
/// servers are part of the run.
pub fn server_env(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let required = std::env::var("STRATA_REQUIRE_SERVERS").as_deref() == Ok("1")
                || std::env::var("CI").as_deref() == Ok("true");
            let message = format!(
                "{var} is not set: no {what} to test against. scripts/test-all.sh starts one \
                 (`scripts/test-all.sh storage-servers test`)"
            );
            if required {
                panic!("{message}; this run requires the storage servers (STRATA_REQUIRE_SERVERS=1 or CI=true)");
            }
            eprintln!("\n*** SKIPPED: {message} ***\n");
            None
        }
    }
}

/// A name unique to this process and call, for fresh directories on shared servers.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{:x}-{}", std::process::id(), nanos & 0xff_ffff_ffff, N.fetch_add(1, Ordering::Relaxed))
}

/// The S3 server's endpoint (`http://127.0.0.1:PORT`).
pub fn s3_endpoint() -> Option<String> {
    server_env("STRATA_TEST_S3_ENDPOINT", "S3-compatible server (moto)")
}

/// `s3://bucket/dir?…` on the S3 server at `endpoint`.
pub fn s3_uri(endpoint: &str, bucket: &str, dir: &str) -> String {
    format!(
        "s3://{bucket}/{dir}?AWS_ACCESS_KEY_ID=strata-key&AWS_SECRET_ACCESS_KEY={}&AWS_REGION=us-east-1&AWS_ENDPOINT={}",
        encode(S3_SECRET),
        encode(endpoint)
    )
}

/// Azurite's endpoint (`http://127.0.0.1:PORT/<account>`) and account key.
pub fn azure_server() -> Option<(String, String)> {
    let endpoint = server_env("STRATA_TEST_AZURE_ENDPOINT", "Azure Blob Storage emulator (Azurite)")?;
    let key = server_env("STRATA_TEST_AZURE_ACCOUNT_KEY", "Azurite account key")?;
    Some((endpoint, key))
}

/// `azure://container/dir?…` on Azurite.
pub fn azure_uri((endpoint, key): &(String, String), dir: &str) -> String {
    let account = endpoint.trim_end_matches('/').rsplit('/').next().unwrap();
    format!(
        "azure://{AZURE_CONTAINER}/{dir}?AZURE_ACCOUNT_NAME={account}&AZURE_ACCOUNT_KEY={}&AZURE_BLOB_ENDPOINT={}",
        encode(key),
        encode(endpoint)
    )
}

/// The WebDAV server's URL with its user and password (`http://user:pw@127.0.0.1:PORT`).
pub fn webdav_url() -> Option<String> {
    server_env("STRATA_TEST_WEBDAV_URL", "WebDAV server (rclone serve webdav)")
}

/// The WebDAV server's password (a secret that must never be shown).
pub fn webdav_password(url: &str) -> String {
    let userinfo = url.split_once("://").unwrap().1.rsplit_once('@').unwrap().0;
    userinfo.split_once(':').unwrap().1.to_string()
}

/// `http://user:pw@host:port/dir` on the WebDAV server.
pub fn webdav_uri(url: &str, dir: &str) -> String {
    format!("{}/{dir}", url.trim_end_matches('/'))
}

/// Percent-encodes a query parameter value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A TCP proxy on 127.0.0.1 in front of a real server that answers the next connections with
/// queued HTTP error statuses (then closes them), and forwards every other connection untouched.
/// A client retrying a failed request opens a new connection, so each queued status fails one
/// attempt.
pub struct FaultProxy {
    pub addr: SocketAddr,
    faults: Arc<Mutex<VecDeque<u16>>>,
    connections: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// A proxy for the server at `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let faults: Arc<Mutex<VecDeque<u16>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.to_string();
        let (f, c) = (faults.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                c.fetch_add(1, Ordering::SeqCst);
                let fault = f.lock().unwrap().pop_front();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    match fault {
                        Some(status) => answer_with(client, status).await,
                        None => forward(client, &upstream).await,
                    }
                });
            }
        });
        FaultProxy { addr, faults, connections }
    }

    /// Fails the next connections with these statuses, one each.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.faults.lock().unwrap().extend(statuses);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Faults not yet served.
    pub fn pending_faults(&self) -> usize {
        self.faults.lock().unwrap().len()
    }
}

/// Reads one request (head and `Content-Length` body), answers `status`, closes.
async fn answer_with(mut client: TcpStream, status: u16) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let Ok(n) = client.read(&mut chunk).await else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut have = buf.len() - head_end;
    while have < length {
        let Ok(n) = client.read(&mut chunk).await else { return };
        if n == 0 {
            return;
        }
        have += n;
    }
    let response = format!("HTTP/1.1 {status} Injected Fault\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = client.write_all(response.as_bytes()).await;
    let _ = client.shutdown().await;
}

/// Forwards one request with `Connection: close` added, so that the server closes the
/// connection after answering and the client's next request comes on a new connection (where a
/// fault may wait for it).
async fn forward(mut client: TcpStream, upstream: &str) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let Ok(n) = client.read(&mut chunk).await else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end - 2]).to_string();
    let mut rewritten: String =
        head.split_inclusive("\r\n").filter(|line| !line.to_ascii_lowercase().starts_with("connection:")).collect();
    rewritten.push_str("Connection: close\r\n\r\n");
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    if server.write_all(rewritten.as_bytes()).await.is_err() || server.write_all(&buf[head_end..]).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
