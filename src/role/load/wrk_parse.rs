//! Parser for wrk 4.x output (to be written).

/// Placeholder until the real parser lands (replaced by the wrk parser branch).
#[derive(Debug, thiserror::Error)]
#[error("wrk output not parsed")]
pub struct WrkParseError;

impl From<WrkParseError> for crate::Error {
    fn from(e: WrkParseError) -> Self {
        crate::Error::Load(e.to_string())
    }
}

/// Placeholder.
pub fn parse(text: &str) -> Result<crate::result::LoadResult, WrkParseError> {
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or(WrkParseError)?;
    Ok(crate::result::LoadResult { rps, ..Default::default() })
}
