//! The simulator: Azure Resource Manager, Kubernetes API and health endpoints on loopback HTTP.

pub mod scenario;

pub use scenario::{Scenario, ScenarioError};
