//! Gossip membership over chitchat: who is in the cluster, with which roles,
//! at which address, and whether each node is ready, alive, failed or gone.
//!
//! Each node publishes its state as chitchat key-values (see [`keys`]). A
//! background task turns chitchat's view into a sorted list of [`Member`]s
//! (one per node id: the newest generation wins) and a stream of
//! [`MembershipEvent`]s.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::Transport;
use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::ClusterError;

/// The chitchat keys a node publishes.
pub mod keys {
    /// Comma-separated roles.
    pub const ROLES: &str = "roles";
    /// `host:port` of the node's HTTP API (and internal endpoints).
    pub const HTTP: &str = "http";
    /// `1` once the node's actors are up and its data is loaded.
    pub const READY: &str = "ready";
    /// `1` when the node is shutting down cleanly (its data is flushed).
    pub const LEAVING: &str = "leaving";
    /// The internal protocol version the node speaks.
    pub const PROTOCOL: &str = "protocol";
}

/// Settings of [`Membership::join`].
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// Unique and stable across restarts (the ring is keyed by it).
    pub node_id: String,
    /// Nodes with another cluster id are ignored.
    pub cluster_id: String,
    /// UDP address gossip listens on.
    pub listen_addr: SocketAddr,
    /// UDP address peers gossip to.
    pub advertise_addr: SocketAddr,
    /// `host:port` gossip addresses of seed nodes.
    pub seeds: Vec<String>,
    /// Time between gossip rounds.
    pub gossip_interval: Duration,
    /// How long a failed node stays known (and keeps its ring position).
    pub dead_node_grace: Duration,
    /// The roles this node runs.
    pub roles: Vec<String>,
    /// The HTTP address peers call this node at.
    pub http_addr: String,
    /// The internal protocol version this node speaks.
    pub protocol: u32,
}

/// A node's status as seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Heartbeats arrive.
    Alive,
    /// Heartbeats stopped without a clean leave (crash, partition).
    Failed,
    /// The node announced it was leaving and stopped.
    Left,
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Stable node id.
    pub node_id: String,
    /// Incremented on every restart (start time in ms).
    pub generation: u64,
    /// Gossip address.
    pub gossip_addr: String,
    /// HTTP address.
    pub http_addr: String,
    /// Roles, sorted.
    pub roles: Vec<String>,
    /// Actors up and data loaded.
    pub ready: bool,
    /// Shutting down cleanly.
    pub leaving: bool,
    /// Alive, failed or left.
    pub state: MemberState,
    /// Internal protocol version.
    pub protocol: u32,
    /// This node.
    pub is_self: bool,
}

impl Member {
    /// A live member, not yet ready (no gossip address: not gossiped).
    pub fn alive(node_id: &str, roles: &[&str], http_addr: &str, protocol: u32) -> Self {
        let mut roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        roles.sort();
        Self {
            node_id: node_id.to_string(),
            generation: 0,
            gossip_addr: String::new(),
            http_addr: http_addr.to_string(),
            roles,
            ready: false,
            leaving: false,
            state: MemberState::Alive,
            protocol,
            is_self: false,
        }
    }

    /// Whether the member runs `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Alive, ready and not leaving: it takes new work.
    pub fn serving(&self) -> bool {
        self.state == MemberState::Alive && self.ready && !self.leaving
    }
}

/// A change in membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// A node (or a new generation of one) appeared.
    Joined(Member),
    /// A node's state or key-values changed (e.g. it became ready).
    Updated(Member),
    /// A node left cleanly.
    Left(Member),
    /// A node stopped answering.
    Failed(Member),
}

/// This node's membership in the cluster: gossiped ([`Membership::join`])
/// or, for a node without cluster configuration, a cluster of one
/// ([`Membership::standalone`]) that the rest of the node sees the same way.
pub struct Membership {
    handle: Option<ChitchatHandle>,
    members: watch::Receiver<Arc<Vec<Member>>>,
    /// Without gossip, the list is fixed and changes only by `set` (of this node).
    alone: Option<watch::Sender<Arc<Vec<Member>>>>,
    events: broadcast::Sender<MembershipEvent>,
    refresher: Option<tokio::task::JoinHandle<()>>,
    gossip_interval: Duration,
}

