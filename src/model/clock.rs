//! The clock port: every wait and deadline of a run goes through a [`Clock`], so rehearsals and
//! tests can make time pass faster (or not at all) without changing what a runbook does.

use std::sync::Mutex;
use std::time::Duration;

use super::BoxFuture;

/// The one clock every wait and every deadline goes through, so rehearsals and tests can make
/// time pass faster (or not at all) without changing what a runbook does.
pub trait Clock: Send + Sync {
    /// Waits for `d` of this clock's time.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
    /// This clock's time since it started (for deadlines: compare two readings).
    fn now(&self) -> Duration;
}

/// Real time.
pub struct RealClock;

fn process_start() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

impl Clock for RealClock {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
    fn now(&self) -> Duration {
        process_start().elapsed()
    }
}

/// Time running `factor` times faster than real time (rehearsals: `rollbook test`), so a
/// runbook's "15s" intervals and "5m" timeouts keep their proportions but take a fraction.
pub struct ScaledClock {
    factor: f64,
    start: std::time::Instant,
}

impl ScaledClock {
    /// A clock `factor` (≥ 1) times faster than real time.
    pub fn new(factor: f64) -> ScaledClock {
        ScaledClock { factor: factor.max(1.0), start: std::time::Instant::now() }
    }
}

impl Clock for ScaledClock {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d.div_f64(self.factor)))
    }
    fn now(&self) -> Duration {
        self.start.elapsed().mul_f64(self.factor)
    }
}

/// A clock for tests: every wait returns at once and moves this clock's time forward by the
/// wait, which is recorded (so a test can assert a client meant to wait `Retry-After`).
#[derive(Default)]
pub struct SkipClock {
    slept: Mutex<Vec<Duration>>,
}

impl SkipClock {
    /// The waits asked for so far, in order.
    pub fn slept(&self) -> Vec<Duration> {
        self.slept.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Clock for SkipClock {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        if let Ok(mut s) = self.slept.lock() {
            s.push(d);
        }
        Box::pin(tokio::task::yield_now())
    }
    fn now(&self) -> Duration {
        self.slept.lock().map(|s| s.iter().sum()).unwrap_or_default()
    }
}
