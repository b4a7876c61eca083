//! The `ignis` binary.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ignis::Config;

// The ingest path allocates many small, short-lived objects on several
// threads at once; glibc's malloc spent about a fifth of the node's CPU on
// it under load (see BENCHMARKS.md), mimalloc a fraction of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Ignis: a Pyroscope-compatible continuous profiling server.
#[derive(Parser, Debug)]
#[command(name = "ignis", version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node (the default when no command is given).
    Server(ServerArgs),
    /// Print the effective configuration as TOML and exit.
    Config(ServerArgs),
    /// Replay a fixture against a node and report throughput and latency.
    Loadgen(ignis::loadgen::LoadgenArgs),
    /// Print the SHA-256 of a secret (read from standard input) for
    /// `auth.credentials.secret_sha256`.
    HashSecret,
}

#[derive(clap::Args, Debug, Default)]
struct ServerArgs {
    /// TOML configuration file (see config.toml); embedded defaults without it.
    #[arg(long, short = 'c', env = "IGNIS_CONFIG_FILE")]
    config: Option<PathBuf>,
    /// Roles to run: `all` or a comma-separated list (distributor, ingester,
    /// compactor, query-frontend, query-scheduler, querier, store-gateway).
    #[arg(long)]
    target: Option<String>,
    /// HTTP listen address (overrides server.http_listen_address).
    #[arg(long)]
    listen: Option<String>,
}

/// Accepts Pyroscope's single-dash spellings (`-target=all`, `-config.file=x`).
fn normalize_args(args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|a| {
        if let Some(rest) = a
            .strip_prefix('-')
            .filter(|r| !r.starts_with('-') && r.len() > 1)
        {
            let (name, value) = rest
                .split_once('=')
                .map_or((rest, None), |(n, v)| (n, Some(v)));
            let name = match name {
                "config.file" => "config",
                "server.http-listen-address" => "listen",
                other => other,
            };
            if name.len() > 1 {
                return match value {
                    Some(v) => format!("--{name}={v}"),
                    None => format!("--{name}"),
                };
            }
        }
        a
    })
    .collect()
}

fn load(args: &ServerArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(t) = &args.target {
        config.target = t.clone();
    }
    if let Some(l) = &args.listen {
        config.server.http_listen_address = l.clone();
    }
    config.validate()?;
    Ok(config)
}

/// Turns transparent huge pages off for this process (unless
/// `IGNIS_TRANSPARENT_HUGE_PAGES=1`): mimalloc asks for them on its
/// regions, and then every first touch of a 2 MiB page (a new thread's
/// heap, memory purged and reused) zero-fills all of it. That was over half
/// of a cold long-range query's CPU (BENCHMARKS.md); the TLB savings are
/// small for a heap of many short-lived objects.
fn no_transparent_huge_pages() {
    if std::env::var("IGNIS_TRANSPARENT_HUGE_PAGES").is_ok_and(|v| v == "1") {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and touches
    // no memory of ours; it only sets a flag of the process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> anyhow::Result<()> {
    no_transparent_huge_pages();
    let cli = Cli::parse_from(normalize_args(std::env::args()));
    match cli.command.unwrap_or(Command::Server(cli.server)) {
        Command::Config(args) => {
            let config = load(&args)?;
            print!(
                "{}",
                toml::to_string(&config).context("rendering the configuration")?
            );
            Ok(())
        }
        Command::HashSecret => {
            let mut secret = String::new();
            std::io::stdin()
                .read_line(&mut secret)
                .context("reading the secret from standard input")?;
            let secret = secret.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(!secret.is_empty(), "no secret on standard input");
            println!("{}", ignis::auth::hash_secret(secret));
            Ok(())
        }
        Command::Loadgen(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            if args.backfill_hours > 0.0 {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_nanos() as i64;
                let summary = rt.block_on(ignis::loadgen::backfill(&args, now))?;
                if args.json {
                    println!("{}", serde_json::to_string(&summary)?);
                } else {
                    ignis::loadgen::print_backfill(&summary);
                }
                return Ok(());
            }
            let summary = rt.block_on(ignis::loadgen::run(&args))?;
            if args.json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                ignis::loadgen::print(&summary);
            }
            Ok(())
        }
        Command::Server(args) => {
            let config = load(&args)?;
            let node_name = if config.cluster.node_id.is_empty() {
                config.server.http_listen_address.clone()
            } else {
                config.cluster.node_id.clone()
            };
            // Dropped after the node stopped: flushes the spans still queued.
            let _telemetry = ignis::telemetry::init(&config.log, &node_name)?;
            let shutdown = async {
                let ctrl_c = tokio::signal::ctrl_c();
                #[cfg(unix)]
                {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .expect("installing the SIGTERM handler");
                    tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
                }
                #[cfg(not(unix))]
                let _ = ctrl_c.await;
                tracing::info!("shutting down");
            };
            let node = ignis::run_node(config, shutdown)?;
            node.wait()?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyroscope_flag_spellings() {
        let args = normalize_args(
            [
                "ignis",
                "server",
                "-target=all",
                "-config.file=x.toml",
                "-c",
                "y",
            ]
            .map(String::from)
            .into_iter(),
        );
        assert_eq!(
            args,
            vec![
                "ignis",
                "server",
                "--target=all",
                "--config=x.toml",
                "-c",
                "y"
            ]
        );
    }
}
