//! The terraform driver (to be written).
