//! Calls between the nodes of one process (tests; feature `testing`):
//! [`MemTransport`] hands each call to the addressed node's
//! [`server`](super::server) as bytes (the same encoding, version check and
//! handlers as HTTP) and can take nodes down or make them hang.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::future::BoxFuture;
use ignis_cluster::RpcError;
use parking_lot::RwLock;

use super::Transport;
use crate::Tenants;

struct MemNode {
    tenants: Weak<Tenants>,
    up: bool,
    hung: bool,
}

/// Calls between nodes of one process: each node registers its [`Tenants`]
/// under its address; a node marked down refuses calls, as a crashed one
/// would; a hung node takes calls and never answers, as one behind a
/// partition that drops packets (only the caller's deadline ends the call).
/// Counts the bytes it carries.
#[derive(Default)]
pub struct MemTransport {
    nodes: RwLock<HashMap<String, MemNode>>,
    bytes: AtomicU64,
}

impl MemTransport {
    /// Makes `tenants` reachable at `addr` (up).
    pub fn register(&self, addr: &str, tenants: &Arc<Tenants>) {
        self.nodes.write().insert(
            addr.to_string(),
            MemNode {
                tenants: Arc::downgrade(tenants),
                up: true,
                hung: false,
            },
        );
    }

    /// Takes the node at `addr` down (calls fail as unreachable) or back up.
    pub fn set_up(&self, addr: &str, up: bool) {
        if let Some(n) = self.nodes.write().get_mut(addr) {
            n.up = up;
        }
    }

    /// Makes the node at `addr` hang (calls never answer) or answer again.
    pub fn set_hung(&self, addr: &str, hung: bool) {
        if let Some(n) = self.nodes.write().get_mut(addr) {
            n.hung = hung;
        }
    }

    /// Request and answer bytes carried so far.
    pub fn bytes_moved(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Transport for Arc<MemTransport> {
    fn call(
        &self,
        addr: &str,
        method: &str,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
        let this = self.clone();
        let (addr, method) = (addr.to_string(), method.to_string());
        Box::pin(async move {
            let unreachable = |reason: &str| RpcError::Unreachable {
                addr: addr.clone(),
                reason: reason.to_string(),
            };
            let (tenants, hung) = {
                let nodes = this.nodes.read();
                let node = nodes
                    .get(&addr)
                    .ok_or_else(|| unreachable("no such node"))?;
                if !node.up {
                    return Err(unreachable("connection refused (node down)"));
                }
                let tenants = node
                    .tenants
                    .upgrade()
                    .ok_or_else(|| unreachable("node stopped"))?;
                (tenants, node.hung)
            };
            if hung {
                return futures::future::pending().await;
            }
            this.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            let answer = super::server::handle(&tenants, &method, body)
                .await
                .map_err(|e| RpcError::Status {
                    addr: addr.clone(),
                    status: e.status(),
                    message: e.to_string(),
                })?;
            this.bytes.fetch_add(answer.len() as u64, Ordering::Relaxed);
            Ok(answer)
        })
    }
}
