//! Ctrl-C and SIGTERM: the first asks for an orderly teardown that keeps finished runs, the
//! second stops at once.
//!
//! The lab's loops check [`interrupted`] between steps and while waiting; the first signal only
//! sets the flag. A second signal runs the caller's last-resort stop (kill every local process
//! group the lab started, mark the results folder) and exits with status 130.
//!
//! This module is a leaf of the layering: it knows nothing of hosts, the store or the error
//! type, so every layer can check for an interrupt. The caller of [`install`] hands it what a
//! second signal must do, and [`Interrupted`] converts into the library's error.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Exit status after a second signal (128 + SIGINT, the shell's convention).
pub const EXIT_INTERRUPTED: i32 = 130;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// Installs the handler for SIGINT and SIGTERM (once; later calls do nothing). A second signal
/// calls `stop_at_once` (which must not block for long) and exits with [`EXIT_INTERRUPTED`].
pub fn install(stop_at_once: fn()) {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let _ = ctrlc::set_handler(move || {
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        INTERRUPTED.store(true, Ordering::SeqCst);
        if n == 0 {
            tracing::warn!(
                "interrupted: stopping the lab and keeping finished runs (press Ctrl-C again to stop at once)"
            );
        } else {
            tracing::warn!("stopping at once");
            stop_at_once();
            std::process::exit(EXIT_INTERRUPTED);
        }
    });
}

/// True once SIGINT or SIGTERM has been received.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// A signal was received: the lab is stopping. Converts into `Error::Interrupted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

/// Returns `Err(Interrupted)` once a signal has been received.
pub fn check() -> Result<(), Interrupted> {
    if interrupted() {
        Err(Interrupted)
    } else {
        Ok(())
    }
}
