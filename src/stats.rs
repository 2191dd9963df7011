//! Statistics: combine results, bootstrap intervals, verdicts (to be written).
