//! Statistics: combine results, bootstrap intervals, verdicts (to be written).

/// Placeholder until the statistics branch lands.
#[derive(Debug, Clone)]
pub struct CombinedRuns;

/// Placeholder.
pub fn combine(_runs: &[&crate::result::RunRecord]) -> Option<CombinedRuns> {
    None
}
