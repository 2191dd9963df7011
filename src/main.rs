//! The `perflab` binary: parse arguments, run the command, map errors to documented exit codes.

mod cli;
mod commands;

use clap::Parser;

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
    let cli = cli::Cli::parse();
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = e
                .downcast_ref::<perflab::Error>()
                .map(|e| e.exit_code())
                .unwrap_or(perflab::error::EXIT_LAB);
            eprintln!("perflab: error: {e:#}");
            code
        }
    };
    std::process::exit(code);
}
