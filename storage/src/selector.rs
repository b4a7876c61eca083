//! Prometheus-style label selectors: `name{a="b", c!="d", e=~"re", f!~"re"}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use regex_automata::meta::{Config, Regex};

use crate::{Labels, names};

/// The most memory one selector's regexes may hold together, compiled.
/// One regex may take all of it: a Unicode class repeated (`\w{200}`)
/// compiles to 10 MB, and 100 of them in 1.6 KB of selector took 2.6 GB.
pub const MAX_SELECTOR_REGEX_BYTES: usize = 16 << 20;

/// The most memory the regexes of every label selector alive in the
/// process may hold together, compiled: a request may carry many selectors
/// (`LabelNames` matchers), and many requests run at once.
pub const MAX_LIVE_REGEX_BYTES: usize = 256 << 20;

/// The lazy DFA cache of one regex, per thread matching with it.
const REGEX_CACHE_BYTES: usize = 256 << 10;

/// Bytes held by the compiled regexes alive in the process.
static LIVE_REGEX_BYTES: AtomicUsize = AtomicUsize::new(0);

/// A compiled regex, counted in `live` until its last clone drops.
#[derive(Debug)]
struct Compiled {
    re: Regex,
    bytes: usize,
    live: &'static AtomicUsize,
}

impl Drop for Compiled {
    fn drop(&mut self) {
        self.live.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Compiles the anchored `value` within `budget` (taking from it) and
/// within `cap` bytes alive in `live` altogether.
fn compile(
    value: &str,
    budget: &mut usize,
    live: &'static AtomicUsize,
    cap: usize,
) -> Result<Compiled, String> {
    let over = || {
        format!(
            "invalid regex {}: the selector's regexes would take more than {MAX_SELECTOR_REGEX_BYTES} bytes compiled",
            shown_regex(value)
        )
    };
    let config = Config::new()
        .nfa_size_limit(Some(*budget))
        .hybrid_cache_capacity(REGEX_CACHE_BYTES);
    let re = Regex::builder()
        .configure(config)
        .build(&format!("^(?:{value})$"))
        .map_err(|e| match e.size_limit() {
            Some(_) => over(),
            None => format!("invalid regex {}: {e}", shown_regex(value)),
        })?;
    let bytes = re.memory_usage();
    if bytes > *budget {
        return Err(over());
    }
    if live
        .fetch_add(bytes, Ordering::Relaxed)
        .saturating_add(bytes)
        > cap
    {
        live.fetch_sub(bytes, Ordering::Relaxed);
        return Err(format!(
            "invalid regex {}: the regexes of the queries running now hold more than {cap} bytes compiled; try again, or use fewer or simpler regexes",
            shown_regex(value)
        ));
    }
    *budget -= bytes;
    Ok(Compiled { re, bytes, live })
}

/// A selector that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse label selector {selector:?}: {reason}")]
pub struct SelectorError {
    /// The selector text.
    pub selector: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A matcher operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

/// One label matcher. A missing label matches as the empty string.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// Value or regex source.
    pub value: String,
    regex: Option<Arc<Compiled>>,
}

impl Matcher {
    /// Builds a matcher; regexes are fully anchored.
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Self, String> {
        let mut budget = MAX_SELECTOR_REGEX_BYTES;
        Self::new_within(name, op, value, &mut budget)
    }

    /// [`Matcher::new`] whose regex takes at most `budget` bytes, and takes
    /// them from it.
    pub fn new_within(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
        budget: &mut usize,
    ) -> Result<Self, String> {
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(Arc::new(compile(
                &value,
                budget,
                &LIVE_REGEX_BYTES,
                MAX_LIVE_REGEX_BYTES,
            )?)),
            _ => None,
        };
        Ok(Self {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// An equality matcher.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// Whether `value` (empty when the label is absent) satisfies the matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.re.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.re.is_match(value)),
        }
    }

    /// Whether a label set satisfies the matcher.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name).unwrap_or(""))
    }
}

/// A regex as an error shows it: its first 100 characters.
fn shown_regex(value: &str) -> String {
    match value.char_indices().nth(100) {
        Some((at, _)) => format!("{:?}…", &value[..at]),
        None => format!("{value:?}"),
    }
}

/// True when every matcher matches.
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// Parses a selector. A leading metric name becomes a `__name__` matcher.
pub fn parse_selector(input: &str) -> Result<Vec<Matcher>, SelectorError> {
    let err = |reason: String| SelectorError {
        selector: input.to_string(),
        reason,
    };
    let mut p = Parser {
        s: input.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    let mut regex_budget = MAX_SELECTOR_REGEX_BYTES;
    p.skip_ws();
    if p.i >= p.s.len() {
        return Err(err("empty selector".into()));
    }
    if p.peek() != Some(b'{') {
        let name = p.ident(true).map_err(err)?;
        out.push(Matcher::equal(names::METRIC_NAME, name));
        p.skip_ws();
        if p.i >= p.s.len() {
            return Ok(out);
        }
    }
    p.expect(b'{').map_err(err)?;
    loop {
        p.skip_ws();
        if p.peek() == Some(b'}') {
            p.i += 1;
            break;
        }
        let name = if matches!(p.peek(), Some(b'"' | b'\'' | b'`')) {
            p.string().map_err(err)?
        } else {
            p.ident(false).map_err(err)?
        };
        p.skip_ws();
        let op = p.op().map_err(err)?;
        p.skip_ws();
        let value = p.string().map_err(err)?;
        out.push(Matcher::new_within(name, op, value, &mut regex_budget).map_err(err)?);
        p.skip_ws();
        match p.peek() {
            Some(b',') => p.i += 1,
            Some(b'}') => {
                p.i += 1;
                break;
            }
            _ => return Err(err(format!("expected ',' or '}}' at offset {}", p.i))),
        }
    }
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(err(format!("unexpected trailing input at offset {}", p.i)));
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at offset {}", c as char, self.i))
        }
    }

