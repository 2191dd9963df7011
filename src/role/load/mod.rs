//! The load generator role: wrk (closed loop), perflab's own open-loop generator, their output
//! parsers, and the latency histograms open-loop runs keep.

pub mod histogram;
pub mod open;
pub mod open_engine;
pub mod result;
pub mod series;
pub mod wrk;
pub mod wrk_parse;
