//! Hosts reached over SSH (to be written).
