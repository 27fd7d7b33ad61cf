//! One integration-test binary (one link) with a module per area.

mod sim_azure;
