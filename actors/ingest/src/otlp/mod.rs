//! OTLP profiles (`opentelemetry.proto.collector.profiles.v1development`):
//! an `ExportProfilesServiceRequest` into split profiles.
//!
//! Each OTLP `Profile` becomes a pprof with the request's dictionary resolved
//! ([`convert`]), one per distinct `service.name` sample attribute, and is
//! then validated and split exactly like a Push sample. Series labels follow
//! Pyroscope's OTLP receiver: `__otel__="true"`, `__name__` from the profile
//! type, the string resource attributes then the string scope attributes
//! (first one of a key wins, dotted names kept), and `service_name` from the
//! sample's or the resource's `service.name` (else `unknown_service`, or
//! `unknown_service:<process.executable.name>`).

pub mod convert;
pub mod json;

#[cfg(test)]
mod tests;

use ignis_storage::proto::opentelemetry::proto::collector::profiles::v1development::{
    ExportProfilesServiceRequest, ExportProfilesServiceResponse,
};
use ignis_storage::proto::opentelemetry::proto::common::v1::KeyValue;
use ignis_storage::{Labels, ProfileId, SplitProfile, names};
use prost::Message;

use super::error::IngestError;
use super::limits::Limits;
use super::split::{SplitInput, split_proto};
use convert::{Dictionary, SERVICE_NAME_ATTRIBUTE, convert_profile};

/// The label Pyroscope sets on every OTLP series.
pub const OTEL_LABEL: &str = "__otel__";
/// The resource attribute naming the executable, for the service fallback.
const EXECUTABLE_NAME_ATTRIBUTE: &str = "process.executable.name";
/// `service_name` when the resource names no service.
const UNKNOWN_SERVICE: &str = "unknown_service";

/// How an OTLP request or response is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Binary protobuf (`application/x-protobuf`, `application/protobuf`, gRPC).
    Protobuf,
    /// OTLP/JSON (`application/json`).
    Json,
}

impl Encoding {
    /// The encoding of an HTTP `Content-Type` (parameters ignored), or `None`
    /// when OTLP/HTTP does not define it.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Self::Protobuf),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }

    /// The `Content-Type` of a response in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// Decodes a request body.
pub fn decode_request(
    body: &[u8],
    encoding: Encoding,
) -> Result<ExportProfilesServiceRequest, IngestError> {
    match encoding {
        Encoding::Protobuf => ExportProfilesServiceRequest::decode(body)
            .map_err(|e| IngestError::invalid(format!("invalid protobuf message: {e}"))),
        Encoding::Json => json::decode_request(body),
    }
}

/// Encodes a response.
pub fn encode_response(
    resp: &ExportProfilesServiceResponse,
    encoding: Encoding,
) -> Result<Vec<u8>, IngestError> {
    match encoding {
        Encoding::Protobuf => Ok(resp.encode_to_vec()),
        Encoding::Json => serde_json::to_vec(resp)
            .map_err(|e| IngestError::invalid(format!("cannot encode the response: {e}"))),
    }
}

/// Converts, validates and splits every profile of the request. Fails on the
/// first bad one: an export is stored whole or not at all.
pub fn decode_otlp(
    req: &ExportProfilesServiceRequest,
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<SplitProfile>, IngestError> {
    if req.resource_profiles.is_empty() {
        return Err(IngestError::invalid("missing resource profiles"));
    }
    let Some(dictionary) = &req.dictionary else {
        return Err(IngestError::invalid("missing profile metadata dictionary"));
    };
    let dict = Dictionary::new(dictionary);
    dict.validate()?;
    let mut out = Vec::new();
    for (r, rp) in req.resource_profiles.iter().enumerate() {
        let resource_attrs = rp
            .resource
            .as_ref()
            .map_or(&[][..], |r| r.attributes.as_slice());
        let service = resource_service_name(resource_attrs, dict)?;
        for (s, sp) in rp.scope_profiles.iter().enumerate() {
            let scope_attrs = sp
                .scope
                .as_ref()
                .map_or(&[][..], |s| s.attributes.as_slice());
            for (p, profile) in sp.profiles.iter().enumerate() {
                let at = |e: IngestError| IngestError {
                    message: format!(
                        "resource_profiles[{r}].scope_profiles[{s}].profiles[{p}]: {}",
                        e.message
                    ),
                    ..e
                };
                for converted in convert_profile(profile, dict, limits).map_err(at)? {
                    let mut labels = Labels::new();
                    labels.insert(names::DELTA, "false");
                    labels.insert(OTEL_LABEL, "true");
                    labels.insert(names::METRIC_NAME, converted.name.as_str());
                    add_attributes(&mut labels, resource_attrs, dict).map_err(at)?;
                    add_attributes(&mut labels, scope_attrs, dict).map_err(at)?;
                    let svc = converted
                        .sample_service
                        .as_deref()
                        .unwrap_or(service.as_str());
                    labels.insert(names::SERVICE_NAME, svc);
                    let input = SplitInput {
                        labels,
                        fallback_time_ns: now_ns,
                        now_ns,
                    };
                    let client_id = ProfileId::from_bytes(&profile.profile_id);
                    out.extend(
                        split_proto(&converted.profile, input, limits)
                            .map_err(at)?
                            .map(|mut split| {
                                if let Some(id) = client_id {
                                    split.profile_id = id;
                                }
                                split
                            }),
                    );
                }
            }
        }
    }
    Ok(out)
}

/// The key of a resource or scope attribute (`key`, or `key_strindex`).
fn attribute_key<'a>(kv: &'a KeyValue, dict: Dictionary<'a>) -> Result<&'a str, IngestError> {
    if kv.key.is_empty() && kv.key_strindex != 0 {
        dict.string(kv.key_strindex, "attribute key string")
    } else {
        Ok(kv.key.as_str())
    }
}

/// Adds the non-empty string attributes whose key is not yet a label.
fn add_attributes(
    labels: &mut Labels,
    attrs: &[KeyValue],
    dict: Dictionary<'_>,
) -> Result<(), IngestError> {
    for kv in attrs {
        let key = attribute_key(kv, dict)?;
        if key.is_empty() || labels.get(key).is_some() {
            continue;
        }
        if let Some(v) = dict
            .string_value(kv.value.as_ref())?
            .filter(|v| !v.is_empty())
        {
            labels.insert(key, v);
        }
    }
    Ok(())
}

/// `service.name`, else `unknown_service[:<process.executable.name>]`.
fn resource_service_name(attrs: &[KeyValue], dict: Dictionary<'_>) -> Result<String, IngestError> {
    let mut fallback = UNKNOWN_SERVICE.to_string();
    for kv in attrs {
        let key = attribute_key(kv, dict)?;
        let value = dict.string_value(kv.value.as_ref())?.unwrap_or("");
        if value.is_empty() {
            continue;
        }
        if key == SERVICE_NAME_ATTRIBUTE {
            return Ok(value.to_string());
        }
        if key == EXECUTABLE_NAME_ATTRIBUTE {
            fallback = format!("{UNKNOWN_SERVICE}:{value}");
        }
    }
    Ok(fallback)
}
