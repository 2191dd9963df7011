//! Hosts that are containers (to be written).
