//! Readiness: when a started Kong routes every path the load may use, on every worker.

use std::path::Path;
use std::time::Duration;

use super::conf;
use crate::host::{Host, poll_until};

/// How often each Kong worker rebuilds its router from the database when
/// `worker_consistency = eventual` (Kong's default): `worker_state_update_frequency`, 5 s by
/// default (kong/templates/kong_defaults.lua; the rebuild timer in kong/runloop/handler.lua).
/// Workers rebuild on their own timers, so one routed request says nothing about the others.
pub(crate) fn router_rebuild_interval(conf: &conf::KongConf) -> Duration {
    let secs = conf
        .get("worker_state_update_frequency")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(5.0);
    Duration::from_secs_f64(secs)
}

/// Whether a request to `url` reached a route: any answer but 404 ("no Route matched") and 5xx.
fn is_routed(load_host: &dyn Host, url: &str) -> bool {
    matches!(load_host.http_status(url, Duration::from_secs(2)), Ok(code) if code != 404 && code < 500)
}

/// Waits until every path of `paths` is routed at `uri`, then waits one router `rebuild`
/// interval (every worker has rebuilt since) and checks every path once more. `Err` is the
/// first URL that was not routed within `timeout`, or before `alive` said the instance ended.
pub(crate) fn wait_routed(
    load_host: &dyn Host,
    uri: &str,
    paths: &[String],
    timeout: Duration,
    rebuild: Duration,
    alive: &mut dyn FnMut() -> bool,
) -> std::result::Result<(), String> {
    if paths.is_empty() {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + timeout;
    for pass in 0..2 {
        if pass == 1 {
            std::thread::sleep(rebuild + Duration::from_millis(500));
        }
        for path in paths {
            let url = format!("{uri}{path}");
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let routed = poll_until(left, Duration::from_millis(250), || {
                if !alive() {
                    return Some(false);
                }
                is_routed(load_host, &url).then_some(true)
            });
            if routed != Some(true) {
                return Err(url);
            }
        }
    }
    Ok(())
}

pub(crate) fn tail(host: &dyn Host, path: &Path) -> String {
    host.read_file(path)
        .map(|b| {
            let t = String::from_utf8_lossy(&b);
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        })
        .unwrap_or_default()
}
