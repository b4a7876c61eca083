//! Connect procedures Pyroscope serves that Ignis does not implement yet:
//! answered with Connect's `unimplemented` code (HTTP 501) naming the
//! procedure, as connect-go answers a known procedure it has no handler
//! for, so a client can tell "not supported here" from a wrong path (404).

use actix_web::{HttpRequest, HttpResponse};

use super::error::ApiError;

/// Services whose every procedure is answered `unimplemented`.
pub const SERVICES: &[&str] = &[
    "settings.v1.RecordingRulesService",
    "capabilities.v1.FeatureFlagsService",
    "version.v1.Version",
    "vcs.v1.VCSService",
    "adhocprofiles.v1.AdHocProfileService",
    "debuginfo.v1alpha1.DebuginfoService",
];

/// The 501 for procedure `path` (`/service/method`).
pub fn error(path: &str) -> ApiError {
    ApiError::unimplemented(format!(
        "{} is not implemented by Ignis yet",
        path.trim_start_matches('/')
    ))
}

/// Any procedure of [`SERVICES`].
pub async fn procedure(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(error(req.path()))
}
