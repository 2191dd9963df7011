//! The docker driver (to be written).
