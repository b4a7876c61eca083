//! A recording HTTP proxy: forwards GET and POST requests to an upstream
//! server and keeps every successful exchange, so a test knows exactly what a
//! scraper was served or what an SDK sent.

use std::sync::Arc;

use anyhow::Result;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One exchange the proxy completed with a 2xx answer.
#[derive(Debug, Clone)]
pub struct Record {
    /// Request path and query.
    pub path: String,
    /// Request headers (names lowercased).
    pub request_headers: Vec<(String, String)>,
    /// Request body as the client sent it.
    pub request: Vec<u8>,
    /// Response body as the upstream sent it.
    pub body: Vec<u8>,
}

/// Request headers passed on to the upstream.
const FORWARDED: [&str; 5] = [
    "content-type",
    "content-encoding",
    "x-scope-orgid",
    "user-agent",
    "authorization",
];

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
        Self::listen(Some(upstream.trim_end_matches('/').to_string())).await
    }

    /// Starts a sink: it records every request and answers 200 with an
    /// empty body (an empty protobuf message), like a collector would.
    pub async fn start_sink() -> Result<Self> {
        Self::listen(None).await
    }

    async fn listen(upstream: Option<String>) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let records: Arc<Mutex<Vec<Record>>> = Arc::default();
        let (up, rec) = (upstream, records.clone());
        let client = reqwest::Client::new();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (up, rec, client) = (up.clone(), rec.clone(), client.clone());
                tokio::spawn(async move {
                    if let Ok(Some(r)) = serve(stream, up.as_deref(), &client).await {
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
    upstream: Option<&str>,
    client: &reqwest::Client,
) -> Result<Option<Record>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 64 << 10 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    };
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("GET").to_string();
    let path = first.next().unwrap_or("/").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut request = head[end..].to_vec();
    while request.len() < length {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        request.extend_from_slice(&buf[..n]);
    }
    let (status, body) = match upstream {
        Some(upstream) => {
            let url = format!("{upstream}{path}");
            let mut req = if method == "POST" {
                client.post(&url).body(request.clone())
            } else {
                client.get(&url)
            };
            for (k, v) in headers
                .iter()
                .filter(|(k, _)| FORWARDED.contains(&k.as_str()))
            {
                req = req.header(k.as_str(), v.as_str());
            }
            let resp = req.send().await?;
            let status = resp.status();
            (status, resp.bytes().await?.to_vec())
        }
        None => (reqwest::StatusCode::OK, Vec::new()),
    };
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
    Ok(status.is_success().then_some(Record {
        path,
        request_headers: headers,
        request,
        body,
    }))
}
