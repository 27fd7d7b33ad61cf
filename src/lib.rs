//! rollbook: recovery runbooks in Rhai for Azure and Kubernetes, with dry-run, journal, undo and a simulator.
//!
//! Layers depend downward only: `cli` → `engine` → `run` / `providers` → `azure` → `model`;
//! `sim` depends on `model` only and is the cargo feature `sim` (on by default); `model` depends
//! on nothing. `scripts/module-graph.sh` prints the graph and fails on a cycle.
#![forbid(unsafe_code)]

pub mod azure;
pub mod cli;
pub mod engine;
pub mod library;
pub mod model;
pub mod providers;
pub mod run;
#[cfg(feature = "sim")]
pub mod sim;
