//! The `perflab` binary: parse arguments, run the command, map errors to documented exit codes.

mod cli;
mod commands;
mod logging;

fn main() {
    // Behave like other Unix tools when the reader of our output goes away (`| head`).
    // SAFETY: setting a signal disposition to its default before any thread starts.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    // Terraform calls home unless told not to; every child of perflab inherits this.
    // SAFETY: no other thread exists yet.
    unsafe {
        std::env::set_var("CHECKPOINT_DISABLE", "1");
    }
    install_panic_hook();
    let cli = cli::Cli::parse_args();
    logging::init(cli.verbose, cli.quiet);
    // A panic is a bug, but it must still end in order: unwinding drops the session (which tears
    // the lab down), then the results folder in progress is marked `failed` and the process exits
    // with the documented status (EXIT_INTERNAL) instead of Rust's 101.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commands::run(cli)));
    let code = match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            let code = e
                .downcast_ref::<perflab::Error>()
                .map(|e| e.exit_code())
                .unwrap_or(perflab::error::EXIT_LAB);
            eprintln!(
                "perflab: error: {}",
                perflab::redact::scrub_str(&format!("{e:#}"))
            );
            code
        }
        Err(_) => {
            // Processes a half-unwound lab may have missed.
            perflab::host::process_group::kill_all();
            let reason = PANIC_MESSAGE.lock().map(|m| m.clone()).unwrap_or_default();
            if let Some(dir) =
                perflab::store::mark_active_failed(&format!("internal error: {reason}"))
            {
                eprintln!(
                    "perflab: results so far are in {} (status failed)",
                    dir.display()
                );
            }
            perflab::error::EXIT_INTERNAL
        }
    };
    std::process::exit(code);
}

/// The message of the last panic, for the manifest's `failed: …` status.
static PANIC_MESSAGE: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// Prints a panic as an internal error (with where it happened, and secrets scrubbed) instead of
/// Rust's default message, and remembers it for the manifest.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let msg = perflab::redact::scrub_str(&msg);
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("perflab: internal error (a bug in perflab, please report it): {msg}{at}");
        if let Ok(mut m) = PANIC_MESSAGE.lock() {
            *m = format!("{msg}{at}");
        }
    }));
}
