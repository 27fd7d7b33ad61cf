//! The progress port: where primitives report waits (the CLI shows a spinner on a terminal).

/// Where primitives report waits and progress; the CLI shows a spinner on a terminal.
pub trait Progress: Send + Sync {
    /// A wait is under way (replaces the previous wait message).
    fn waiting(&self, message: &str);
    /// The wait is over.
    fn done_waiting(&self);
}

/// Progress that shows nothing.
pub struct Silent;

impl Progress for Silent {
    fn waiting(&self, _message: &str) {}
    fn done_waiting(&self) {}
}
