//! The one error every command returns, and its exit code; `main` shows it, in one place.

use crate::engine::EngineError;
use crate::run::RunStatus;

/// Exit code for invalid input (runbook, params, scenario, flags).
pub const EXIT_INVALID: i32 = 2;

/// Why a command did not end with exit 0.
#[derive(Debug)]
pub enum CliError {
    /// The command line itself is wrong (or `--help`/`--version` was asked for).
    Usage(clap::Error),
    /// Invalid input: a runbook, param, scenario, flag or file (exit 2), shown as `error: …`.
    Invalid(String),
    /// An error that kept a runbook from loading or a run from starting (exit 2; 5 when locked).
    Engine(EngineError),
    /// Problems already shown one by one, summed up in this last line (exit 2).
    Problems(String),
    /// A run or rehearsal ran and its report is shown; it ended with this exit code (1-5).
    Finished(i32),
    /// The program could not start its own machinery (exit 1).
    Internal(String),
}

impl CliError {
    /// The process exit code: 1 a runbook failed (after undo), 2 invalid input, 3 a person must
    /// look (undo failed, stopped resumable), 4 denied, 5 locked.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(e) => {
                if e.use_stderr() {
                    EXIT_INVALID
                } else {
                    0
                }
            }
            CliError::Invalid(_) | CliError::Problems(_) => EXIT_INVALID,
            CliError::Engine(EngineError::Locked(_)) => RunStatus::Locked.exit_code(),
            CliError::Engine(_) => EXIT_INVALID,
            CliError::Finished(code) => *code,
            CliError::Internal(_) => 1,
        }
    }

    /// An invalid-input error with this message.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        CliError::Invalid(message.into())
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        CliError::Engine(e)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(e) => write!(f, "{e}"),
            CliError::Invalid(m) | CliError::Problems(m) | CliError::Internal(m) => f.write_str(m),
            CliError::Engine(e) => write!(f, "{e}"),
            CliError::Finished(code) => write!(f, "the run ended with exit code {code}"),
        }
    }
}

impl std::error::Error for CliError {}

/// What a command returns: `Ok` is exit 0.
pub type CliResult = Result<(), CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_documented_table() {
        assert_eq!(CliError::invalid("x").exit_code(), 2);
        assert_eq!(CliError::Problems("1 check(s) failed".into()).exit_code(), 2);
        assert_eq!(CliError::Engine(EngineError::Params("p".into())).exit_code(), 2);
        assert_eq!(CliError::Engine(EngineError::Locked("held".into())).exit_code(), 5);
        assert_eq!(CliError::Finished(3).exit_code(), 3);
        assert_eq!(CliError::Internal("no runtime".into()).exit_code(), 1);
    }
}
