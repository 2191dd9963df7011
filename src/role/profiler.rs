//! The profiler role (to be written).
