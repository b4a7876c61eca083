//! The legacy `name` parameter: `app.name{key=value,…}`.

use ignis_storage::{Labels, names};

use super::error::{IngestError, Reason};

/// A parsed `name`: the application name and its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppName {
    /// Everything before `{`, trimmed.
    pub app: String,
    /// The `{…}` labels (keys starting with `__` other than `__session_id__` dropped).
    pub labels: Labels,
}

fn bad(reason: String) -> IngestError {
    IngestError::new(Reason::InvalidLabels, format!("name: {reason}"))
}

fn check_chars(kind: &str, s: &str, allowed: impl Fn(char) -> bool) -> Result<(), IngestError> {
    if let Some(c) = s.chars().find(|&c| !allowed(c)) {
        return Err(bad(format!(
            "invalid {kind}: {s}: character is not allowed: {c:?}"
        )));
    }
    Ok(())
}

/// Parses the `name` grammar (see reference/pyroscope-api.md §3.2).
pub fn parse_name(name: &str) -> Result<AppName, IngestError> {
    let (app, rest) = match name.find('{') {
        Some(i) => (&name[..i], Some(&name[i + 1..])),
        None => (name, None),
    };
    let app = app.trim();
    if app.is_empty() {
        return Err(IngestError::new(
            Reason::MissingLabels,
            "name: service name is required",
        ));
    }
    check_chars("service name", app, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')
    })?;
    let mut labels = Labels::new();
    let mut app = app.to_string();
    if let Some(rest) = rest {
        let Some((body, _)) = rest.split_once('}') else {
            return Err(bad("unclosed '{': the labels must end with '}'".into()));
        };
        for pair in body.split(',') {
            if pair.trim().is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() {
                return Err(bad("label name is required".into()));
            }
            if k == names::METRIC_NAME {
                app = v.to_string();
                continue;
            }
            check_chars("label name", k, |c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '.')
            })?;
            if k.starts_with("__") && k != names::SESSION_ID {
                continue;
            }
            labels.insert(k, v);
        }
    }
    Ok(AppName { app, labels })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_app_and_labels() {
        let n = parse_name("my.app.cpu{env=prod, region = us ,__x=1,__session_id__=s}").unwrap();
        assert_eq!(n.app, "my.app.cpu");
        assert_eq!(
            n.labels.iter().collect::<Vec<_>>(),
            vec![("__session_id__", "s"), ("env", "prod"), ("region", "us")]
        );
        assert_eq!(parse_name("bare").unwrap().labels.len(), 0);
    }

    #[test]
    fn rejects_bad_names() {
        assert!(
            parse_name("")
                .unwrap_err()
                .message
                .contains("service name is required")
        );
        assert!(
            parse_name("a{foo-bar=1}")
                .unwrap_err()
                .message
                .contains("'-'")
        );
        assert!(parse_name("a b").is_err());
        assert!(parse_name("a{=1}").is_err());
        assert!(
            parse_name("app{k=v")
                .unwrap_err()
                .message
                .contains("unclosed")
        );
    }
}
