//! How node-to-node calls travel: [`Transport`], implemented over HTTP by
//! [`RpcClient`] (and in one process, for tests, by
//! [`MemTransport`](super::MemTransport)).

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use ignis_cluster::{RpcClient, RpcError};

/// Carries a call to the node at `addr` and brings back its answer.
pub trait Transport: Send + Sync {
    /// Calls `method` with `body` on the node at `addr`.
    fn call(
        &self,
        addr: &str,
        method: &str,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>>;

    /// [`Transport::call`] that may take `timeout` (longer than a usual
    /// call: one that waits for work or for a query to run).
    fn call_for(
        &self,
        addr: &str,
        method: &str,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
        let _ = timeout;
        self.call(addr, method, body)
    }
}

impl Transport for RpcClient {
    fn call(
        &self,
        addr: &str,
        method: &str,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
        rpc(self, addr, method, body, None)
    }

    fn call_for(
        &self,
        addr: &str,
        method: &str,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
        rpc(self, addr, method, body, Some(timeout))
    }
}

/// One HTTP call, owning what it needs.
fn rpc(
    client: &RpcClient,
    addr: &str,
    method: &str,
    body: Bytes,
    timeout: Option<Duration>,
) -> BoxFuture<'static, Result<Bytes, RpcError>> {
    let (client, addr, method) = (client.clone(), addr.to_string(), method.to_string());
    Box::pin(async move { client.call_for(&addr, &method, body, timeout).await })
}
