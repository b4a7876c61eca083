//! `GET /cluster`: members, roles, readiness and ring ownership, as JSON
//! (`?format=json` or `Accept: application/json`) or a small HTML page.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::page::{escape, html, wants_json};
use super::state::AppState;

fn status(state: &AppState) -> Value {
    let cluster = state.tenants.cluster();
    let members = cluster.membership.members();
    let view = cluster.ring();
    let ownership: Vec<Value> = view
        .ring
        .ownership()
        .into_iter()
        .map(|(node, share)| json!({"node_id": node, "share": share}))
        .collect();
    json!({
        "enabled": cluster.membership.gossips(),
        "node_id": cluster.node_id,
        "members": *members,
        "ring": {
            "replication_factor": view.replication_factor,
            "quorum": view.quorum(),
            "ownership": ownership,
        },
    })
}

/// `GET /cluster`.
pub async fn cluster(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let v = status(&state);
    if wants_json(&req) {
        return HttpResponse::Ok().json(v);
    }
    let mut rows = String::new();
    for m in v["members"].as_array().into_iter().flatten() {
        let share = v["ring"]["ownership"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["node_id"] == m["node_id"])
            .and_then(|o| o["share"].as_f64())
            .map_or_else(|| "–".to_string(), |s| format!("{:.1}%", s * 100.0));
        let roles: Vec<&str> = m["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        rows.push_str(&format!(
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(m["node_id"].as_str().unwrap_or("")),
            if m["is_self"] == true {
                " (this node)"
            } else {
                ""
            },
            escape(m["http_addr"].as_str().unwrap_or("")),
            escape(&roles.join(", ")),
            escape(m["state"].as_str().unwrap_or("")),
            if m["ready"] == true { "yes" } else { "no" },
            share,
        ));
    }
    let body = format!(
        "<h1>Cluster</h1><p>{}</p><table><tr><th>Node</th><th>HTTP</th><th>Roles</th><th>State</th>\
         <th>Ready</th><th>Ring share</th></tr>\n{rows}</table>\
         <p>Replication factor {}, quorum {}. <a href=\"?format=json\">JSON</a></p>",
        if v["enabled"] == true {
            "Members seen through gossip by this node."
        } else {
            "This node is standalone (cluster.enabled = false)."
        },
        v["ring"]["replication_factor"],
        v["ring"]["quorum"].as_u64().unwrap_or(1),
    );
    html("Ignis cluster", &body)
}
