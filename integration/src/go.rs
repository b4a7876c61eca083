//! The Go scrape target of the tests: `../shared/fixtures/go/pprofdemo.go`,
//! built with Debian's `golang-go` (installed by `integration/scripts/setup-go.sh`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::fixtures::fixtures_dir;

/// A running `pprofdemo`, killed on drop.
pub struct PprofDemo {
    /// Base URL, e.g. `http://127.0.0.1:6060`.
    pub url: String,
    child: Child,
}

/// Builds `pprofdemo` under `work_dir` (Go's build cache lives there too,
/// so a kept directory, such as the test's target tmp dir, makes rebuilds quick).
pub fn build_pprofdemo(work_dir: &Path) -> Result<PathBuf> {
    let dir = work_dir.join("go");
    std::fs::create_dir_all(&dir)?;
    let bin = dir.join("pprofdemo");
    let src = fixtures_dir().join("go/pprofdemo.go");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOCACHE", dir.join("cache"))
        .env("GOPATH", dir.join("path"))
        .env("HOME", &dir)
        .status()
        .context(
            "running `go` (Debian's golang-go; `bash integration/scripts/setup-go.sh` installs it)",
        )?;
    ensure!(
        status.success(),
        "go build of {} failed: {status}",
        src.display()
    );
    Ok(bin)
}

impl PprofDemo {
    /// Builds and starts the program on a free loopback port and waits until it serves.
    pub async fn start(work_dir: &Path) -> Result<Self> {
        let bin = build_pprofdemo(work_dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(bin)
            .args(["-addr", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let demo = Self {
            url: format!("http://{addr}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let probe = format!("{}/debug/pprof/", demo.url);
        loop {
            if reqwest::get(&probe)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(demo);
            }
            if Instant::now() > deadline {
                bail!("pprofdemo did not serve {probe} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PprofDemo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
