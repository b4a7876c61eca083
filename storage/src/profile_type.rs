//! Profile type ids: `<name>:<sample_type>:<sample_unit>:<period_type>:<period_unit>`.

use std::fmt;

use crate::proto::types::v1 as types;

/// A parsed profile type id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileType {
    /// Series `__name__`, e.g. `process_cpu`.
    pub name: String,
    /// The pprof sample type, e.g. `cpu`.
    pub sample_type: String,
    /// The pprof sample unit, e.g. `nanoseconds`.
    pub sample_unit: String,
    /// The pprof period type (may be empty).
    pub period_type: String,
    /// The pprof period unit (may be empty).
    pub period_unit: String,
}

/// A profile type id that does not have 5 or 6 parts.
#[derive(Debug, thiserror::Error)]
#[error(
    "profile-type selection must be of the form <name>:<sample-type>:<sample-unit>:<period-type>:<period-unit>(:delta), got({parts}): {id:?}"
)]
pub struct ProfileTypeError {
    /// Number of `:`-separated parts found.
    pub parts: usize,
    /// The offending id.
    pub id: String,
}

impl ProfileType {
    /// Parses a 5- or 6-part id (the 6th part is ignored).
    pub fn parse(id: &str) -> Result<Self, ProfileTypeError> {
        let parts: Vec<&str> = id.split(':').collect();
        if parts.len() != 5 && parts.len() != 6 {
            return Err(ProfileTypeError {
                parts: parts.len(),
                id: id.to_string(),
            });
        }
        Ok(Self {
            name: parts[0].to_string(),
            sample_type: parts[1].to_string(),
            sample_unit: parts[2].to_string(),
            period_type: parts[3].to_string(),
            period_unit: parts[4].to_string(),
        })
    }

    /// The canonical 5-part id.
    pub fn id(&self) -> String {
        self.to_string()
    }

    /// The proto form used by `ProfileTypes`.
    pub fn to_proto(&self) -> types::ProfileType {
        types::ProfileType {
            id: self.id(),
            name: self.name.clone(),
            sample_type: self.sample_type.clone(),
            sample_unit: self.sample_unit.clone(),
            period_type: self.period_type.clone(),
            period_unit: self.period_unit.clone(),
        }
    }
}

impl fmt::Display for ProfileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}:{}",
            self.name, self.sample_type, self.sample_unit, self.period_type, self.period_unit
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let t = ProfileType::parse("memory:alloc_space:bytes:space:bytes").unwrap();
        assert_eq!(t.sample_type, "alloc_space");
        assert_eq!(t.id(), "memory:alloc_space:bytes:space:bytes");
        assert!(ProfileType::parse("memory:samples:bytes::").is_ok());
        assert!(ProfileType::parse("a:b:c:d:e:delta").is_ok());
        let e = ProfileType::parse("cpu").unwrap_err();
        assert!(e.to_string().contains("got(1)"));
    }
}
