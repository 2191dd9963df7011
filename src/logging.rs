//! The binary's one log channel: a `tracing` subscriber writing to stderr.
//!
//! # Why
//!
//! The library reports what happens through `tracing` events (warnings about leftover labs, a
//! bridge network, teardown failures; the session's log; the SSH trace at debug level). Without
//! a subscriber those are dropped, so the binary installs one before anything runs. Lines keep
//! perflab's own look (`perflab: warning: …`), have no timestamps (the results carry the
//! times), and go to stderr so stdout stays the command's product (tables, the final JSON line).
//!
//! What is shown: warnings and perflab's notes by default; `-v` adds debug, `-vv` trace (and
//! other crates' notes); `-q` errors only. `PERFLAB_LOG` (an `EnvFilter` directive such as
//! `perflab=debug` or `perflab::host::ssh=trace`) overrides the flags.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The environment variable that overrides `-v`/`-q` with an `EnvFilter` directive.
pub const LOG_ENV: &str = "PERFLAB_LOG";

/// The filter directive for the flags: `-q` errors only; default warnings and perflab's notes;
/// `-v` perflab's debug events; `-vv` perflab's trace and every crate's notes.
pub fn directive(verbose: u8, quiet: bool) -> &'static str {
    match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,perflab=info",
        (false, 1) => "warn,perflab=debug",
        (false, _) => "info,perflab=trace",
    }
}

/// Installs the subscriber for the whole process (once, before any work).
pub fn init(verbose: u8, quiet: bool) {
    let from_env = std::env::var(LOG_ENV).ok().filter(|v| !v.trim().is_empty());
    let (filter, bad_env) = match from_env.as_deref().map(EnvFilter::try_new) {
        Some(Ok(f)) => (f, None),
        Some(Err(e)) => (EnvFilter::new(directive(verbose, quiet)), Some(e)),
        None => (EnvFilter::new(directive(verbose, quiet)), None),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(Lines)
        .try_init();
    if let Some(e) = bad_env {
        tracing::warn!("{LOG_ENV} is not a valid log filter ({e}); using the default");
    }
}

/// perflab's line format: `perflab: ` and the level (none for notes), the message, then any
/// other fields as `key=value`.
struct Lines;

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "perflab: {}", prefix(*event.metadata().level()))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The word before a message of `level` (notes have none, as perflab's lines always had).
fn prefix(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error: ",
        Level::WARN => "warning: ",
        Level::INFO => "",
        Level::DEBUG => "debug: ",
        Level::TRACE => "trace: ",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_choose_the_filter_and_every_directive_parses() {
        for (v, q) in [(0, false), (1, false), (2, false), (5, false), (0, true)] {
            EnvFilter::try_new(directive(v, q)).unwrap();
        }
        assert_eq!(directive(0, true), "error");
        assert!(directive(0, false).starts_with("warn"));
        assert!(directive(1, false).contains("perflab=debug"));
        assert!(directive(2, false).contains("perflab=trace"));
    }
}
