//! Integration tests: one binary (one link), one module per area.

mod aks;
mod cli;
mod engine;
mod health;
mod k8s;
mod rehearse;
mod sim_azure;
mod sim_k8s;
mod support;
