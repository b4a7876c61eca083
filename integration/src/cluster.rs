//! Clusters of real `ignis` processes on 127.0.0.1, joined by gossip.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::node::ChildNode;

/// One node's fixed identity: kept across restarts.
pub struct NodeSpec {
    /// `cluster.node_id`.
    pub node_id: String,
    /// `-target`.
    pub target: String,
    /// UDP gossip port.
    pub gossip_port: u16,
    data: tempfile::TempDir,
}

/// A running cluster; nodes are killed on drop.
pub struct Cluster {
    /// Node identities, by index.
    pub specs: Vec<NodeSpec>,
    /// Running processes, by index (`None` once killed).
    pub nodes: Vec<Option<ChildNode>>,
    seed: String,
    env: Vec<(String, String)>,
}

fn free_udp_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Cluster {
    /// Starts one node per target (the first is every node's seed) and
    /// waits until every node sees all of them alive and ready.
    pub async fn start(targets: &[&str]) -> Result<Self> {
        Self::start_with_env(targets, &[]).await
    }

    /// Like [`Cluster::start`], with extra `IGNIS_…` variables for every node.
    pub async fn start_with_env(targets: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        let mut specs = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            specs.push(NodeSpec {
                node_id: format!("node-{i}"),
                target: t.to_string(),
                gossip_port: free_udp_port()?,
                data: tempfile::tempdir()?,
            });
        }
        let seed = format!("127.0.0.1:{}", specs[0].gossip_port);
        let mut cluster = Self {
            nodes: (0..specs.len()).map(|_| None).collect(),
            specs,
            seed,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        for i in 0..cluster.specs.len() {
            cluster.start_node(i).await?;
        }
        cluster.wait_converged(targets.len()).await?;
        Ok(cluster)
    }

    /// Starts (or restarts) node `i` on its data directory.
    pub async fn start_node(&mut self, i: usize) -> Result<()> {
        let s = &self.specs[i];
        let mut env = vec![
            ("IGNIS_CLUSTER__ENABLED".to_string(), "true".to_string()),
            ("IGNIS_CLUSTER__NODE_ID".into(), s.node_id.clone()),
            (
                "IGNIS_CLUSTER__GOSSIP_LISTEN_ADDRESS".into(),
                format!("127.0.0.1:{}", s.gossip_port),
            ),
            (
                "IGNIS_CLUSTER__SEEDS".into(),
                format!("[\"{}\"]", self.seed),
            ),
            ("IGNIS_CLUSTER__GOSSIP_INTERVAL_MS".into(), "100".into()),
            ("IGNIS_CLUSTER__RPC_TIMEOUT_MS".into(), "3000".into()),
            ("IGNIS_TARGET".into(), s.target.clone()),
            ("IGNIS_SERVER__HTTP_WORKERS".into(), "2".into()),
            ("IGNIS_SERVER__ACTOR_THREADS".into(), "1".into()),
            ("IGNIS_LOG__LEVEL".into(), "warn".into()),
        ];
        env.extend(self.env.iter().cloned());
        let node = ChildNode::start_with(s.data.path(), &[], &env)
            .await
            .with_context(|| format!("starting {}", s.node_id))?;
        self.nodes[i] = Some(node);
        Ok(())
    }

    /// Stops node `i` cleanly (SIGTERM) and waits for it to exit.
    pub fn terminate(&mut self, i: usize) -> Result<()> {
        if let Some(mut n) = self.nodes[i].take() {
            let status = n.terminate()?;
            anyhow::ensure!(status.success(), "node {i} exited with {status}");
        }
        Ok(())
    }

    /// Kills node `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        if let Some(mut n) = self.nodes[i].take() {
            n.kill()?;
        }
        Ok(())
    }

    /// The data directory of node `i`.
    pub fn data_dir(&self, i: usize) -> &std::path::Path {
        self.specs[i].data.path()
    }

    /// The base URL of running node `i`.
    pub fn url(&self, i: usize) -> Result<String> {
        self.nodes[i]
            .as_ref()
            .map(|n| n.url.clone())
            .with_context(|| format!("node {i} is not running"))
    }

    /// `/cluster` of node `i` as JSON.
    pub async fn status(&self, i: usize) -> Result<Value> {
        let r = reqwest::get(format!("{}/cluster?format=json", self.url(i)?)).await?;
        Ok(r.json().await?)
    }

    /// Waits until every running node sees `alive` members alive and ready.
    pub async fn wait_converged(&self, alive: usize) -> Result<Duration> {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(60);
        loop {
            let mut ok = true;
            for i in 0..self.nodes.len() {
                if self.nodes[i].is_none() {
                    continue;
                }
                let s = self.status(i).await?;
                let n = s["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|m| m["state"] == "alive" && m["ready"] == true)
                    .count();
                ok &= n == alive;
            }
            if ok {
                return Ok(started.elapsed());
            }
            if Instant::now() > deadline {
                bail!("cluster did not converge to {alive} ready members within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
