//! Reports: charts, exporters and flame graphs, all re-renderable from the store.

pub mod charts;
pub mod export;
pub mod flamegraph;
