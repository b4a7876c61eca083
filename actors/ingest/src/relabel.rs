//! Relabel rules as Prometheus defines them (`relabel_config`), which
//! Pyroscope applies at ingest: `ingestion_relabeling_rules` to every
//! series' labels, `sample_type_relabeling_rules` to decide which sample
//! types of a profile are kept.
//!
//! ```toml
//! [[limits.ingestion_relabeling_rules]]
//! source_labels = ["pod"]
//! regex = "(.*)-[a-z0-9]{5}"
//! target_label = "deployment"
//!
//! [[limits.sample_type_relabeling_rules]]
//! source_labels = ["__type__"]
//! regex = "inuse_space"
//! action = "keep"
//! ```

use std::fmt;

use ignis_storage::Labels;
use md5::{Digest, Md5};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a rule does (Prometheus's `action`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Sets `target_label` to `replacement` (with the regex's groups) when
    /// the joined source values match; an empty result deletes it.
    #[default]
    Replace,
    /// Drops the series unless the joined source values match.
    Keep,
    /// Drops the series when the joined source values match.
    Drop,
    /// Drops the series unless the joined source values equal `target_label`'s.
    KeepEqual,
    /// Drops the series when the joined source values equal `target_label`'s.
    DropEqual,
    /// Sets `target_label` to the MD5 of the joined source values modulo `modulus`.
    HashMod,
    /// Copies each label whose name matches to the name `replacement` makes of it.
    LabelMap,
    /// Deletes the labels whose names match.
    LabelDrop,
    /// Deletes the labels whose names do not match.
    LabelKeep,
    /// Sets `target_label` to the joined source values in lower case.
    Lowercase,
    /// Sets `target_label` to the joined source values in upper case.
    Uppercase,
}

/// A regular expression anchored at both ends, kept with its source text.
#[derive(Clone)]
pub struct AnchoredRegex {
    source: String,
    regex: regex::Regex,
}

impl AnchoredRegex {
    /// Compiles `source` as `^(?:source)$`.
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(1 << 20)
            .build()?;
        Ok(Self {
            source: source.to_string(),
            regex,
        })
    }
}

impl Default for AnchoredRegex {
    fn default() -> Self {
        Self {
            source: "(.*)".into(),
            regex: regex::Regex::new("^(?:(.*))$").unwrap_or_else(|_| unreachable!()),
        }
    }
}

impl PartialEq for AnchoredRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for AnchoredRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.source, f)
    }
}

impl Serialize for AnchoredRegex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for AnchoredRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Self::new(&source)
            .map_err(|e| serde::de::Error::custom(format!("invalid regex {source:?}: {e}")))
    }
}

fn default_separator() -> String {
    ";".into()
}

fn default_replacement() -> String {
    "$1".into()
}

/// One relabel rule, with Prometheus's fields and defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelabelRule {
    /// Labels whose values are joined with `separator` and matched.
    pub source_labels: Vec<String>,
    /// Joins the source values (default `;`).
    pub separator: String,
    /// Matched against the joined values, anchored (default `(.*)`).
    pub regex: AnchoredRegex,
    /// For `hashmod`.
    pub modulus: u64,
    /// The label set, or compared by `keepequal`/`dropequal`.
    pub target_label: String,
    /// The new value, with `$1`/`${name}` groups (default `$1`).
    pub replacement: String,
    /// What the rule does (default `replace`).
    pub action: Action,
}

/// [`RelabelRule`] as written, before its checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    source_labels: Vec<String>,
    #[serde(default = "default_separator")]
    separator: String,
    #[serde(default)]
    regex: Option<AnchoredRegex>,
    #[serde(default)]
    modulus: u64,
    #[serde(default)]
    target_label: String,
    #[serde(default = "default_replacement")]
    replacement: String,
    #[serde(default)]
    action: Action,
}

impl<'de> Deserialize<'de> for RelabelRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawRule::deserialize(d)?;
        let explicit_regex = raw.regex.is_some();
        let rule = RelabelRule {
            source_labels: raw.source_labels,
            separator: raw.separator,
            regex: raw.regex.unwrap_or_default(),
            modulus: raw.modulus,
            target_label: raw.target_label,
            replacement: raw.replacement,
            action: raw.action,
        };
        rule.check(explicit_regex)
            .map_err(serde::de::Error::custom)?;
        Ok(rule)
    }
}

