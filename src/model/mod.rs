//! Plain data and ports shared by every layer: durations, errors, resource keys, the clock, the
//! progress sink and the lock backend traits. Depends on nothing else in the crate.

pub mod clock;
pub mod duration;
pub mod error;
pub mod file;
pub mod glob;
pub mod host;
pub mod lock;
pub mod progress;
pub mod settings;

pub use duration::{Dur, format_duration, parse_duration};
pub use error::{ErrorKind, PrimitiveError};
pub use file::{MAX_INPUT_FILE, read_input_file};
pub use settings::Settings;

use serde::{Deserialize, Serialize};

/// A boxed, sendable future, as the type-erased registry stores calls and a clock sleeps.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Whether a primitive only reads or changes the world; dry-run and the journal depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Reads only: runs for real under `--dry-run`.
    Read,
    /// Changes a system: planned, not performed, under `--dry-run`; journaled write-ahead.
    Mutate,
}

/// The candidate closest to `word` by edit distance, if any is close enough to be a useful hint.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
