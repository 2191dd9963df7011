//! The library's error type and the exit codes the CLI maps it to.
//!
//! Every failure a user can cause or meet carries enough context to act on: the file and line of
//! a bad suite, the program's own message when it refuses a config, the address wrk could not
//! reach. The binary prints errors with `{:#}` and exits with [`Error::exit_code`].

use std::path::PathBuf;

/// Exit status: success.
pub const EXIT_OK: i32 = 0;
/// Exit status: a comparison found a regression beyond `--fail-on-regression`.
pub const EXIT_REGRESSION: i32 = 1;
/// Exit status: bad input (command line, suite file, options, unknown names).
pub const EXIT_USAGE: i32 = 2;
/// Exit status: a required program is missing or unusable.
pub const EXIT_MISSING_TOOL: i32 = 3;
/// Exit status: a lab component failed (a gateway refused its config, a port was busy, a run failed).
pub const EXIT_LAB: i32 = 4;
/// Exit status: a gateway died during a run (the run is kept and flagged `gateway_died`), unless
/// `--keep-going`.
pub const EXIT_GATEWAY_DIED: i32 = 5;
/// Exit status: an internal error (a panic, a bug in perflab); the lab was torn down and the
/// results folder's status set to `failed`.
pub const EXIT_INTERNAL: i32 = 70;
/// Exit status: interrupted by SIGINT/SIGTERM; finished runs were kept.
pub use crate::signals::EXIT_INTERRUPTED;

/// Errors of the perflab library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user asked for something invalid (a flag value, an option combination).
    #[error("{0}")]
    Usage(String),
    /// A suite or case file could not be parsed.
    #[error("{path}:{line}: {message}")]
    SuiteFile {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 when unknown).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A program perflab needs is not installed or cannot run.
    #[error("{program} not found{where_}: {hint}")]
    MissingTool {
        /// The program's name.
        program: String,
        /// Where it was looked for (" on host X"), may be empty.
        where_: String,
        /// How to install it.
        hint: String,
    },
    /// A port the lab wanted was already in use.
    #[error("port {port} on {host} is already in use ({detail})")]
    PortInUse {
        /// The port.
        port: u16,
        /// The host name.
        host: String,
        /// The program's message.
        detail: String,
    },
    /// A gateway, upstream or other program refused its configuration.
    #[error("{program} refused its configuration {config}:\n{message}")]
    ConfigRefused {
        /// The program.
        program: String,
        /// The config file on its host.
        config: String,
        /// The program's own output.
        message: String,
    },
    /// The load generator failed.
    #[error("load generator failed: {0}")]
    Load(String),
    /// A command on a host failed. (Transparent: `{:#}` must not print the host's message twice.)
    #[error(transparent)]
    Host(#[from] crate::host::HostError),
    /// Something else went wrong in the lab, with context.
    #[error("{0}")]
    Lab(String),
    /// The run was interrupted by a signal.
    #[error("interrupted")]
    Interrupted,
    /// A file could not be read or written. (The cause is part of the message, not a separate
    /// error source, so that `{:#}` does not print it twice.)
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A gateway died during one or more runs (each is kept, flagged `gateway_died` and left out
    /// of the statistics); `--keep-going` makes this a success.
    #[error("{0}")]
    GatewayDied(String),
}

impl Error {
    /// The documented process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::SuiteFile { .. } => EXIT_USAGE,
            Error::MissingTool { .. } => EXIT_MISSING_TOOL,
            Error::Host(h) if h.is_missing_program() => EXIT_MISSING_TOOL,
            Error::Interrupted => EXIT_INTERRUPTED,
            Error::GatewayDied(_) => EXIT_GATEWAY_DIED,
            _ => EXIT_LAB,
        }
    }

    /// Shorthand for an [`Error::Io`] with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }
}

impl From<crate::engine::EngineError> for Error {
    fn from(e: crate::engine::EngineError) -> Self {
        use crate::engine::{EngineError, START_ENGINE};
        match e {
            EngineError::BadAddress { .. } => Error::Usage(e.to_string()),
            EngineError::NoEngine {
                addr,
                source_note,
                why,
            } => Error::MissingTool {
                program: "Docker engine".into(),
                where_: format!(" at {addr} ({source_note})"),
                hint: format!("{why}; {START_ENGINE}"),
            },
            EngineError::Api { .. } => Error::Lab(e.to_string()),
        }
    }
}

impl From<crate::journal::JournalError> for Error {
    fn from(e: crate::journal::JournalError) -> Self {
        Error::io(e.path, e.cause)
    }
}

impl From<crate::signals::Interrupted> for Error {
    fn from(_: crate::signals::Interrupted) -> Self {
        Error::Interrupted
    }
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
