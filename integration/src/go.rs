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

/// A Go toolchain that has `go build -pgo` (Go 1.21 or newer): Debian
/// bookworm-backports' Go 1.22 (`integration/scripts/setup-go.sh` installs
/// it), or `go` on the PATH when it is new enough.
pub fn pgo_go() -> Result<PathBuf> {
    let backports = PathBuf::from("/usr/lib/go-1.22/bin/go");
    if backports.is_file() {
        return Ok(backports);
    }
    let out = Command::new("go").arg("version").output();
    if let Ok(out) = out {
        let v = String::from_utf8_lossy(&out.stdout).to_string();
        // "go version go1.NN.x linux/amd64"
        let minor = v
            .split_whitespace()
            .nth(2)
            .and_then(|g| g.strip_prefix("go1."))
            .and_then(|r| r.split('.').next())
            .and_then(|m| m.parse::<u32>().ok());
        if minor.is_some_and(|m| m >= 21) {
            return Ok(PathBuf::from("go"));
        }
    }
    bail!(
        "no Go >= 1.21 for `go build -pgo`: run `bash integration/scripts/setup-go.sh` \
         (installs Go 1.22 from Debian bookworm-backports)"
    )
}

/// Builds `pprofdemo` with the [`pgo_go`] toolchain under `work_dir/<name>`,
/// as a module of its own, offline, with `go build -pgo=<profile>` when
/// `pgo` is given; returns the binary. Fails with the toolchain's own
/// message when it refuses the profile.
pub fn build_pprofdemo_module(work_dir: &Path, name: &str, pgo: Option<&Path>) -> Result<PathBuf> {
    let go = pgo_go()?;
    let dir = work_dir.join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(fixtures_dir().join("go/pprofdemo.go"), dir.join("main.go"))?;
    std::fs::write(dir.join("go.mod"), "module pprofdemo\n\ngo 1.21\n")?;
    let bin = dir.join("pprofdemo");
    let mut cmd = Command::new(&go);
    cmd.arg("build");
    if let Some(profile) = pgo {
        cmd.arg(format!("-pgo={}", profile.display()));
    }
    let out = cmd
        .arg("-o")
        .arg(&bin)
        .arg(".")
        .current_dir(&dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOCACHE", work_dir.join("go-cache"))
        .env("GOPATH", work_dir.join("go-path"))
        .env("HOME", &dir)
        .output()
        .context("running the Go toolchain")?;
    ensure!(
        out.status.success(),
        "go build {} failed: {}{}",
        pgo.map(|p| format!("-pgo={}", p.display()))
            .unwrap_or_default(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(bin)
}

/// `go version -m <bin>`: the build settings the binary records (a PGO
/// build lists `-pgo=<path>`).
pub fn build_info(bin: &Path) -> Result<String> {
    let out = Command::new(pgo_go()?)
        .args(["version", "-m"])
        .arg(bin)
        .output()?;
    ensure!(out.status.success(), "go version -m failed");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl PprofDemo {
    /// Builds and starts the program on a free loopback port and waits until it serves.
    pub async fn start(work_dir: &Path) -> Result<Self> {
        Self::spawn(&build_pprofdemo(work_dir)?).await
    }

    /// Starts the program `bin` (a `pprofdemo` build) on a free loopback
    /// port and waits until it serves.
    pub async fn spawn(bin: &Path) -> Result<Self> {
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
