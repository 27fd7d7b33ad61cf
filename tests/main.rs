//! Integration tests: one binary, one module per area.

mod sim_k8s;
