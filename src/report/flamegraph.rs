//! Flame graphs from folded stacks (to be written).