    fn ident(&mut self, metric: bool) -> Result<String, String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || (metric && c == b':');
            if !ok {
                break;
            }
            self.i += 1;
        }
        if start == self.i || self.s[start].is_ascii_digit() {
            return Err(format!("expected a label name at offset {start}"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn op(&mut self) -> Result<MatchOp, String> {
        let two = self.s.get(self.i..self.i + 2);
        let op = match two {
            Some(b"=~") => MatchOp::Regex,
            Some(b"!=") => MatchOp::NotEqual,
            Some(b"!~") => MatchOp::NotRegex,
            _ if self.peek() == Some(b'=') => {
                self.i += 1;
                return Ok(MatchOp::Equal);
            }
            _ => {
                return Err(format!(
                    "expected one of =, !=, =~, !~ at offset {}",
                    self.i
                ));
            }
        };
        self.i += 2;
        Ok(op)
    }

    fn string(&mut self) -> Result<String, String> {
        let Some(q @ (b'"' | b'\'' | b'`')) = self.peek() else {
            return Err(format!("expected a quoted string at offset {}", self.i));
        };
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            if c == q {
                break;
            }
            if c == b'\\' && q != b'`' {
                let Some(e) = self.peek() else {
                    return Err("unterminated escape".into());
                };
                self.i += 1;
                out.push(match e {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    other => other,
                });
                continue;
            }
            out.push(c);
        }
        String::from_utf8(out).map_err(|_| "string is not valid UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_operators() {
        let m = parse_selector(r#"{a="b", c!='d', e=~"x.*", f!~`y|z`, "g.h"="i\"j"}"#).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[4].name, "g.h");
        assert_eq!(m[4].value, "i\"j");
        let l = Labels::from_pairs([("a", "b"), ("e", "xyz"), ("f", "q")]);
        assert!(matches_all(&m[..4], &l));
        assert!(!m[3].matches(&Labels::from_pairs([("f", "y")])));
        // Regexes are anchored.
        assert!(!parse_selector(r#"{e=~"x"}"#).unwrap()[0].matches(&l));
    }

    #[test]
    fn metric_name_with_colons_and_empty() {
        let m =
            parse_selector(r#"process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="app"}"#)
                .unwrap();
        assert_eq!(m[0].name, "__name__");
        assert_eq!(m[0].value, "process_cpu:cpu:nanoseconds:cpu:nanoseconds");
        assert!(parse_selector("{}").unwrap().is_empty());
        assert!(parse_selector("").is_err());
        assert!(parse_selector("{a=b}").is_err());
        assert!(parse_selector(r#"{a="b""#).is_err());
        assert!(parse_selector(r#"{a=~"("}"#).is_err());
    }

    #[test]
    fn a_selectors_regexes_share_one_memory_budget() {
        // One large regex fits; a hundred do not (2.6 GB before).
        let one = r"{l0=~`\w{200}`}";
        assert!(parse_selector(one).is_ok());
        let many: Vec<String> = (0..100).map(|i| format!(r"l{i}=~`\w{{200}}`")).collect();
        let e = parse_selector(&format!("{{{}}}", many.join(","))).expect_err("over budget");
        assert!(e.reason.contains("bytes compiled"), "{e}");
        // Small regexes barely count: a thousand of them pass.
        let small: Vec<String> = (0..1000).map(|i| format!(r#"l{i}=~"a.*b|c""#)).collect();
        assert_eq!(
            parse_selector(&format!("{{{}}}", small.join(","))).map(|m| m.len()),
            Ok(1000)
        );
    }

    #[test]
    fn the_regexes_alive_in_the_process_share_one_cap() {
        static LIVE: AtomicUsize = AtomicUsize::new(0);
        let one = |budget: &mut usize| compile(r"\w{20}", budget, &LIVE, 3 << 20);
        let mut budget = MAX_SELECTOR_REGEX_BYTES;
        let a = one(&mut budget).expect("fits");
        let b = one(&mut budget).expect("fits");
        assert_eq!(LIVE.load(Ordering::Relaxed), a.bytes + b.bytes);
        assert_eq!(budget, MAX_SELECTOR_REGEX_BYTES - a.bytes - b.bytes);
        // About 1 MB each: the cap of 3 MiB stops them.
        let held: Vec<Compiled> = std::iter::from_fn(|| one(&mut budget).ok())
            .take(8)
            .collect();
        assert!(held.len() < 2, "{} more fitted", held.len());
        let e = one(&mut { MAX_SELECTOR_REGEX_BYTES }).expect_err("over the cap");
        assert!(e.contains("queries running now"), "{e}");
        drop((a, b, held));
        assert_eq!(
            LIVE.load(Ordering::Relaxed),
            0,
            "dropped regexes give their bytes back"
        );
        assert!(one(&mut { MAX_SELECTOR_REGEX_BYTES }).is_ok());
    }
}
