//! Plain data shared by every layer: durations, errors, resource keys. Depends on nothing else.

pub mod duration;
pub mod error;
pub mod file;
pub mod glob;
pub mod settings;

pub use duration::{Dur, format_duration, parse_duration};
pub use error::{ErrorKind, PrimitiveError};
pub use file::{MAX_INPUT_FILE, read_input_file};
pub use settings::Settings;

use serde::{Deserialize, Serialize};

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
