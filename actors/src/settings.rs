//! Tenant settings (`settings.v1.SettingsService`): named values a tenant's
//! users keep (Grafana's Profiles Drilldown keeps its own there), stored in
//! the bucket as `<tenant>/settings.json`, so every node of a cluster reads
//! and writes the same ones and they outlive any node.
//!
//! A write is a read-modify-write of that file, serialized on each node;
//! a setting sent with a `modifiedAt` older than the stored one's is
//! refused (last writer wins, by the client's clock), as Pyroscope does.

use ignis_storage::block::{BlockError, BlockStore};
use serde::{Deserialize, Serialize};

/// The file of a tenant's settings, under its bucket directory.
const FILE: &str = "settings.json";
/// Longest setting name, bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest setting value, bytes.
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Most settings one tenant keeps.
pub const MAX_SETTINGS: usize = 1000;

/// One setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// Its name, unique per tenant.
    pub name: String,
    /// Its value (opaque to Ignis).
    pub value: String,
    /// When it was last set, ms since the epoch.
    pub modified_at_ms: i64,
}

/// Why a settings call failed.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The request is not a valid setting.
    #[error("{0}")]
    Invalid(String),
    /// A newer value of the setting is stored.
    #[error(
        "setting {name:?} was modified at {stored_ms} ms, after this update's {sent_ms} ms; read it again and retry"
    )]
    Stale {
        /// The setting.
        name: String,
        /// Its stored `modifiedAt`.
        stored_ms: i64,
        /// The update's `modifiedAt`.
        sent_ms: i64,
    },
    /// The bucket failed, or its settings file is damaged.
    #[error("tenant settings: {0}")]
    Store(#[from] BlockError),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SettingsFile {
    settings: Vec<Setting>,
}

/// Reads and writes tenants' settings in the bucket.
pub struct SettingsStore {
    store: BlockStore,
    /// Serializes this node's read-modify-writes.
    write: tokio::sync::Mutex<()>,
}

impl SettingsStore {
    /// Settings kept in `store`.
    pub fn new(store: BlockStore) -> Self {
        Self {
            store,
            write: tokio::sync::Mutex::new(()),
        }
    }

    /// Every setting of `tenant`, sorted by name.
    pub async fn get(&self, tenant: &str) -> Result<Vec<Setting>, SettingsError> {
        Ok(self.read(tenant).await?.settings)
    }

    /// Sets one setting (`modifiedAt` 0: now) and returns it as stored.
    pub async fn set(
        &self,
        tenant: &str,
        mut setting: Setting,
        now_ms: i64,
    ) -> Result<Setting, SettingsError> {
        validate(&setting)?;
        if setting.modified_at_ms <= 0 {
            setting.modified_at_ms = now_ms;
        }
        let _guard = self.write.lock().await;
        let mut file = self.read(tenant).await?;
        match file
            .settings
            .binary_search_by(|s| s.name.cmp(&setting.name))
        {
            Ok(i) => {
                let stored = &mut file.settings[i];
                if stored.modified_at_ms > setting.modified_at_ms {
                    return Err(SettingsError::Stale {
                        name: setting.name,
                        stored_ms: stored.modified_at_ms,
                        sent_ms: setting.modified_at_ms,
                    });
                }
                *stored = setting.clone();
            }
            Err(i) => {
                if file.settings.len() >= MAX_SETTINGS {
                    return Err(SettingsError::Invalid(format!(
                        "a tenant keeps at most {MAX_SETTINGS} settings; delete one first"
                    )));
                }
                file.settings.insert(i, setting.clone());
            }
        }
        self.write(tenant, &file).await?;
        Ok(setting)
    }

    /// Deletes a setting (nothing to delete is not an error).
    pub async fn delete(&self, tenant: &str, name: &str) -> Result<(), SettingsError> {
        if name.is_empty() {
            return Err(SettingsError::Invalid("setting name is empty".into()));
        }
        let _guard = self.write.lock().await;
        let mut file = self.read(tenant).await?;
        let before = file.settings.len();
        file.settings.retain(|s| s.name != name);
        if file.settings.len() != before {
            self.write(tenant, &file).await?;
        }
        Ok(())
    }

