//! A real S3-compatible server for tests: moto's standalone server from PyPI,
//! installed on first use and bound to 127.0.0.1.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// A running moto server, killed on drop.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Child,
}

fn moto_installed() -> bool {
    Command::new("python3")
        .args(["-c", "import moto.server, flask"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl S3Server {
    /// Installs moto (`pip install "moto[server]"`) if needed and starts it.
    pub async fn start() -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Self::start_on(port).await
    }

    /// Starts moto on `port` (e.g. again after [`stop`](Self::stop)).
    pub async fn start_on(port: u16) -> Result<Self> {
        if !moto_installed() {
            let ok = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "moto[server]"])
                .status()
                .context("running pip")?
                .success();
            ensure!(
                ok && moto_installed(),
                "could not install moto[server] from PyPI"
            );
        }
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting moto.server")?;
        let server = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if client.get(&server.endpoint).send().await.is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("moto did not start on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Stops the server (its buckets are lost: moto keeps them in memory).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Creates a bucket.
    pub async fn create_bucket(&self, name: &str) -> Result<()> {
        let r = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await?;
        ensure!(
            r.status().is_success(),
            "creating bucket {name}: {}",
            r.status()
        );
        Ok(())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
