//! Parser for wrk 4.x output (to be written).
