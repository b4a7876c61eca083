//! `settings.v1.SettingsService` (`Get`, `Set`, `Delete`): a tenant's
//! settings, kept in the bucket by [`ignis_actors::settings`].

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use ignis_actors::settings::{Setting, SettingsError};
use ignis_storage::proto::settings::v1 as pb;

use super::body::read_decoded;
use super::connect::Codec;
use super::error::ApiError;
use super::state::{AppState, now_ns};

/// Largest settings request body (a value is at most 64 KiB).
const MAX_BODY: usize = 1 << 20;

/// `POST /settings.v1.SettingsService/{method}`.
pub async fn settings(
    req: HttpRequest,
    method: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let codec = Codec::from_request(&req)?;
    let tenant = state.tenant(&req)?;
    let body = read_decoded(&req, payload, MAX_BODY).await?;
    let store = state.tenants.settings().ok_or_else(|| {
        ApiError::unavailable("tenant settings need a bucket, and this node has none")
    })?;
    match method.as_str() {
        "Get" => {
            let _: pb::GetSettingsRequest = codec.decode(&body)?;
            let settings = store.get(&tenant).await.map_err(error)?;
            Ok(codec.respond(&pb::GetSettingsResponse {
                settings: settings.into_iter().map(to_proto).collect(),
            }))
        }
        "Set" => {
            let r: pb::SetSettingsRequest = codec.decode(&body)?;
            let s = r
                .setting
                .ok_or_else(|| ApiError::bad_request("setting is required"))?;
            let setting = Setting {
                name: s.name,
                value: s.value,
                modified_at_ms: s.modified_at,
            };
            let stored = store
                .set(&tenant, setting, now_ns() / 1_000_000)
                .await
                .map_err(error)?;
            Ok(codec.respond(&pb::SetSettingsResponse {
                setting: Some(to_proto(stored)),
            }))
        }
        "Delete" => {
            let r: pb::DeleteSettingsRequest = codec.decode(&body)?;
            store.delete(&tenant, &r.name).await.map_err(error)?;
            Ok(codec.respond(&pb::DeleteSettingsResponse {}))
        }
        other => Err(ApiError::not_found(format!(
            "settings.v1.SettingsService/{other} is not a procedure of this service"
        ))),
    }
}

fn to_proto(s: Setting) -> pb::Setting {
    pb::Setting {
        name: s.name,
        value: s.value,
        modified_at: s.modified_at_ms,
    }
}

fn error(e: SettingsError) -> ApiError {
    match e {
        SettingsError::Invalid(m) => ApiError::bad_request(m),
        e @ SettingsError::Stale { .. } => {
            ApiError::new(StatusCode::CONFLICT, "aborted", e.to_string())
        }
        e @ SettingsError::Store(_) => ApiError::unavailable(e.to_string()),
    }
}
