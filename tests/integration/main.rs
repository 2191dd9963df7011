//! perflab's integration tests: one test binary, one module per area.
//!
//! One binary links the library once (seventeen binaries linked it seventeen times) and lets the
//! tests that put load on the machine share one lock ([`util::load_lock`]): a lock per binary
//! serialised only the tests of that binary. Shared helpers (the lab harness, free ports, JSON,
//! skip messages) live in [`util`]. Layout, the lock, the skip rules and the environment
//! variables that enable live tests are described in docs/testing.md.

mod util;

mod ci_workflows;
mod cli_docs;
mod cli_profile;
mod compare;
mod docker;
mod e2e;
mod html_report;
mod kong;
mod nix_image;
mod openloop;
mod postgres;
mod profiler;
mod reproduce;
mod robustness;
mod schema;
mod session;
mod terraform;
