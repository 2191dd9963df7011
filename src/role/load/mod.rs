//! The load generator role (wrk) and its output parser.

pub mod series;
pub mod wrk;
pub mod wrk_parse;
