//! Integration tests: one binary (one link), one module per area.

mod aks;
mod appservice;
mod arm;
mod azure_client;
mod azure_support;
mod check;
mod cli;
mod crash;
mod docs;
mod dryrun;
mod engine;
mod health;
mod k8s;
mod k8s_http2;
mod library;
mod library_fuzz;
mod library_security;
mod logicapp;
mod manpages;
mod preflight;
mod rehearse;
mod safety;
mod sim_azure;
mod sim_k8s;
mod support;
