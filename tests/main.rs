//! Integration tests: one binary (one link), one module per area.

mod aks;
mod appservice;
mod arm;
mod azure_client;
mod azure_support;
mod cli;
mod crash;
mod engine;
mod fuzz_engine;
mod health;
mod interrupts;
mod k8s;
mod k8s_http2;
mod library;
mod limits;
mod logicapp;
mod rehearse;
mod safety;
mod sim_azure;
mod sim_k8s;
mod support;
