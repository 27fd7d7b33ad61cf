//! Integration tests: one binary (one link), one module per area.

// The test binary has no public surface: its helpers are `pub` only to be shared between modules.
#![allow(unreachable_pub)]

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
mod fuzz_engine;
mod health;
mod interrupts;
mod k8s;
mod k8s_http2;
mod layers;
mod lease_locks;
mod library;
mod library_fuzz;
mod library_security;
mod limits;
mod logicapp;
mod manpages;
mod net_edges;
mod net_fuzz;
mod net_guard;
mod preflight;
mod rehearse;
mod run_modes;
mod run_state;
mod runbooks;
mod safety;
mod sim_azure;
mod sim_k8s;
mod support;
