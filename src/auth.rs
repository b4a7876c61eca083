//! Built-in authentication and authorization (off unless `auth.enabled`):
//! static credentials from the configuration, each a secret (stored as its
//! SHA-256) sent as a bearer token or as HTTP Basic's password, allowed to
//! use some tenants with some scopes (`read`, `write`, `admin`).
//!
//! Every route but `/ready` needs a credential: ingest routes `write`, the
//! node's own state (`/metrics`, `/api/v1/status/config`, `/cluster`,
//! `/scrape`) `admin`, everything else (queries, SQL, the UI) `read`; `admin`
//! holds the other two. `X-Scope-OrgID` may only name tenants the credential
//! allows (403 otherwise); without it the request is for the credential's
//! tenant. Node-to-node calls (`/internal/…`) are checked by the cluster
//! secret instead (`cluster.secret`).

use actix_web::HttpMessage;
use actix_web::dev::ServiceRequest;
use base64::Engine;
use ignis_ingest::otlp::json::decode_hex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Queries, SQL, the UI.
    Read,
    /// Ingest.
    Write,
    /// Both, and the node's own state (metrics, configuration).
    Admin,
}

/// One credential of `[[auth.credentials]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Who it is (logs and errors).
    pub name: String,
    /// The tenants it may use (`"*"`: any); the first is the tenant of its
    /// requests without `X-Scope-OrgID`.
    pub tenants: Vec<String>,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The HTTP Basic user name (empty: bearer token only).
    #[serde(default)]
    pub username: String,
    /// SHA-256 of the secret, hex (`ignis hash-secret` prints it).
    pub secret_sha256: String,
}

impl Credential {
    /// A credential for `secret` (stored as its SHA-256).
    pub fn new(
        name: &str,
        tenants: &[&str],
        scopes: &[Scope],
        username: &str,
        secret: &str,
    ) -> Self {
        Self {
            name: name.into(),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            scopes: scopes.to_vec(),
            username: username.into(),
            secret_sha256: hash_secret(secret),
        }
    }
}

/// `[auth]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Require a credential on every route but `/ready`.
    pub enabled: bool,
    /// The credentials.
    pub credentials: Vec<Credential>,
}

impl AuthConfig {
    /// Checks the credentials: valid hashes, scopes and tenant ids.
    pub fn validate(&self) -> Result<(), String> {
        if self.enabled && self.credentials.is_empty() {
            return Err("auth.enabled needs at least one [[auth.credentials]]".into());
        }
        for c in &self.credentials {
            let bytes = decode_hex(&c.secret_sha256);
            if bytes.as_ref().is_none_or(|b| b.len() != 32) {
                return Err(format!(
                    "auth.credentials {:?}: secret_sha256 must be 64 hex digits (ignis hash-secret prints it)",
                    c.name
                ));
            }
            if c.scopes.is_empty() || c.tenants.is_empty() {
                return Err(format!(
                    "auth.credentials {:?}: needs at least one scope and one tenant",
                    c.name
                ));
            }
            for t in c.tenants.iter().filter(|t| *t != "*") {
                ignis_actors::validate_tenant_id(t)
                    .map_err(|e| format!("auth.credentials {:?}: {e}", c.name))?;
            }
        }
        Ok(())
    }
}

/// The credential a request was authenticated with.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Its name.
    pub name: String,
    /// The tenants it may use (`"*"`: any).
    pub tenants: Vec<String>,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

impl Authenticated {
    /// True when it holds `scope` (`admin` holds all).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|&s| s == scope || s == Scope::Admin)
    }

    /// Refuses a tenant it may not use (403).
    pub fn check_tenant(&self, tenant: &str) -> Result<(), ApiError> {
        if self.tenants.iter().any(|t| t == "*" || t == tenant) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "credential {:?} may not use tenant {tenant:?}",
            self.name
        )))
    }

    /// The tenant of a request without `X-Scope-OrgID`: its first tenant,
    /// or `default` when it may use any.
    pub fn own_tenant(&self, default: &str) -> String {
        match self.tenants.first() {
            Some(t) if t != "*" => t.clone(),
            _ => default.to_string(),
        }
    }
}

/// SHA-256 of `secret`, hex: what `secret_sha256` holds.
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The scope a path needs (`None`: open).
pub fn scope_of(path: &str) -> Option<Scope> {
    const WRITE: [&str; 7] = [
        "/push.v1.PusherService/Push",
        "/ingest",
        "/pyroscope/ingest",
        "/v1development/profiles",
        crate::http::otlp::EXPORT_PATH,
        "/settings.v1.SettingsService/Set",
        "/settings.v1.SettingsService/Delete",
    ];
    const ADMIN: [&str; 4] = ["/metrics", "/api/v1/status/config", "/cluster", "/scrape"];
    // The web UI's page and code hold no data (its API calls are checked),
    // so it loads and asks for a credential itself.
    if path == "/ready" || path == "/" || path.starts_with("/ui/") || path.starts_with("/internal/")
    {
        None
    } else if WRITE.contains(&path) {
        Some(Scope::Write)
    } else if ADMIN.contains(&path) {
        Some(Scope::Admin)
    } else {
        Some(Scope::Read)
    }
}