    async fn read(&self, tenant: &str) -> Result<SettingsFile, SettingsError> {
        let Some(bytes) = self.store.read_tenant_file(tenant, FILE).await? else {
            return Ok(SettingsFile::default());
        };
        let mut file: SettingsFile =
            serde_json::from_slice(&bytes).map_err(|e| SettingsError::Store(e.into()))?;
        file.settings.sort_by(|a, b| a.name.cmp(&b.name));
        file.settings.dedup_by(|a, b| a.name == b.name);
        Ok(file)
    }

    async fn write(&self, tenant: &str, file: &SettingsFile) -> Result<(), SettingsError> {
        let bytes = serde_json::to_vec_pretty(file).map_err(|e| SettingsError::Store(e.into()))?;
        self.store.write_tenant_file(tenant, FILE, bytes).await?;
        Ok(())
    }
}

fn validate(s: &Setting) -> Result<(), SettingsError> {
    if s.name.is_empty() {
        return Err(SettingsError::Invalid("setting name is empty".into()));
    }
    if s.name.len() > MAX_NAME_BYTES {
        return Err(SettingsError::Invalid(format!(
            "setting name is {} bytes long; the limit is {MAX_NAME_BYTES}",
            s.name.len()
        )));
    }
    if s.value.len() > MAX_VALUE_BYTES {
        return Err(SettingsError::Invalid(format!(
            "setting {:?} is {} bytes long; the limit is {MAX_VALUE_BYTES}",
            s.name,
            s.value.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(name: &str, value: &str, at: i64) -> Setting {
        Setting {
            name: name.into(),
            value: value.into(),
            modified_at_ms: at,
        }
    }

    #[tokio::test]
    async fn settings_are_kept_per_tenant_and_older_updates_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ignis_storage::block::ObjectStoreConfig::default();
        let store = BlockStore::open(&cfg, dir.path()).unwrap();
        let s = SettingsStore::new(store);
        assert!(s.get("t").await.unwrap().is_empty());
        // modifiedAt 0 means now.
        let a = s.set("t", setting("b", "1", 0), 500).await.unwrap();
        assert_eq!(a.modified_at_ms, 500);
        s.set("t", setting("a", "x", 10), 600).await.unwrap();
        s.set("u", setting("a", "other tenant", 10), 600)
            .await
            .unwrap();
        // An older update is refused and changes nothing; a newer one wins.
        let err = s.set("t", setting("b", "2", 400), 700).await.unwrap_err();
        assert!(matches!(err, SettingsError::Stale { .. }), "{err}");
        s.set("t", setting("b", "3", 800), 900).await.unwrap();
        assert_eq!(
            s.get("t").await.unwrap(),
            vec![setting("a", "x", 10), setting("b", "3", 800)]
        );
        // Another store over the same bucket (another node) reads the same.
        let again = SettingsStore::new(BlockStore::open(&cfg, dir.path()).unwrap());
        assert_eq!(again.get("t").await.unwrap().len(), 2);
        assert_eq!(again.get("u").await.unwrap()[0].value, "other tenant");
        s.delete("t", "a").await.unwrap();
        s.delete("t", "missing").await.unwrap();
        assert_eq!(again.get("t").await.unwrap(), vec![setting("b", "3", 800)]);
        // Bad settings are refused with a reason.
        for bad in [
            setting("", "v", 1),
            setting(&"n".repeat(MAX_NAME_BYTES + 1), "v", 1),
            setting("n", &"v".repeat(MAX_VALUE_BYTES + 1), 1),
        ] {
            assert!(matches!(
                s.set("t", bad, 1).await,
                Err(SettingsError::Invalid(_))
            ));
        }
    }
}
