//! Helpers shared by every integration-test module.
