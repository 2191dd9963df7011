//! Building a run record from a measurement.

use crate::result::RunRecord;

use super::load::Measurement;

/// Builds a run record from a measurement.
#[allow(clippy::too_many_arguments)]
pub fn run_record(
    m: &Measurement,
    suite: &str,
    case: &str,
    gateway: &str,
    version: &str,
    version_detail: &str,
    repeat: u32,
    sequence: u32,
    started_unix_s: f64,
    driver: &str,
) -> RunRecord {
    RunRecord {
        schema: crate::result::RUN_SCHEMA.into(),
        suite: suite.into(),
        case: case.into(),
        gateway: gateway.into(),
        version: version.into(),
        version_detail: version_detail.into(),
        repeat,
        sequence,
        started_unix_s,
        load: m.outcome.result.clone(),
        rps_per_gateway_cpu_s: m.rps_per_gateway_cpu_s,
        cpu: m.cpu.clone(),
        flags: m.flags.clone(),
        load_command: m.outcome.command.clone(),
        driver: driver.into(),
        profile: None,
        burst: None,
        gateway_rss_bytes: m.gateway_rss_bytes,
        notes: m.notes.clone(),
        during: None,
    }
}
