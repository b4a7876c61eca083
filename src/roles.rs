//! The roles (`-target`) a node runs.

use std::collections::BTreeSet;

/// Every role, as Pyroscope names its components.
pub const ALL_ROLES: [&str; 7] = [
    "distributor",
    "ingester",
    "compactor",
    "query-frontend",
    "query-scheduler",
    "querier",
    "store-gateway",
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

    /// Whether the node serves writes.
    pub fn serves_writes(&self) -> bool {
        self.has("distributor")
    }

    /// Whether the node serves reads.
    pub fn serves_reads(&self) -> bool {
        self.has("query-frontend") || self.has("querier")
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
