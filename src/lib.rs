//! perflab: a reproducible benchmark lab for HTTP API gateways.
//!
//! Drivers ([`driver`]) hand out hosts ([`host`]); roles ([`role`]) — upstream, gateway, load
//! generator, profiler, database — are written once against a host. The [`session`] API offers
//! the verbs of Kong's performance testing framework; the suite runner and the CLI are its
//! clients. Results go to the [`store`], statistics live in [`stats`], and reports re-render from
//! the store. The modules form layers, lowest first in [`layering::LAYERS`] (kept by a test):
//! nothing uses a module above its own layer.

pub mod capacity;
pub mod cleanup;
pub mod doctor;
pub mod driver;
pub mod during;
pub mod engine;
pub mod entities;
pub mod error;
pub mod fingerprint;
pub mod flamegraph;
pub mod host;
pub mod http;
pub mod image;
pub mod install;
pub mod journal;
pub mod layering;
pub mod manifest;
pub mod multiplex;
pub mod names;
pub mod progress;
pub mod redact;
pub mod report;
pub mod reproduce;
pub mod result;
pub mod role;
pub mod runner;
pub mod session;
pub mod signals;
pub mod stats;
pub mod store;
pub mod suite;
pub mod tools;
pub mod util;
pub mod version;

pub use error::{Error, Result};
pub use report::history;
