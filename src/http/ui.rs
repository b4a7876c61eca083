//! The web UI: `GET /` (the page) and `GET /ui/{file}` (its modules, styles
//! and images), embedded in the binary or read from `ui.assets_dir`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::ApiError;
use super::state::AppState;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

/// The embedded file at `path` (relative to `src/ui/`).
pub fn embedded(path: &str) -> Option<&'static [u8]> {
    embedded::ASSETS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, b)| *b)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        format!("no UI file {path:?}"),
    )
}

/// Reads a UI file, from `ui.assets_dir` when set, else from the binary.
async fn load(state: &AppState, path: &str) -> Result<Vec<u8>, ApiError> {
    // Paths come from the URL: refuse anything that could leave the directory.
    if path.is_empty()
        || path
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == ".." || seg.starts_with('.'))
        || path.contains('\\')
    {
        return Err(not_found(path));
    }
    let dir = &state.config.ui.assets_dir;
    if dir.is_empty() {
        return embedded(path)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| not_found(path));
    }
    let file = std::path::Path::new(dir).join(path);
    tokio::fs::read(&file).await.map_err(|_| not_found(path))
}

fn etag(bytes: &[u8]) -> String {
    format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(bytes))
}

fn respond(req: &HttpRequest, path: &str, bytes: Vec<u8>) -> HttpResponse {
    let tag = etag(&bytes);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == tag);
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, tag))
        // Revalidate every time: the ETag makes that a cheap 304.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    if fresh {
        res.finish()
    } else {
        res.content_type(content_type(path)).body(bytes)
    }
}

/// `GET /`: the UI's page.
pub async fn index(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let bytes = load(&state, "index.html").await?;
    Ok(respond(&req, "index.html", bytes))
}

/// `GET /ui/{file}`: one of the UI's files.
pub async fn asset(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let path = path.into_inner();
    let bytes = load(&state, &path).await?;
    Ok(respond(&req, &path, bytes))
}
