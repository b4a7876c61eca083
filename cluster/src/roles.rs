//! The roles (`-target`) a node runs: one representation, parsed from the
//! configuration, advertised in membership and read when the node starts
//! its actors.

use std::collections::BTreeSet;

/// Receives pushes and replicates them to ingesters.
pub const DISTRIBUTOR: &str = "distributor";
/// Holds recent profiles (WAL and head) and cuts them into blocks.
pub const INGESTER: &str = "ingester";
/// Merges blocks (not yet implemented).
pub const COMPACTOR: &str = "compactor";
/// Receives queries.
pub const QUERY_FRONTEND: &str = "query-frontend";
/// Queues queries (not yet implemented).
pub const QUERY_SCHEDULER: &str = "query-scheduler";
/// Runs queries.
pub const QUERIER: &str = "querier";
/// Serves blocks from the bucket.
pub const STORE_GATEWAY: &str = "store-gateway";

/// Every role, as Pyroscope names its components.
pub const ALL_ROLES: [&str; 7] = [
    DISTRIBUTOR,
    INGESTER,
    COMPACTOR,
    QUERY_FRONTEND,
    QUERY_SCHEDULER,
    QUERIER,
    STORE_GATEWAY,
];

/// A validated set of roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(BTreeSet<&'static str>);

impl Roles {
    /// Parses `all` or a comma-separated list of role names.
    pub fn parse(target: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for part in target.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                set.extend(ALL_ROLES);
                continue;
            }
            match ALL_ROLES.iter().find(|r| **r == part) {
                Some(r) => {
                    set.insert(*r);
                }
                None => {
                    return Err(format!(
                        "unknown role {part:?}; expected all or some of {}",
                        ALL_ROLES.join(", ")
                    ));
                }
            }
        }
        if set.is_empty() {
            return Err("no role given".into());
        }
        Ok(Self(set))
    }

    /// Whether the node runs `role`.
    pub fn has(&self, role: &str) -> bool {
        self.0.contains(role)
    }

    /// Every role (a standalone node).
    pub fn all() -> Self {
        Self(ALL_ROLES.into_iter().collect())
    }

    /// Whether the node serves writes.
    pub fn serves_writes(&self) -> bool {
        self.has(DISTRIBUTOR)
    }

    /// Whether the node serves reads.
    pub fn serves_reads(&self) -> bool {
        self.has(QUERY_FRONTEND) || self.has(QUERIER)
    }

    /// Role names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_and_lists() {
        assert_eq!(Roles::parse("all").unwrap().names().len(), 7);
        let r = Roles::parse("distributor, querier").unwrap();
        assert!(r.serves_writes() && r.serves_reads() && !r.has("ingester"));
        assert!(Roles::parse("nope").unwrap_err().contains("nope"));
        assert!(Roles::parse("").is_err());
    }
}
