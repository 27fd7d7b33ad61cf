//! Integration tests: one binary (one link), one module per area.

mod cli;
mod engine;
mod health;
mod rehearse;
mod sim_azure;
mod sim_k8s;
mod support;