impl Membership {
    /// Starts gossiping on `transport` (UDP in production, chitchat's
    /// in-memory channel transport in tests). The node joins not ready.
    pub async fn join(
        cfg: MembershipConfig,
        transport: &dyn Transport,
    ) -> Result<Self, ClusterError> {
        let generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let id = ChitchatId::new(cfg.node_id.clone(), generation, cfg.advertise_addr);
        let interval = cfg.gossip_interval.max(Duration::from_millis(10));
        let config = ChitchatConfig {
            chitchat_id: id.clone(),
            cluster_id: cfg.cluster_id.clone(),
            gossip_interval: interval,
            listen_addr: cfg.listen_addr,
            seed_nodes: cfg.seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: 8.0,
                sampling_window_size: 1_000,
                max_interval: (interval * 20).max(Duration::from_secs(2)),
                initial_interval: interval * 2,
                dead_node_grace_period: cfg.dead_node_grace,
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V0,
        };
        let mut roles = cfg.roles.clone();
        roles.sort();
        let kvs = vec![
            (keys::ROLES.to_string(), roles.join(",")),
            (keys::HTTP.to_string(), cfg.http_addr.clone()),
            (keys::READY.to_string(), "0".to_string()),
            (keys::LEAVING.to_string(), "0".to_string()),
            (keys::PROTOCOL.to_string(), cfg.protocol.to_string()),
        ];
        let handle = chitchat::spawn_chitchat(config, kvs, transport)
            .await
            .map_err(|e| ClusterError::Gossip(format!("{}: {e:#}", cfg.listen_addr)))?;
        let (tx, members) = watch::channel(Arc::new(Vec::new()));
        let (events, _) = broadcast::channel(256);
        let refresher = tokio::spawn(refresh_loop(
            handle.chitchat(),
            id,
            tx,
            events.clone(),
            interval,
        ));
        tracing::info!(node_id = %cfg.node_id, generation, gossip = %cfg.advertise_addr, seeds = ?cfg.seeds, "joined gossip");
        Ok(Self {
            handle: Some(handle),
            members,
            alone: None,
            events,
            refresher: Some(refresher),
            gossip_interval: interval,
        })
    }

    /// A cluster of one: this node, alive, with `roles` (not ready until
    /// [`Membership::set_ready`]). No gossip runs; rings and peers are
    /// derived from it exactly as from a gossiped list.
    pub fn standalone(node_id: &str, roles: &[&str], http_addr: &str, protocol: u32) -> Self {
        let me = Member::alive(node_id, roles, http_addr, protocol);
        Self::fixed(vec![me], node_id)
    }

    /// A fixed member list without gossip (a cluster of one, or the nodes
    /// of an in-process test cluster, whose failures are those of the
    /// transport). `set` changes only the entry of `self_id`.
    pub fn fixed(mut members: Vec<Member>, self_id: &str) -> Self {
        for m in &mut members {
            m.is_self = m.node_id == self_id;
        }
        members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        let (tx, rx) = watch::channel(Arc::new(members));
        let (events, _) = broadcast::channel(16);
        Self {
            handle: None,
            members: rx,
            alone: Some(tx),
            events,
            refresher: None,
            gossip_interval: Duration::ZERO,
        }
    }

    /// Whether members are found by gossip (false for a cluster of one).
    pub fn gossips(&self) -> bool {
        self.handle.is_some()
    }

    /// The current members, sorted by node id.
    pub fn members(&self) -> Arc<Vec<Member>> {
        self.members.borrow().clone()
    }

    /// A receiver that sees every new member list.
    pub fn watch(&self) -> watch::Receiver<Arc<Vec<Member>>> {
        self.members.clone()
    }

