//! Node-to-node calls: `POST /internal/v1/<method>` on a peer's HTTP port,
//! bodies encoded with rkyv, the protocol version in a header so nodes of
//! different versions refuse each other clearly instead of misreading bytes.
//! Connections are pooled and reused; failed connections are retried a
//! bounded number of times with backoff.

use std::time::Duration;

use bytes::Bytes;

/// The internal protocol version; bump on any change to an internal message.
/// 2: fetch answers carry span samples (head wire `IGNHED02`).
pub const PROTOCOL_VERSION: u32 = 2;
/// Header carrying [`PROTOCOL_VERSION`].
pub const VERSION_HEADER: &str = "x-ignis-protocol";
/// Path prefix of internal endpoints.
pub const PATH_PREFIX: &str = "/internal/v1/";

/// Asks an ingester for a tenant's profiles in a time range.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct FetchRequest {
    /// Tenant id.
    pub tenant: String,
    /// Start of the range, ns (inclusive).
    pub start_ns: i64,
    /// End of the range, ns (inclusive).
    pub end_ns: i64,
}

/// What an ingester stored of a replicated push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct PushReply {
    /// Profile rows stored.
    pub profiles: u64,
    /// Samples stored.
    pub samples: u64,
}

/// Encodes an internal message.
pub fn encode<T>(msg: &T) -> Result<Vec<u8>, RpcError>
where
    T: for<'a> rkyv::Serialize<
            rkyv::api::high::HighSerializer<
                rkyv::util::AlignedVec,
                rkyv::ser::allocator::ArenaHandle<'a>,
                rkyv::rancor::Error,
            >,
        >,
{
    rkyv::to_bytes::<rkyv::rancor::Error>(msg)
        .map(|v| v.to_vec())
        .map_err(|e| RpcError::Decode(e.to_string()))
}

/// Decodes an internal message, validating it (bad bytes give an error, never a panic).
pub fn decode<T>(bytes: &[u8]) -> Result<T, RpcError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rkyv::rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rkyv::rancor::Error>>,
{
    let mut buf = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    buf.extend_from_slice(bytes);
    rkyv::from_bytes::<T, rkyv::rancor::Error>(&buf).map_err(|e| RpcError::Decode(e.to_string()))
}

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

/// A pooled HTTP client for internal calls.
#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    retries: u32,
}

impl RpcClient {
    /// A client whose calls time out after `timeout` and retry unreachable
    /// peers up to `retries` times.
    pub fn new(timeout: Duration, retries: u32) -> Result<Self, RpcError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| RpcError::Unreachable {
                addr: String::new(),
                reason: format!("cannot build HTTP client: {e}"),
            })?;
        Ok(Self { http, retries })
    }

    /// Calls `method` on the node at `addr` (`host:port`) with `body`.
    pub async fn call(&self, addr: &str, method: &str, body: Bytes) -> Result<Bytes, RpcError> {
        let url = format!("http://{addr}{PATH_PREFIX}{method}");
        let mut attempt = 0;
        loop {
            let res = self
                .http
                .post(&url)
                .header(VERSION_HEADER, PROTOCOL_VERSION.to_string())
                .header("content-type", "application/octet-stream")
                .body(body.clone())
                .send()
                .await;
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

    #[test]
    fn messages_round_trip_and_bad_bytes_fail() {
        let req = FetchRequest {
            tenant: "t".into(),
            start_ns: 1,
            end_ns: 2,
        };
        let bytes = encode(&req).unwrap();
        assert_eq!(decode::<FetchRequest>(&bytes).unwrap(), req);
        assert!(decode::<FetchRequest>(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode::<PushReply>(b"").is_err());
    }

    #[tokio::test]
    async fn unreachable_peers_fail_after_retries() {
        let c = RpcClient::new(Duration::from_millis(500), 2).unwrap();
        let e = c
            .call("127.0.0.1:1", "push", Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(e, RpcError::Unreachable { .. }), "{e}");
    }
}