/// Finds the credential an `Authorization` header value names: `Bearer
/// <secret>`, or `Basic` with a credential's user name and secret.
pub fn authenticate(config: &AuthConfig, header: Option<&str>) -> Result<Authenticated, ApiError> {
    let header = header.ok_or_else(|| {
        ApiError::unauthenticated(
            "authentication required: send a bearer token or HTTP Basic credentials",
        )
        .with_challenge()
    })?;
    let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
    let (user, secret) = match scheme.to_ascii_lowercase().as_str() {
        "bearer" => (None, value.trim().to_string()),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::unauthenticated("malformed Basic credentials").with_challenge()
                })?;
            let (u, p) = decoded.split_once(':').unwrap_or((&decoded, ""));
            (Some(u.to_string()), p.to_string())
        }
        _ => {
            return Err(ApiError::unauthenticated(
                "unsupported Authorization scheme: use Bearer or Basic",
            )
            .with_challenge());
        }
    };
    let digest = Sha256::digest(secret.as_bytes());
    let found = config.credentials.iter().find(|c| {
        let user_ok = match &user {
            Some(u) => !c.username.is_empty() && c.username == *u,
            None => true,
        };
        let secret_ok = decode_hex(&c.secret_sha256)
            .is_some_and(|h| bool::from(h.as_slice().ct_eq(digest.as_slice())));
        user_ok && secret_ok
    });
    match found {
        Some(c) => Ok(Authenticated {
            name: c.name.clone(),
            tenants: c.tenants.clone(),
            scopes: c.scopes.clone(),
        }),
        None => Err(ApiError::unauthenticated("invalid credentials").with_challenge()),
    }
}

/// The credential an `Authorization` header value names, if it holds
/// `scope` (401 without a valid one, 403 without the scope).
pub fn authorize(
    config: &AuthConfig,
    header: Option<&str>,
    scope: Scope,
) -> Result<Authenticated, ApiError> {
    let who = authenticate(config, header)?;
    if !who.has(scope) {
        return Err(ApiError::forbidden(format!(
            "credential {:?} lacks the {scope:?} scope this route needs",
            who.name
        )));
    }
    Ok(who)
}

/// Authenticates and authorizes `req` for its path; the credential is kept
/// in the request's extensions for the tenant checks of the handlers.
pub fn check(config: &AuthConfig, req: &ServiceRequest) -> Result<(), ApiError> {
    let Some(scope) = scope_of(req.path()) else {
        return Ok(());
    };
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let who = authorize(config, header, scope).map_err(|mut e| {
        // The web UI asks for credentials in its own form: no browser
        // dialog for its calls (`X-Requested-With`, as XHR libraries send).
        if req.headers().contains_key("x-requested-with") {
            e.challenge = false;
        }
        e
    })?;
    req.extensions_mut().insert(who);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            enabled: true,
            credentials: vec![
                Credential::new("agent", &["a"], &[Scope::Write], "agent", "s3cret"),
                Credential::new("grafana", &["*"], &[Scope::Read], "", "tok"),
            ],
        }
    }

    #[test]
    fn bearer_and_basic_find_their_credential() {
        let c = config();
        assert!(c.validate().is_ok());
        let basic = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert_eq!(
            authenticate(&c, Some(&basic("agent", "s3cret")))
                .unwrap()
                .name,
            "agent"
        );
        assert_eq!(
            authenticate(&c, Some("Bearer tok")).unwrap().name,
            "grafana"
        );
        assert_eq!(
            authenticate(&c, Some("bearer s3cret")).unwrap().name,
            "agent"
        );
        for bad in [
            basic("agent", "wrong"),
            basic("other", "s3cret"),
            basic("", "tok"),
            "Bearer nope".to_string(),
            "Digest x".to_string(),
            "Basic !!".to_string(),
        ] {
            let e = authenticate(&c, Some(&bad)).unwrap_err();
            assert_eq!(e.status.as_u16(), 401, "{bad}");
        }
        assert_eq!(authenticate(&c, None).unwrap_err().status.as_u16(), 401);
    }

    #[test]
    fn scopes_and_tenants() {
        let c = config();
        let agent = authenticate(&c, Some("Bearer s3cret")).unwrap();
        assert!(agent.has(Scope::Write) && !agent.has(Scope::Read));
        assert!(agent.check_tenant("a").is_ok());
        assert_eq!(agent.check_tenant("b").unwrap_err().status.as_u16(), 403);
        assert_eq!(agent.own_tenant("anonymous"), "a");
        let grafana = authenticate(&c, Some("Bearer tok")).unwrap();
        assert!(grafana.check_tenant("anything").is_ok());
        assert_eq!(grafana.own_tenant("anonymous"), "anonymous");
        assert_eq!(scope_of("/ready"), None);
        assert_eq!(scope_of("/ingest"), Some(Scope::Write));
        assert_eq!(scope_of("/metrics"), Some(Scope::Admin));
        assert_eq!(scope_of("/"), None);
        assert_eq!(scope_of("/ui/app.js"), None);
        assert_eq!(
            scope_of("/querier.v1.QuerierService/SelectSeries"),
            Some(Scope::Read)
        );
    }

    #[test]
    fn bad_credentials_are_refused_at_start() {
        let mut c = config();
        c.credentials[0].secret_sha256 = "abc".into();
        assert!(c.validate().unwrap_err().contains("64 hex digits"));
        let mut c = config();
        c.credentials[1].tenants = vec!["a/b".into()];
        assert!(c.validate().is_err());
        let c = AuthConfig {
            enabled: true,
            credentials: vec![],
        };
        assert!(c.validate().is_err());
    }
}
