//! Small status pages (`/cluster`, `/scrape`): JSON or plain HTML, no assets.

use actix_web::{HttpRequest, HttpResponse};

/// Whether the client asked for JSON (`?format=json` or `Accept: application/json`).
pub fn wants_json(req: &HttpRequest) -> bool {
    req.query_string().contains("format=json")
        || req
            .headers()
            .get("accept")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|a| a.contains("application/json"))
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page titled `title` around `body` (already HTML).
pub fn html(title: &str, body: &str) -> HttpResponse {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}</style></head><body>\
         {body}</body></html>",
        escape(title)
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page)
}
