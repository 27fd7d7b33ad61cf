//! Integration tests: one binary (one link), one module per area.

// The test binary has no public surface: its helpers are `pub` only to be shared between modules.
#![allow(unreachable_pub)]

mod aks;
mod appservice;
mod appservice_power;
mod arm;
mod az_cli;
mod az_sdk;
mod azure_client;
mod azure_support;
mod check;
mod cli;
mod crash;
mod deploy;
mod docs;
mod dryrun;
mod engine;
mod fuzz_engine;
mod gitops;
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
mod logicapp_runs;
mod manpages;
mod net_edges;
mod net_fuzz;
mod net_guard;
mod preflight;
mod pyvenv_az;
mod pyvenv_k8s;
mod rehearse;
mod run_modes;
mod run_state;
mod runbooks;
mod safety;
mod serve;
mod serve_crash;
mod serve_e2e;
mod serve_input;
mod sim_arm_validation;
mod sim_azure;
mod sim_azure_ops;
mod sim_k8s;
mod sim_k8s_fidelity;
mod sim_metrics;
mod support;
