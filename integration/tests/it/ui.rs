//! The web UI in a real headless Chromium (Debian's chromium and
//! chromium-driver, driven by selenium): `integration/scripts/ui_test.py`
//! loads the fixtures into fresh nodes and checks every view against their
//! ground truth. Screenshots land in `<target>/tmp/ui-screenshots`.
//! Run alone with `cargo test -p ignis-integration --test it ui`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use ignis_integration::fixtures::fixtures_dir;
use ignis_integration::node::TestNode;

fn scripts() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

fn browser_installed() -> bool {
    Path::new("/usr/bin/chromium").exists()
        && Path::new("/usr/bin/chromedriver").exists()
        && Command::new("python3")
            .args(["-c", "import selenium"])
            .output()
            .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn web_ui_in_headless_chromium() -> Result<()> {
    if !browser_installed() {
        // What .ci/run does first; here so the test also runs on its own.
        let out = Command::new("bash")
            .arg(scripts().join("setup-ui-test.sh"))
            .output()
            .context("running setup-ui-test.sh")?;
        ensure!(
            out.status.success(),
            "setup-ui-test.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let node = TestNode::start(|_| {})?;
    let multitenant = TestNode::start(|c| c.tenancy.require_tenant_header = true)?;
    // Authentication on: a token for one tenant (the UI signs in with it).
    let token = "ui-token-7f3a";
    let authed = TestNode::start(|c| {
        c.auth.enabled = true;
        c.auth.credentials = vec![ignis::auth::Credential::new(
            "ui",
            &["ui-auth"],
            &[ignis::auth::Scope::Read, ignis::auth::Scope::Write],
            "",
            token,
        )];
    })?;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots)?;
    let bench = shots.join("bench.json");
    let script = scripts().join("ui_test.py");
    let args = vec![
        script.display().to_string(),
        "--url".into(),
        node.url.clone(),
        "--multitenant-url".into(),
        multitenant.url.clone(),
        "--auth-url".into(),
        authed.url.clone(),
        "--auth-token".into(),
        token.into(),
        "--fixtures".into(),
        fixtures_dir().display().to_string(),
        "--screenshots".into(),
        shots.display().to_string(),
        "--bench-out".into(),
        bench.display().to_string(),
        "--docs".into(),
        String::new(),
    ];
    let out =
        tokio::task::spawn_blocking(move || Command::new("python3").args(&args).output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    ensure!(
        out.status.success() && failures.is_empty(),
        "UI test failed ({}):\n{}\n--- stderr ---\n{}",
        out.status,
        if failures.is_empty() {
            stdout.lines().rev().take(30).collect::<Vec<_>>().join("\n")
        } else {
            failures.join("\n")
        },
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let passed = stdout.lines().filter(|l| l.starts_with("PASS")).count();
    ensure!(passed >= 50, "only {passed} UI checks ran");
    for view in ["flamegraph", "diff"] {
        ensure!(
            std::fs::read_dir(&shots)?
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().contains(view)),
            "no {view} screenshot in {}",
            shots.display()
        );
    }
    ensure!(bench.exists(), "no render timings written");
    Ok(())
}
