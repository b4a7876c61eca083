//! Node-to-node calls over HTTP: `POST /internal/v1/<method>` on a peer's
//! HTTP port, opaque bodies, the protocol version in a header so nodes of
//! different versions refuse each other clearly instead of misreading bytes.
//! Connections are pooled and reused; failed connections are retried a
//! bounded number of times with backoff.

use std::time::Duration;

use bytes::Bytes;

/// Header carrying the sender's internal protocol version (the messages
/// and their version belong to `ignis_actors::peer`; a mismatch is a 409).
pub const VERSION_HEADER: &str = "x-ignis-protocol";
/// Path prefix of internal endpoints.
pub const PATH_PREFIX: &str = "/internal/v1/";

/// A failed internal call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// The peer could not be reached (connection refused, timeout).
    #[error("{addr} unreachable: {reason}")]
    Unreachable {
        /// The peer.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The peer speaks another internal protocol version.
    #[error("{addr} speaks another internal protocol: {message}")]
    Version {
        /// The peer.
        addr: String,
        /// Its explanation.
        message: String,
    },
    /// The peer answered with an error status.
    #[error("{addr} answered {status}: {message}")]
    Status {
        /// The peer.
        addr: String,
        /// HTTP status.
        status: u16,
        /// Its explanation.
        message: String,
    },
    /// A message could not be encoded or decoded.
    #[error("internal message: {0}")]
    Decode(String),
}

/// Header carrying the cluster secret, when the cluster has one: a node
/// answers internal calls only from nodes that know it.
pub const SECRET_HEADER: &str = "x-ignis-cluster-secret";

/// A pooled HTTP client for internal calls.
#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    timeout: Duration,
    retries: u32,
    protocol: String,
    secret: Option<String>,
    scheme: &'static str,
}

/// The HTTP client of internal calls, trusting `roots` (PEM) only when set.
fn http_client(timeout: Duration, roots: Option<&[u8]>) -> Result<reqwest::Client, RpcError> {
    let unusable = |reason: String| RpcError::Unreachable {
        addr: String::new(),
        reason,
    };
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(2)))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true);
    if let Some(pem) = roots {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| unusable(format!("cannot read the cluster's TLS roots: {e}")))?;
        if certs.is_empty() {
            return Err(unusable(
                "the cluster's TLS roots hold no certificate".into(),
            ));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| unusable(format!("cannot build HTTP client: {e}")))
}

impl RpcClient {
    /// A client speaking internal protocol `protocol` whose calls time out
    /// after `timeout` and retry unreachable peers up to `retries` times.
    pub fn new(timeout: Duration, retries: u32, protocol: u32) -> Result<Self, RpcError> {
        Ok(Self {
            http: http_client(timeout, None)?,
            timeout,
            retries,
            protocol: protocol.to_string(),
            secret: None,
            scheme: "http",
        })
    }

    /// The same client calling peers over HTTPS, trusting only the
    /// certificates in `roots_pem` (a CA bundle, or the cluster's shared
    /// certificate); a peer's certificate must name the address it
    /// advertises.
    pub fn with_tls(mut self, roots_pem: &[u8]) -> Result<Self, RpcError> {
        self.http = http_client(self.timeout, Some(roots_pem))?;
        self.scheme = "https";
        Ok(self)
    }

    /// The same client sending the cluster secret (empty: none) with every call.
    pub fn with_secret(mut self, secret: &str) -> Self {
        self.secret = (!secret.is_empty()).then(|| secret.to_string());
        self
    }

    /// Calls `method` on the node at `addr` (`host:port`) with `body`.
    pub async fn call(&self, addr: &str, method: &str, body: Bytes) -> Result<Bytes, RpcError> {
        self.call_for(addr, method, body, None).await
    }

    /// [`RpcClient::call`] whose attempts may take `timeout` (when given)
    /// instead of the client's timeout: a call that waits for work, or for
    /// a query to run.
    pub async fn call_for(
        &self,
        addr: &str,
        method: &str,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<Bytes, RpcError> {
        let url = format!("{}://{addr}{PATH_PREFIX}{method}", self.scheme);
        let mut attempt = 0;
        loop {
            let mut req = self
                .http
                .post(&url)
                .header(VERSION_HEADER, &self.protocol)
                .header("content-type", "application/octet-stream");
            if let Some(secret) = &self.secret {
                req = req.header(SECRET_HEADER, secret);
            }
            if let Some(t) = timeout {
                req = req.timeout(t);
            }
            let res = req.body(body.clone()).send().await;
            let err = match res {
                Ok(r) if r.status().is_success() => {
                    return r.bytes().await.map_err(|e| RpcError::Unreachable {
                        addr: addr.to_string(),
                        reason: e.to_string(),
                    });
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let message = r.text().await.unwrap_or_default();
                    if status == 409 {
                        return Err(RpcError::Version {
                            addr: addr.to_string(),
                            message,
                        });
                    }
                    let e = RpcError::Status {
                        addr: addr.to_string(),
                        status,
                        message,
                    };
                    if status != 503 {
                        return Err(e);
                    }
                    e
                }
                Err(e) => RpcError::Unreachable {
                    addr: addr.to_string(),
                    reason: if e.is_timeout() {
                        "timed out".to_string()
                    } else {
                        e.to_string()
                    },
                },
            };
            // Timeouts are not retried: the peer may be slow, not gone.
            let timed_out =
                matches!(&err, RpcError::Unreachable { reason, .. } if reason == "timed out");
            if attempt >= self.retries || timed_out {
                return Err(err);
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(25 << attempt.min(5))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_peers_fail_after_retries() {
        let c = RpcClient::new(Duration::from_millis(500), 2, 1).unwrap();
        let e = c
            .call("127.0.0.1:1", "push", Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(e, RpcError::Unreachable { .. }), "{e}");
    }
}
