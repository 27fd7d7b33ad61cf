//! A simulator on its own runtime for tests that drive the real binary against it.

use std::path::{Path, PathBuf};
use std::process::Command;

use rollbook::sim::{Scenario, Sim, SimHandle};

use super::write;

/// The subscription every simulated Azure resource lives in by default.
pub const SUB: &str = "00000000-0000-0000-0000-000000000000";

/// A simulator on its own runtime, kept alive as long as this value.
pub struct LiveSim {
    /// The running simulator.
    pub sim: SimHandle,
    /// A kubeconfig reaching every simulated context.
    pub kubeconfig: PathBuf,
    _rt: tokio::runtime::Runtime,
}

impl LiveSim {
    /// Starts a simulator on `scenario` (TOML), writing its kubeconfig into `dir`.
    pub fn start(dir: &Path, scenario: &str) -> LiveSim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let scenario = Scenario::parse(&dir.join("scenario.toml"), scenario).expect("scenario");
        let sim = rt.block_on(Sim::start(scenario, None)).expect("sim starts");
        let kubeconfig = write(dir, "kubeconfig", &sim.kubeconfig_yaml());
        LiveSim { sim, kubeconfig, _rt: rt }
    }

    /// `rollbook SUBCOMMAND --state-dir STATE`, pointed at this simulator.
    pub fn rollbook(&self, sub: &str, state: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rollbook"));
        c.env("ROLLBOOK_ARM_ENDPOINT", self.sim.arm_endpoint())
            .env("ROLLBOOK_AZURE_TOKEN", "test-token")
            .env("AZURE_SUBSCRIPTION_ID", SUB)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("NO_COLOR", "1")
            .env_remove("ROLLBOOK_STATE_DIR")
            .arg(sub)
            .arg("--state-dir")
            .arg(state);
        c
    }
}
