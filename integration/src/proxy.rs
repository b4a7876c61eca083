//! A recording HTTP proxy: forwards GET requests to an upstream server and
//! keeps every successful response body, so a test knows exactly what a
//! scraper was served.

use std::sync::Arc;

use anyhow::Result;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One response the proxy delivered.
#[derive(Debug, Clone)]
pub struct Record {
    /// Request path and query.
    pub path: String,
    /// Response body as the upstream sent it.
    pub body: Vec<u8>,
}

/// A running proxy; stops accepting on [`RecordingProxy::close`] or drop.
pub struct RecordingProxy {
    /// Base URL of the proxy.
    pub url: String,
    records: Arc<Mutex<Vec<Record>>>,
    accept: JoinHandle<()>,
}

impl RecordingProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (a base URL).
    pub async fn start(upstream: &str) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let records: Arc<Mutex<Vec<Record>>> = Arc::default();
        let (up, rec) = (upstream.trim_end_matches('/').to_string(), records.clone());
        let client = reqwest::Client::new();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (up, rec, client) = (up.clone(), rec.clone(), client.clone());
                tokio::spawn(async move {
                    if let Ok(Some(r)) = serve(stream, &up, &client).await {
                        rec.lock().push(r);
                    }
                });
            }
        });
        Ok(Self {
            url,
            records,
            accept,
        })
    }

    /// Responses delivered so far whose path starts with `prefix`, in order.
    pub fn records(&self, prefix: &str) -> Vec<Record> {
        self.records
            .lock()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Stops accepting connections (requests already accepted complete).
    pub fn close(&self) {
        self.accept.abort();
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Answers one request; returns the record once the whole body was written.
async fn serve(
    mut stream: TcpStream,
    upstream: &str,
    client: &reqwest::Client,
) -> Result<Option<Record>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 64 << 10 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let resp = client.get(format!("{upstream}{path}")).send().await?;
    let status = resp.status();
    let body = resp.bytes().await?.to_vec();
    let header = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.flush().await?;
    stream.shutdown().await?;
    Ok(status.is_success().then_some(Record { path, body }))
}
