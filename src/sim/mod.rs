//! The simulator: Azure Resource Manager, Kubernetes API and health endpoints on loopback HTTP.

pub mod aks;
pub mod appservice;
pub mod arm;
pub mod azure;
pub mod logicapp;
pub mod scenario;

pub use scenario::{Scenario, ScenarioError};