impl RelabelRule {
    /// Prometheus's configuration checks.
    fn check(&self, explicit_regex: bool) -> Result<(), String> {
        use Action::*;
        let action = serde_json::to_string(&self.action).unwrap_or_default();
        let needs_target = matches!(
            self.action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if needs_target && self.target_label.is_empty() {
            return Err(format!("relabel action {action} requires target_label"));
        }
        if self.action == HashMod && self.modulus == 0 {
            return Err("relabel action hashmod requires a modulus above 0".into());
        }
        if matches!(self.action, KeepEqual | DropEqual) && explicit_regex {
            return Err(format!("relabel action {action} takes no regex"));
        }
        if matches!(self.action, LabelDrop | LabelKeep)
            && (!self.source_labels.is_empty() || !self.target_label.is_empty())
        {
            return Err(format!(
                "relabel action {action} takes only a regex (no source_labels or target_label)"
            ));
        }
        Ok(())
    }
}

/// Applies `rules` in order to `labels`; false when a rule drops the set.
pub fn relabel(rules: &[RelabelRule], labels: &mut Labels) -> bool {
    rules.iter().all(|rule| apply(rule, labels))
}

fn apply(rule: &RelabelRule, labels: &mut Labels) -> bool {
    let re = &rule.regex.regex;
    let value = || {
        let mut joined = String::new();
        for (i, name) in rule.source_labels.iter().enumerate() {
            if i > 0 {
                joined.push_str(&rule.separator);
            }
            joined.push_str(labels.get(name).unwrap_or(""));
        }
        joined
    };
    match rule.action {
        Action::Replace => {
            let val = value();
            let Some(caps) = re.captures(&val) else {
                return true;
            };
            let mut target = String::new();
            caps.expand(&rule.target_label, &mut target);
            if target.is_empty() {
                return true;
            }
            let mut res = String::new();
            caps.expand(&rule.replacement, &mut res);
            if res.is_empty() {
                labels.remove(&target);
            } else {
                labels.insert(target, res);
            }
        }
        Action::Keep => return re.is_match(&value()),
        Action::Drop => return !re.is_match(&value()),
        Action::KeepEqual => return labels.get(&rule.target_label).unwrap_or("") == value(),
        Action::DropEqual => return labels.get(&rule.target_label).unwrap_or("") != value(),
        Action::HashMod => {
            let hash = Md5::digest(value().as_bytes());
            let mut tail = [0u8; 8];
            tail.copy_from_slice(&hash[8..16]);
            let m = u64::from_be_bytes(tail) % rule.modulus.max(1);
            labels.insert(rule.target_label.clone(), m.to_string());
        }
        Action::LabelMap => {
            let mapped: Vec<(String, String)> = labels
                .iter()
                .filter_map(|(k, v)| {
                    re.captures(k).map(|caps| {
                        let mut name = String::new();
                        caps.expand(&rule.replacement, &mut name);
                        (name, v.to_string())
                    })
                })
                .filter(|(name, _)| !name.is_empty())
                .collect();
            for (k, v) in mapped {
                labels.insert(k, v);
            }
        }
        Action::LabelDrop => labels.retain(|k, _| !re.is_match(k)),
        Action::LabelKeep => labels.retain(|k, _| re.is_match(k)),
        Action::Lowercase => {
            let v = value().to_lowercase();
            labels.insert(rule.target_label.clone(), v);
        }
        Action::Uppercase => {
            let v = value().to_uppercase();
            labels.insert(rule.target_label.clone(), v);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml_text: &str) -> Vec<RelabelRule> {
        #[derive(Deserialize)]
        struct R {
            rules: Vec<RelabelRule>,
        }
        toml::from_str::<R>(toml_text).unwrap().rules
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn replace_with_groups_and_defaults() {
        let r = rules(
            r#"
[[rules]]
source_labels = ["pod"]
regex = "(.*)-[a-z0-9]{5}"
target_label = "deployment"

[[rules]]
source_labels = ["service_name", "deployment"]
separator = "/"
regex = "(?P<svc>[^/]+)/(.*)"
target_label = "combined"
replacement = "${svc}-x-$2"

[[rules]]
source_labels = ["nope"]
target_label = "pod"
replacement = ""
regex = ""
"#,
        );
        let mut l = labels(&[("pod", "api-7d4f9"), ("service_name", "api")]);
        assert!(relabel(&r, &mut l));
        assert_eq!(l.get("deployment"), Some("api"));
        assert_eq!(l.get("combined"), Some("api-x-api"));
        // An empty replacement deletes the target.
        assert_eq!(l.get("pod"), None);
        // The regex is anchored: a partial match changes nothing.
        let mut l = labels(&[("pod", "api-7d4f9_")]);
        assert!(relabel(&r[..1], &mut l));
        assert_eq!(l.get("deployment"), None);
    }

    #[test]
    fn keep_drop_and_equal() {
        let keep = rules(
            "[[rules]]\nsource_labels = [\"__type__\"]\nregex = \"inuse_.*\"\naction = \"keep\"\n",
        );
        assert!(relabel(&keep, &mut labels(&[("__type__", "inuse_space")])));
        assert!(!relabel(&keep, &mut labels(&[("__type__", "alloc_space")])));
        assert!(
            !relabel(&keep, &mut labels(&[])),
            "a missing label is empty"
        );
        let drop = rules(
            "[[rules]]\nsource_labels = [\"env\"]\nregex = \"dev|test\"\naction = \"drop\"\n",
        );
        assert!(!relabel(&drop, &mut labels(&[("env", "dev")])));
        assert!(relabel(&drop, &mut labels(&[("env", "prod")])));
        let eq = rules(
            "[[rules]]\nsource_labels = [\"a\"]\ntarget_label = \"b\"\naction = \"keepequal\"\n",
        );
        assert!(relabel(&eq, &mut labels(&[("a", "1"), ("b", "1")])));
        assert!(!relabel(&eq, &mut labels(&[("a", "1"), ("b", "2")])));
        let ne = rules(
            "[[rules]]\nsource_labels = [\"a\"]\ntarget_label = \"b\"\naction = \"dropequal\"\n",
        );
        assert!(!relabel(&ne, &mut labels(&[("a", "1"), ("b", "1")])));
    }

    #[test]
    fn label_actions_hashmod_and_case() {
        let r = rules(
            r#"
[[rules]]
action = "labelmap"
regex = "k8s_(.+)"
replacement = "$1"

[[rules]]
action = "labeldrop"
regex = "k8s_.*"

[[rules]]
source_labels = ["pod"]
target_label = "shard"
modulus = 4
action = "hashmod"

[[rules]]
source_labels = ["region"]
target_label = "region"
action = "uppercase"
"#,
        );
        let mut l = labels(&[("k8s_pod", "p1"), ("region", "eu"), ("x", "y")]);
        assert!(relabel(&r, &mut l));
        assert_eq!(l.get("pod"), Some("p1"));
        assert_eq!(l.get("k8s_pod"), None);
        assert_eq!(l.get("region"), Some("EU"));
        // Prometheus: big-endian u64 of md5("p1")[8..16] mod 4.
        let h = Md5::digest(b"p1");
        let want = u64::from_be_bytes(h[8..16].try_into().unwrap()) % 4;
        assert_eq!(l.get("shard"), Some(want.to_string().as_str()));
        let keep = rules("[[rules]]\naction = \"labelkeep\"\nregex = \"__name__|pod\"\n");
        assert!(relabel(&keep, &mut l));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn bad_rules_are_refused_with_reasons() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct R {
            rules: Vec<RelabelRule>,
        }
        for (text, want) in [
            (
                "[[rules]]\nsource_labels = [\"a\"]\nregex = \"(\"\ntarget_label = \"b\"\n",
                "invalid regex",
            ),
            (
                "[[rules]]\nsource_labels = [\"a\"]\n",
                "requires target_label",
            ),
            (
                "[[rules]]\nsource_labels = [\"a\"]\ntarget_label = \"b\"\naction = \"keepequal\"\nregex = \"x\"\n",
                "takes no regex",
            ),
            (
                "[[rules]]\nsource_labels = [\"a\"]\ntarget_label = \"b\"\naction = \"hashmod\"\n",
                "modulus",
            ),
            (
                "[[rules]]\naction = \"labeldrop\"\nsource_labels = [\"a\"]\n",
                "takes only a regex",
            ),
            ("[[rules]]\naction = \"explode\"\n", "unknown variant"),
            (
                "[[rules]]\nsource_labels = [\"a\"]\ntarget_label = \"b\"\nfoo = 1\n",
                "unknown field",
            ),
        ] {
            let e = toml::from_str::<R>(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
