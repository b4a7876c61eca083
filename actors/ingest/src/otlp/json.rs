//! OTLP/JSON: protojson with OTLP's exceptions.
//!
//! Field names are lowerCamelCase (the proto names are accepted too), enums
//! integers, 64-bit integers strings or numbers, unknown fields ignored, and
//! bytes base64 — except a link's `traceId` and `spanId`, which OTLP writes
//! as hex. Those two (and a hex `profileId`) are taken out of the JSON before
//! the generated protojson decoder sees it, and put back as bytes after.

use ignis_storage::proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest;
use serde_json::Value;

use crate::error::IngestError;

/// Decodes an OTLP/JSON `ExportProfilesServiceRequest`.
pub fn decode_request(body: &[u8]) -> Result<ExportProfilesServiceRequest, IngestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::invalid("empty JSON body: send at least {}"));
    }
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|e| IngestError::invalid(format!("invalid JSON message: {e}")))?;
    let links = take_link_ids(&mut value)?;
    let profile_ids = take_profile_ids(&mut value)?;
    let mut req: ExportProfilesServiceRequest = serde_json::from_value(value)
        .map_err(|e| IngestError::invalid(format!("invalid JSON message: {e}")))?;
    if let Some(dict) = req.dictionary.as_mut() {
        for (i, trace_id, span_id) in links {
            if let Some(link) = dict.link_table.get_mut(i) {
                if let Some(t) = trace_id {
                    link.trace_id = t;
                }
                if let Some(s) = span_id {
                    link.span_id = s;
                }
            }
        }
    }
    for ((r, s, p), id) in profile_ids {
        if let Some(profile) = req
            .resource_profiles
            .get_mut(r)
            .and_then(|rp| rp.scope_profiles.get_mut(s))
            .and_then(|sp| sp.profiles.get_mut(p))
        {
            profile.profile_id = id;
        }
    }
    Ok(req)
}

/// The member `camel` (or its proto name `snake`) of an object.
fn member<'v>(obj: &'v mut Value, camel: &str, snake: &str) -> Option<&'v mut Value> {
    let o = obj.as_object_mut()?;
    if o.contains_key(camel) {
        o.get_mut(camel)
    } else {
        o.get_mut(snake)
    }
}

/// Removes member `camel`/`snake` when it is a string and returns it decoded from hex.
fn take_hex(
    obj: &mut Value,
    camel: &str,
    snake: &str,
    what: &str,
) -> Result<Option<Vec<u8>>, IngestError> {
    let Some(o) = obj.as_object_mut() else {
        return Ok(None);
    };
    for key in [camel, snake] {
        if let Some(Value::String(s)) = o.get(key) {
            let bytes = decode_hex(s).ok_or_else(|| {
                IngestError::invalid(format!("{what}: {s:?} is not a hex string"))
            })?;
            o.remove(key);
            return Ok(Some(bytes));
        }
    }
    Ok(None)
}

/// Link index, trace id and span id of every link with hex ids.
type LinkIds = Vec<(usize, Option<Vec<u8>>, Option<Vec<u8>>)>;

fn take_link_ids(value: &mut Value) -> Result<LinkIds, IngestError> {
    let mut out = Vec::new();
    let Some(Value::Array(links)) = member(value, "dictionary", "dictionary")
        .and_then(|d| member(d, "linkTable", "link_table"))
    else {
        return Ok(out);
    };
    for (i, link) in links.iter_mut().enumerate() {
        let trace = take_hex(
            link,
            "traceId",
            "trace_id",
            &format!("linkTable[{i}].traceId"),
        )?;
        let span = take_hex(link, "spanId", "span_id", &format!("linkTable[{i}].spanId"))?;
        if trace.is_some() || span.is_some() {
            out.push((i, trace, span));
        }
    }
    Ok(out)
}

/// (resource, scope, profile) position and id of every hex `profileId`.
type ProfileIds = Vec<((usize, usize, usize), Vec<u8>)>;

/// `profileId`s written as 32 hex digits; any other string is left to the
/// protojson decoder (base64).
fn take_profile_ids(value: &mut Value) -> Result<ProfileIds, IngestError> {
    let mut out = Vec::new();
    let Some(Value::Array(rps)) = member(value, "resourceProfiles", "resource_profiles") else {
        return Ok(out);
    };
    for (r, rp) in rps.iter_mut().enumerate() {
        let Some(Value::Array(sps)) = member(rp, "scopeProfiles", "scope_profiles") else {
            continue;
        };
        for (s, sp) in sps.iter_mut().enumerate() {
            let Some(Value::Array(profiles)) = member(sp, "profiles", "profiles") else {
                continue;
            };
            for (p, profile) in profiles.iter_mut().enumerate() {
                let is_hex_id = |v: Option<&mut Value>| matches!(v, Some(Value::String(s)) if s.len() == 32 && decode_hex(s).is_some());
                if is_hex_id(member(profile, "profileId", "profile_id")) {
                    let what = format!("profiles[{p}].profileId");
                    if let Some(id) = take_hex(profile, "profileId", "profile_id", &what)? {
                        out.push(((r, s, p), id));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Decodes case-insensitive hex; `None` for odd lengths or other characters.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    b.chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}