    /// Membership changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<MembershipEvent> {
        self.events.subscribe()
    }

    /// Publishes one of this node's key-values.
    pub async fn set(&self, key: &str, value: &str) {
        if let Some(tx) = &self.alone {
            let mut members = tx.borrow().as_ref().clone();
            for me in members.iter_mut().filter(|m| m.is_self) {
                match key {
                    keys::READY => me.ready = value == "1",
                    keys::LEAVING => me.leaving = value == "1",
                    keys::HTTP => me.http_addr = value.to_string(),
                    _ => {}
                }
                let _ = self.events.send(MembershipEvent::Updated(me.clone()));
            }
            tx.send_replace(Arc::new(members));
            return;
        }
        let (key, value) = (key.to_string(), value.to_string());
        if let Some(h) = &self.handle {
            h.with_chitchat(move |c| c.self_node_state().set(key.clone(), value.clone()))
                .await;
        }
    }

    /// In a fixed member list (tests), sets member `node_id`'s state, as a
    /// failure detector would; gossiped membership ignores it.
    pub fn set_member_state(&self, node_id: &str, state: MemberState) {
        if let Some(tx) = &self.alone {
            let mut members = tx.borrow().as_ref().clone();
            for m in members.iter_mut().filter(|m| m.node_id == node_id) {
                m.state = state;
                let _ = self.events.send(MembershipEvent::Updated(m.clone()));
            }
            tx.send_replace(Arc::new(members));
        }
    }

    /// Marks this node ready (or not) to take work.
    pub async fn set_ready(&self, ready: bool) {
        self.set(keys::READY, if ready { "1" } else { "0" }).await;
    }

    /// Announces a clean leave and gives gossip a few rounds to spread it;
    /// gossip stops when the membership is dropped.
    pub async fn leave(&self) {
        self.set(keys::LEAVING, "1").await;
        self.set_ready(false).await;
        tokio::time::sleep(self.gossip_interval * 4).await;
    }

    /// Waits until `pred` holds for the member list, or `timeout` passes.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[Member]) -> bool,
    ) -> Result<Arc<Vec<Member>>, ClusterError> {
        let mut rx = self.members.clone();
        let res = tokio::time::timeout(timeout, rx.wait_for(|m| pred(m))).await;
        match res {
            Ok(Ok(m)) => Ok(m.clone()),
            _ => Err(ClusterError::Timeout(format!(
                "membership condition not met within {timeout:?}"
            ))),
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(r) = &self.refresher {
            r.abort();
        }
        if let Some(h) = &self.handle {
            let _ = h.initiate_shutdown();
        }
    }
}

async fn refresh_loop(
    chitchat: Arc<tokio::sync::Mutex<chitchat::Chitchat>>,
    self_id: ChitchatId,
    tx: watch::Sender<Arc<Vec<Member>>>,
    events: broadcast::Sender<MembershipEvent>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let members = {
            let c = chitchat.lock().await;
            snapshot(&c, &self_id)
        };
        let old = tx.borrow().clone();
        if *old == members {
            continue;
        }
        for ev in diff(&old, &members) {
            log_event(&ev);
            let _ = events.send(ev);
        }
        let _ = tx.send(Arc::new(members));
    }
}

fn snapshot(c: &chitchat::Chitchat, self_id: &ChitchatId) -> Vec<Member> {
    let live: HashSet<&ChitchatId> = c.live_nodes().collect();
    // One entry per node id: the newest generation.
    let mut newest: BTreeMap<&str, (&ChitchatId, &chitchat::NodeState)> = BTreeMap::new();
    for (id, state) in c.node_states() {
        match newest.get(&*id.node_id) {
            Some((cur, _)) if cur.generation_id >= id.generation_id => {}
            _ => {
                newest.insert(&id.node_id, (id, state));
            }
        }
    }
    newest
        .into_values()
        .filter_map(|(id, st)| {
            // Nodes whose key-values have not arrived yet are not members yet.
            let http = st.get(keys::HTTP)?;
            let flag = |k: &str| st.get(k) == Some("1");
            let leaving = flag(keys::LEAVING);
            let state = if live.contains(id) {
                MemberState::Alive
            } else if leaving {
                MemberState::Left
            } else {
                MemberState::Failed
            };
            let mut roles: Vec<String> = st
                .get(keys::ROLES)
                .unwrap_or("")
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect();
            roles.sort();
            Some(Member {
                node_id: id.node_id.to_string(),
                generation: id.generation_id,
                gossip_addr: id.gossip_advertise_addr.to_string(),
                http_addr: http.to_string(),
                roles,
                ready: flag(keys::READY),
                leaving,
                state,
                protocol: st
                    .get(keys::PROTOCOL)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                is_self: id == self_id,
            })
        })
        .collect()
}

fn diff(old: &[Member], new: &[Member]) -> Vec<MembershipEvent> {
    let mut out = Vec::new();
    for m in new {
        match old.iter().find(|o| o.node_id == m.node_id) {
            None => out.push(MembershipEvent::Joined(m.clone())),
            Some(o) if o.generation != m.generation => out.push(MembershipEvent::Joined(m.clone())),
            Some(o) if o != m => out.push(match m.state {
                MemberState::Failed if o.state != MemberState::Failed => {
                    MembershipEvent::Failed(m.clone())
                }
                MemberState::Left if o.state != MemberState::Left => {
                    MembershipEvent::Left(m.clone())
                }
                _ => MembershipEvent::Updated(m.clone()),
            }),
            Some(_) => {}
        }
    }
    for o in old {
        if !new.iter().any(|m| m.node_id == o.node_id) {
            // Forgotten after the dead-node grace period.
            out.push(MembershipEvent::Left(o.clone()));
        }
    }
    out
}

