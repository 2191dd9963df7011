//! Roles of a lab, each written once against [`crate::host::Host`].

pub mod gateway;
pub mod load;
pub mod lua_profiler;
pub mod ports;
pub mod postgres;
pub mod profiler;
pub mod upstream;
