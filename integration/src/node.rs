//! Nodes under test: in-process through `ignis::run_node`, or the real binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ignis::{Config, RunningNode};
use tokio::sync::oneshot;

/// An in-process node, stopped on drop.
pub struct TestNode {
    /// Base URL, e.g. `http://127.0.0.1:1234`.
    pub url: String,
    /// Bound address.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    node: Option<RunningNode>,
    _data: Option<tempfile::TempDir>,
}

impl TestNode {
    /// Starts a node on a free loopback port with `tweak` applied to the defaults.
    pub fn start(tweak: impl FnOnce(&mut Config)) -> Result<Self> {
        let data = tempfile::tempdir()?;
        let mut node = Self::start_in(data.path(), tweak)?;
        node._data = Some(data);
        Ok(node)
    }

    /// Starts a node whose data lives in `data_dir` (kept by the caller).
    pub fn start_in(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> Result<Self> {
        let mut config = Config::default();
        config.server.http_listen_address = "127.0.0.1:0".into();
        config.server.http_workers = 2;
        config.server.actor_threads = 2;
        config.storage.data_dir = data_dir.to_path_buf();
        tweak(&mut config);
        let (tx, rx) = oneshot::channel();
        let node = ignis::run_node(config, async move {
            let _ = rx.await;
        })?;
        let addr = node.http_addr;
        Ok(Self {
            url: format!("http://{addr}"),
            addr,
            stop: Some(tx),
            node: Some(node),
            _data: None,
        })
    }

    /// Stops the node and waits for it.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(node) = self.node.take() {
            node.wait()?;
        }
        Ok(())
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The `ignis` binary next to the test executable (`target/<profile>/ignis`),
/// rebuilt once per test process so it is never stale; or `$IGNIS_BIN`.
pub fn ignis_binary() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Ok(p) = std::env::var("IGNIS_BIN") {
        return Ok(PathBuf::from(p));
    }
    BUILT
        .get_or_init(|| build_binary().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/it-HASH → target/<profile>/ignis
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .context("test executable location")?;
    let bin = profile_dir.join("ignis");
    // `cargo test` builds only test targets: build the binary with the same
    // cargo and target directory (a no-op when it is up to date).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        // The same feature set as `cargo test --workspace`, so nothing is
        // rebuilt just for the binary: --workspace, and an example so that
        // dev-dependencies (the Rust SDK turns on features of shared crates
        // such as libc) take part in feature resolution as they do for tests.
        .args([
            "build",
            "--workspace",
            "--bin",
            "ignis",
            "--example",
            "rust_sdk_app",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .context("running cargo build --bin ignis")?;
    if !status.success() || !bin.exists() {
        bail!(
            "`cargo build --bin ignis` did not produce {}",
            bin.display()
        );
    }
    Ok(bin)
}

/// The real binary running as a child process, killed (SIGKILL) on drop.
pub struct ChildNode {
    /// Base URL.
    pub url: String,
    child: Child,
    _data: Option<tempfile::TempDir>,
}

impl ChildNode {
    /// Starts `ignis server` with a fresh data directory on a free port and
    /// waits until `/ready` answers.
    pub async fn start(extra_args: &[&str]) -> Result<Self> {
        let data = tempfile::tempdir()?;
        let mut node = Self::start_in(data.path(), extra_args).await?;
        node._data = Some(data);
        Ok(node)
    }

    /// Starts `ignis server` on `data_dir` (kept by the caller, e.g. across a restart).
    pub async fn start_in(data_dir: &Path, extra_args: &[&str]) -> Result<Self> {
        Self::start_with(data_dir, extra_args, &[]).await
    }

    /// Starts `ignis server` on `data_dir` with extra arguments and
    /// `IGNIS_…` environment variables.
    pub async fn start_with(
        data_dir: &Path,
        extra_args: &[&str],
        env: &[(String, String)],
    ) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(ignis_binary()?)
            .arg("server")
            .arg(format!("-server.http-listen-address={addr}"))
            .args(extra_args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("IGNIS_STORAGE__DATA_DIR", data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the ignis binary")?;
        let mut node = Self {
            url: format!("http://{addr}"),
            child,
            _data: None,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{}/ready", node.url)).send().await
                && r.status().is_success()
            {
                return Ok(node);
            }
            if let Some(status) = node.child.try_wait()? {
                bail!("ignis exited before becoming ready: {status}");
            }
            if Instant::now() > deadline {
                bail!("ignis did not become ready on {addr}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the process with SIGTERM (a clean shutdown) and waits for it.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        ensure!(status.success(), "kill -TERM failed");
        Ok(self.child.wait()?)
    }

    /// The most resident memory the process has had (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmHWM in /proc/<pid>/status")?;
        Ok(kb * 1024)
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
