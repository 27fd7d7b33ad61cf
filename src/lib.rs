//! rollbook: recovery runbooks in Rhai for Azure and Kubernetes, with dry-run, journal, undo and a simulator.
//!
//! Layers depend downward only: `cli` → `engine` → `run` / `providers` → `azure` → `model`;
//! `sim` depends on `model` only.
#![forbid(unsafe_code)]

pub mod azure;
pub mod cli;
pub mod engine;
pub mod library;
pub mod model;
pub mod providers;
pub mod run;
pub mod serve;
pub mod sim;
