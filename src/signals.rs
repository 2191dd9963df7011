//! Ctrl-C and SIGTERM: the first asks for an orderly teardown that keeps finished runs, the
//! second stops at once.
//!
//! The lab's loops check [`interrupted`] between steps and while waiting; the first signal only
//! sets the flag. A second signal kills every local process group the lab started and exits with
//! status 130.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// Installs the handler for SIGINT and SIGTERM (once; later calls do nothing).
pub fn install() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let _ = ctrlc::set_handler(|| {
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        INTERRUPTED.store(true, Ordering::SeqCst);
        if n == 0 {
            tracing::warn!(
                "interrupted: stopping the lab and keeping finished runs (press Ctrl-C again to stop at once)"
            );
        } else {
            tracing::warn!("stopping at once");
            crate::host::process_group::kill_all();
            // The runner will not get to write its final status: the folder must not stay
            // `running`.
            crate::store::mark_active("interrupted");
            std::process::exit(crate::error::EXIT_INTERRUPTED);
        }
    });
}

/// True once SIGINT or SIGTERM has been received.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Returns `Err(Interrupted)` once a signal has been received.
pub fn check() -> crate::Result<()> {
    if interrupted() {
        Err(crate::Error::Interrupted)
    } else {
        Ok(())
    }
}
