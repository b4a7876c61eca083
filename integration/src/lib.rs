//! Helpers for Ignis's end-to-end tests: the shared fixtures with their ground
//! truth, nodes started in-process or as a child process, and an API client.

#![warn(missing_docs)]

pub mod client;
pub mod cluster;
pub mod fixtures;
pub mod go;
pub mod node;
pub mod proxy;
pub mod s3;
