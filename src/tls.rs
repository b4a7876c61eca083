//! TLS on the HTTP listener: the certificate and key come from PEM files
//! and are re-read when the files change, so a rotated certificate is
//! served without a restart (each new handshake gets the newest).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ignis_actors::file_stamp::{FileStamp, file_stamp};

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("TLS certificate {cert} / key {key}: {reason}")]
pub struct TlsError {
    cert: String,
    key: String,
    reason: String,
}

/// Reads the certificate chain and key.
fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let err = |reason: String| TlsError {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if chain.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| err(e.to_string()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| err(e.to_string()))
}

/// The stamps of the certificate and key files.
fn stamp(paths: &[&Path]) -> Vec<FileStamp> {
    paths.iter().map(|p| file_stamp(p)).collect()
}

/// Serves the newest certificate of a pair of files.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Vec<FileStamp>)>,
}

impl ReloadingCert {
    /// Loads the files (an error stops the node at start).
    pub fn open(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let stamps = stamp(&[cert, key]);
        let loaded = load(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new((loaded, stamps)),
        }))
    }

    /// Re-reads the files if they changed; a bad pair is logged and the
    /// certificate in use stays. Returns true when a new one was loaded.
    pub fn reload_if_changed(&self) -> bool {
        let stamps = stamp(&[&self.cert, &self.key]);
        if self.current.read().1 == stamps {
            return false;
        }
        match load(&self.cert, &self.key) {
            Ok(loaded) => {
                *self.current.write() = (loaded, stamps);
                tracing::info!(cert = %self.cert.display(), "reloaded the TLS certificate");
                true
            }
            Err(e) => {
                // Keep the stamps old: retried at the next check (a
                // rotation may write the key after the certificate).
                tracing::warn!(error = %e, "TLS certificate not reloaded; the current one stays");
                false
            }
        }
    }

    /// A rustls server configuration serving this certificate (HTTP/2 and
    /// HTTP/1.1 offered by ALPN).
    pub fn server_config(self: &Arc<Self>) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| {
                // The aws-lc-rs provider supports the defaults; unreachable.
                rustls::ServerConfig::builder()
            })
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }

    /// Checks the files every `every` for as long as the node runs.
    pub fn spawn_reloader(
        self: &Arc<Self>,
        every: Duration,
    ) -> actix_web::rt::task::JoinHandle<()> {
        let this = self.clone();
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                this.reload_if_changed();
            }
        })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `cn` made by the openssl command.
    fn self_signed(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let ok = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "2", "-subj", &format!("/CN={cn}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "the openssl command is needed to make a test certificate"
        );
        (cert, key)
    }

    #[test]
    fn loads_and_reloads_when_the_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "one");
        let r = ReloadingCert::open(&cert, &key).unwrap();
        let first = r.current.read().0.cert[0].clone();
        assert!(!r.reload_if_changed(), "unchanged files are not re-read");
        std::thread::sleep(Duration::from_millis(20));
        self_signed(dir.path(), "two");
        assert!(r.reload_if_changed());
        assert_ne!(r.current.read().0.cert[0], first);
        // A broken key keeps the certificate in use.
        std::fs::write(&key, "not a key").unwrap();
        assert!(!r.reload_if_changed());
        assert!(ReloadingCert::open(&cert, &key).is_err());
    }
}
