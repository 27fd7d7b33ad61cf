//! Sandbox runs in a build without the simulator (cargo feature `sim` off): every way to ask for
//! one is refused with [`NO_SIMULATOR`], and the types that would hold one cannot be built.

use std::path::Path;
use std::sync::Arc;

use crate::model::clock::Clock;
use crate::providers::Settings;

/// Why `--sandbox`, `rollbook test` and `rollbook sim serve` cannot run in this build.
pub(crate) const NO_SIMULATOR: &str = "this rollbook was built without the simulator (cargo feature `sim`): \
     `--sandbox`, `rollbook test` and `rollbook sim serve` need it; rebuild with `--features sim`";

/// A scenario (none can be loaded without the simulator).
pub(crate) enum Scenario {}

/// A running simulator (none can start without it).
pub(crate) enum Sandbox {}

/// Refuses: there is no simulator to load a scenario into.
pub(crate) fn load_scenario(_path: &Path) -> Result<Scenario, String> {
    Err(NO_SIMULATOR.into())
}

/// The scenario's `[test] params` (unreachable: no scenario exists).
pub(crate) fn test_params(scenario: &Scenario) -> Vec<(String, String)> {
    match *scenario {}
}

impl Sandbox {
    pub(crate) async fn start(scenario: Scenario, _work_dir: &Path) -> Result<Sandbox, String> {
        match scenario {}
    }
    pub(crate) fn settings(&self, _base: &Settings) -> Settings {
        match *self {}
    }
    pub(crate) fn url_rewrites(&self) -> Vec<(String, String)> {
        match *self {}
    }
    pub(crate) fn clock(&self) -> Arc<dyn Clock> {
        match *self {}
    }
    pub(crate) async fn stop(self) {
        match self {}
    }
}

/// Prints the sandbox banner (unreachable).
pub(crate) fn print_start(sandbox: &Sandbox, _scenario_path: &Path) {
    match *sandbox {}
}

/// Prints what the run changed (unreachable).
pub(crate) fn print_changes(sandbox: &Sandbox) {
    match *sandbox {}
}
