//! Exporters for comparison results (to be written).