fn log_event(ev: &MembershipEvent) {
    match ev {
        MembershipEvent::Joined(m) => {
            tracing::info!(node = %m.node_id, generation = m.generation, roles = ?m.roles, http = %m.http_addr, "member joined")
        }
        MembershipEvent::Updated(m) => {
            tracing::info!(node = %m.node_id, ready = m.ready, state = ?m.state, "member updated")
        }
        MembershipEvent::Left(m) => tracing::info!(node = %m.node_id, "member left"),
        MembershipEvent::Failed(m) => tracing::warn!(node = %m.node_id, "member failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chitchat::transport::ChannelTransport;
    use std::time::Instant;

    fn addr(port: u16) -> SocketAddr {
        ([127, 0, 0, 1], port).into()
    }

    async fn node(t: &ChannelTransport, port: u16, seeds: &[u16]) -> Membership {
        let m = Membership::join(
            MembershipConfig {
                node_id: format!("n{port}"),
                cluster_id: "test".into(),
                listen_addr: addr(port),
                advertise_addr: addr(port),
                seeds: seeds.iter().map(|p| addr(*p).to_string()).collect(),
                gossip_interval: Duration::from_millis(50),
                dead_node_grace: Duration::from_secs(3600),
                roles: vec!["ingester".into(), "distributor".into()],
                http_addr: format!("127.0.0.1:{}", port + 1000),
                protocol: 1,
            },
            t,
        )
        .await
        .unwrap();
        m.set_ready(true).await;
        m
    }

    fn states(m: &[Member]) -> Vec<(String, MemberState, bool)> {
        m.iter()
            .map(|m| (m.node_id.clone(), m.state, m.ready))
            .collect()
    }

    #[tokio::test]
    async fn converge_detect_failure_heal_and_leave() {
        let t = ChannelTransport::default();
        let ports = [11, 12, 13, 14];
        let mut nodes = Vec::new();
        for p in ports {
            nodes.push(node(&t, p, &[11]).await);
        }
        let all_alive = |m: &[Member]| {
            m.len() == 4 && m.iter().all(|m| m.state == MemberState::Alive && m.ready)
        };
        for n in &nodes {
            let m = n
                .wait_for(Duration::from_secs(10), all_alive)
                .await
                .unwrap();
            assert_eq!(m.iter().filter(|m| m.is_self).count(), 1);
            assert_eq!(m[0].roles, vec!["distributor", "ingester"]);
            assert_eq!(m[0].http_addr, "127.0.0.1:1011");
        }
        // Partition {11,12} | {13,14}: each side sees the other fail.
        for a in [11, 12] {
            for b in [13, 14] {
                t.remove_link(addr(a), addr(b)).await;
            }
        }
        let split = Instant::now();
        let failed_other_side =
            |m: &[Member]| m.iter().filter(|m| m.state == MemberState::Failed).count() == 2;
        for n in &nodes {
            n.wait_for(Duration::from_secs(30), failed_other_side)
                .await
                .unwrap();
        }
        let detected = split.elapsed();
        for a in [11, 12] {
            for b in [13, 14] {
                t.add_link(addr(a), addr(b)).await;
            }
        }
        let healed = Instant::now();
        for n in &nodes {
            n.wait_for(Duration::from_secs(30), all_alive)
                .await
                .unwrap();
        }
        let converged = healed.elapsed();
        eprintln!(
            "partition detected in {detected:?}, healed membership converged in {converged:?}"
        );
        assert!(converged < Duration::from_secs(10), "{converged:?}");
        // A clean leave is seen as Left, not Failed.
        let leaver = nodes.pop().unwrap();
        leaver.leave().await;
        drop(leaver);
        let m = nodes[0]
            .wait_for(Duration::from_secs(30), |m| {
                m.iter()
                    .any(|m| m.node_id == "n14" && m.state == MemberState::Left)
            })
            .await
            .unwrap();
        assert_eq!(
            states(&m)[..3],
            [
                ("n11".to_string(), MemberState::Alive, true),
                ("n12".to_string(), MemberState::Alive, true),
                ("n13".to_string(), MemberState::Alive, true)
            ]
        );
    }
}
