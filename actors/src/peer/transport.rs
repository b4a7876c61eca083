//! How node-to-node calls travel: [`Transport`], implemented over HTTP by
//! [`RpcClient`] (and in one process, for tests, by
//! [`MemTransport`](super::MemTransport)).

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
}

impl Transport for RpcClient {
    fn call(
        &self,
        addr: &str,
        method: &str,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
        let (client, addr, method) = (self.clone(), addr.to_string(), method.to_string());
        Box::pin(async move { RpcClient::call(&client, &addr, &method, body).await })
    }
}
