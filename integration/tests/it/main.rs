//! End-to-end tests: one test binary, one module per area. Run one area with
//! e.g. `cargo test -p ignis-integration --test it sdk_replay`.

mod api;
mod attack;
mod attack_corpus;
mod auth;
mod bad_input;
mod binary;
mod blocks;
mod cluster;
mod cluster_security;
mod common;
mod compactor;
mod config_edges;
mod durability;
mod fairness;
mod formats;
mod frontend;
mod grafana;
mod grpc;
mod loadgen;
mod otlp;
mod query_memory;
mod scrape;
mod sdk_live;
mod sdk_replay;
mod spans;
mod sql;
mod telemetry;
mod tenants;
mod ui;
