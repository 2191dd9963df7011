//! Small helpers with no knowledge of the lab: files, clocks, hashes, `/proc`.
//!
//! They sit at the bottom of the layering (`docs/architecture.md`): every other module may use
//! them, and they import nothing of perflab's, so a host, a role or a driver that needs to write
//! a file atomically does not have to depend on the results store to do it.

pub mod fs;
pub mod hash;
pub mod proc;
pub mod time;
