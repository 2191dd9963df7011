//! The Kong gateway adapter (to be written).
