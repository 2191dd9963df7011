//! SVG charts (to be written).
