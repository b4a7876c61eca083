//! A consistent-hash ring: series fingerprints map to an ordered list of
//! distinct members (the replicas that store the series).
//!
//! Tokens are derived from member ids by hashing, so every node that knows the
//! same membership (from gossip) computes the same ring without exchanging tokens.

use xxhash_rust::xxh3::xxh3_64;

/// Tokens per member by default: enough for an even spread over few nodes.
pub const DEFAULT_TOKENS_PER_MEMBER: usize = 128;

/// A ring over a set of members.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    members: Vec<String>,
    /// `(token, member index)`, sorted by token.
    tokens: Vec<(u64, usize)>,
}

impl Ring {
    /// Builds a ring; duplicate member ids count once.
    pub fn new<I, S>(members: I, tokens_per_member: usize) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut members: Vec<String> = members.into_iter().map(Into::into).collect();
        members.sort();
        members.dedup();
        let mut tokens = Vec::with_capacity(members.len() * tokens_per_member);
        for (i, m) in members.iter().enumerate() {
            for t in 0..tokens_per_member {
                tokens.push((xxh3_64(format!("{m}/{t}").as_bytes()), i));
            }
        }
        tokens.sort_unstable();
        Self { members, tokens }
    }

    /// The members, sorted.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// Up to `n` distinct members for `key`, walking clockwise from its position.
    pub fn replicas(&self, key: u64, n: usize) -> Vec<&str> {
        let want = n.min(self.members.len());
        let mut out: Vec<&str> = Vec::with_capacity(want);
        if want == 0 {
            return out;
        }
        let start = self.tokens.partition_point(|&(t, _)| t < key);
        for i in 0..self.tokens.len() {
            let (_, m) = self.tokens[(start + i) % self.tokens.len()];
            let id = self.members[m].as_str();
            if !out.contains(&id) {
                out.push(id);
                if out.len() == want {
                    break;
                }
            }
        }
        out
    }

    /// Each member's share of the key space as primary owner, sorted by member.
    pub fn ownership(&self) -> Vec<(String, f64)> {
        let mut share = vec![0u128; self.members.len()];
        let n = self.tokens.len();
        for i in 0..n {
            let (t, m) = self.tokens[i];
            // Keys in (previous token, t] belong to this token's member.
            let prev = if i == 0 {
                self.tokens[n - 1].0
            } else {
                self.tokens[i - 1].0
            };
            share[m] += u128::from(t.wrapping_sub(prev));
        }
        if n == 1 {
            share[self.tokens[0].1] = 1u128 << 64;
        }
        let total = 2f64.powi(64);
        self.members
            .iter()
            .zip(share)
            .map(|(m, s)| (m.clone(), s as f64 / total))
            .collect()
    }

    /// Writes needed for a quorum among `replication_factor` replicas.
    pub fn quorum(replication_factor: usize) -> usize {
        replication_factor / 2 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn keys() -> impl Iterator<Item = u64> {
        (0..20_000u64).map(|i| xxh3_64(&i.to_le_bytes()))
    }

    #[test]
    fn replicas_are_distinct_and_deterministic() {
        let a = Ring::new(["n1", "n2", "n3"], DEFAULT_TOKENS_PER_MEMBER);
        let b = Ring::new(["n3", "n1", "n2", "n1"], DEFAULT_TOKENS_PER_MEMBER);
        for k in keys().take(500) {
            let r = a.replicas(k, 3);
            assert_eq!(r.len(), 3);
            assert!(r[0] != r[1] && r[1] != r[2] && r[0] != r[2]);
            assert_eq!(r, b.replicas(k, 3));
        }
        assert_eq!(a.replicas(1, 5).len(), 3);
        assert!(Ring::new(Vec::<String>::new(), 8).replicas(1, 3).is_empty());
    }

    #[test]
    fn spread_is_even_and_moves_little_on_join() {
        let ring = Ring::new(["n1", "n2", "n3", "n4"], DEFAULT_TOKENS_PER_MEMBER);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for k in keys() {
            *counts.entry(ring.replicas(k, 1)[0]).or_default() += 1;
        }
        for (m, c) in &counts {
            assert!((3_500..6_500).contains(c), "{m} owns {c} of 20000 keys");
        }
        let bigger = Ring::new(["n1", "n2", "n3", "n4", "n5"], DEFAULT_TOKENS_PER_MEMBER);
        let moved = keys()
            .filter(|&k| ring.replicas(k, 1)[0] != bigger.replicas(k, 1)[0])
            .count();
        // Ideal is 1/5 of the keys; allow some slack.
        assert!(moved < 20_000 * 3 / 10, "{moved} keys moved");
        assert!(keys().all(|k| {
            let owner = bigger.replicas(k, 1)[0];
            owner == "n5" || owner == ring.replicas(k, 1)[0]
        }));
    }

    #[test]
    fn ownership_sums_to_one() {
        let ring = Ring::new(["a", "b", "c"], DEFAULT_TOKENS_PER_MEMBER);
        let own = ring.ownership();
        let sum: f64 = own.iter().map(|(_, s)| s).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{sum}");
        assert!(own.iter().all(|(_, s)| (0.2..0.5).contains(s)), "{own:?}");
    }

    #[test]
    fn quorum_sizes() {
        assert_eq!(Ring::quorum(1), 1);
        assert_eq!(Ring::quorum(3), 2);
        assert_eq!(Ring::quorum(5), 3);
    }
}
