//! `GET /scrape`: the pull-mode targets and the health of each profile, as
//! JSON (`?format=json` or `Accept: application/json`) or a small HTML page.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::page::{escape, html, wants_json};
use super::state::AppState;

/// `GET /scrape`.
pub async fn scrape(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let targets = state.scrape.snapshot();
    let c = &state.config.scrape;
    if wants_json(&req) {
        return HttpResponse::Ok().json(json!({
            "interval_secs": c.interval_secs,
            "cpu_seconds": c.cpu_seconds(),
            "targets": targets,
        }));
    }
    let mut rows = String::new();
    for t in &targets {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{} ms</td><td>{}</td><td>{}/{}</td><td>{}</td></tr>\n",
            escape(&t.url),
            t.profile,
            escape(&t.service_name),
            escape(&t.tenant),
            t.health,
            t.last_outcome,
            t.last_duration_ms,
            t.stored,
            t.failures,
            t.scrapes,
            escape(&t.last_error),
        ));
    }
    let intro = if targets.is_empty() {
        "No scrape targets on this node (<code>[[scrape.targets]]</code> in config.toml; only nodes with the distributor role scrape)."
            .to_string()
    } else {
        format!(
            "Every {} s; CPU profiles of {} s. In a cluster each target is scraped by one write node (others show <i>elsewhere</i>).",
            c.interval_secs,
            c.cpu_seconds()
        )
    };
    let body = format!(
        "<h1>Scrape targets</h1><p>{intro}</p><table><tr><th>URL</th><th>Profile</th><th>Service</th>\
         <th>Tenant</th><th>Health</th><th>Last outcome</th><th>Last duration</th><th>Stored</th>\
         <th>Failed/scrapes</th><th>Last error</th></tr>\n{rows}</table><p><a href=\"?format=json\">JSON</a></p>"
    );
    html("Ignis scrape targets", &body)
}
