//! The load as a time series: responses, errors and a latency histogram per 100 ms, recorded
//! by wrk itself for runs with actions during load.
//!
//! Why: wrk reports one summary for the whole run, but "what did a reload do to the traffic?"
//! needs the load around the moment of the reload. wrk's Lua API has no per-request latency, so
//! the script stamps each request with the load host's monotonic clock (`X-Perflab-Sent`, in
//! `request()`), the lab's upstream echoes that header back (see
//! [`crate::role::upstream::ECHO_HEADER`]), and `response()` takes the difference. Each thread
//! counts into a flat table (wrk 4.1 copies flat tables between its Lua states, and crashes on
//! nested ones), and `done()` merges the threads and writes the file this module parses.
//!
//! Costs: a `request()` function makes wrk build every request in Lua, so throughput in these
//! runs is lower than in plain runs; they answer the change-under-load question, not peak RPS.
//! Errors here are HTTP statuses ≥ 400 (wrk's "Non-2xx or 3xx"). Socket errors never reach
//! Lua, so the script also counts requests by the bucket they were *sent* in and how many of
//! those were answered: the difference is the requests lost to broken connections (and, in
//! the last buckets, those still in flight when wrk stopped). A user's `load.script` keeps working: its `setup`,
//! `request`, `response` and `done` are called from ours.

use std::collections::BTreeMap;
use std::path::Path;

/// Width of one bucket, in microseconds.
pub const BUCKET_US: u64 = 100_000;
/// Latency histogram bins per decade: bin `b` holds latencies from `10^(b/20)` to
/// `10^((b+1)/20)` µs (12% wide).
pub const BINS_PER_DECADE: f64 = 20.0;
/// The header that carries a request's send time.
pub const SENT_HEADER: &str = "X-Perflab-Sent";

/// The Lua appended to (or used instead of) the case's script; `@OUT@` is the output file.
const SCRIPT: &str = r#"
-- perflab: a time series of the load (responses, errors, latency per bucket).
do
  local ffi = require("ffi")
  pcall(ffi.cdef, "typedef struct { long tv_sec; long tv_nsec; } perflab_timespec; int clock_gettime(int, perflab_timespec *);")
  local ts = ffi.new("perflab_timespec")
  local function now_us()
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
  end
  local BUCKET_US = @BUCKET@
  local user_setup, user_request, user_response, user_done = setup, request, response, done
  local threads = {}
  local t0 = nil
  setup = function(thread)
    if t0 == nil then t0 = now_us() end
    table.insert(threads, thread)
    if user_setup then user_setup(thread) end
  end
  perflab_series = {}
  request = function()
    local r = user_request and user_request() or wrk.format()
    local now = now_us()
    local sent = math.floor(now / BUCKET_US) * 1000 + 998
    perflab_series[sent] = (perflab_series[sent] or 0) + 1
    return (string.gsub(r, "\r\n", "\r\n@HEADER@: " .. string.format("%d", now) .. "\r\n", 1))
  end
  response = function(status, headers, body)
    local now = now_us()
    local key = math.floor(now / BUCKET_US) * 1000
    perflab_series[key] = (perflab_series[key] or 0) + 1
    if status > 399 then perflab_series[key + 1] = (perflab_series[key + 1] or 0) + 1 end
    local sent = headers["@HEADER@"] or headers[string.lower("@HEADER@")]
    if sent then
      sent = tonumber(sent)
      local us = now - sent
      local bin = 0
      if us > 1 then bin = math.min(math.floor(math.log10(us) * @BINS@), 900) end
      perflab_series[key + 2 + bin] = (perflab_series[key + 2 + bin] or 0) + 1
      local answered = math.floor(sent / BUCKET_US) * 1000 + 999
      perflab_series[answered] = (perflab_series[answered] or 0) + 1
    end
    if user_response then return user_response(status, headers, body) end
  end
  done = function(summary, latency, requests)
    local merged = {}
    for _, t in ipairs(threads) do
      for k, v in pairs(t:get("perflab_series")) do merged[k] = (merged[k] or 0) + v end
    end
    local f = assert(io.open("@OUT@", "w"))
    f:write("perflab-series 1\nbucket_us ", BUCKET_US, "\nt0_us ", string.format("%d", t0 or 0), "\n")
    for k, v in pairs(merged) do f:write(string.format("%d %d\n", k, v)) end
    f:close()
    if user_done then return user_done(summary, latency, requests) end
  end
end
"#;

/// The wrk script for a run with a time series: the case's own script (if any), then ours,
/// which writes the series to `out` on the load host.
pub fn script(user: Option<&str>, out: &Path) -> String {
    let ours = SCRIPT
        .replace("@BUCKET@", &BUCKET_US.to_string())
        .replace("@BINS@", &BINS_PER_DECADE.to_string())
        .replace("@HEADER@", SENT_HEADER)
        .replace("@OUT@", &lua_escape(&out.display().to_string()));
    match user {
        Some(u) => format!("{u}\n{ours}"),
        None => ours,
    }
}

fn lua_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// One bucket of the series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    /// Start of the bucket, seconds after wrk started its threads.
    pub start_s: f64,
    /// Responses completed in the bucket.
    pub responses: u64,
    /// Of them, HTTP status ≥ 400.
    pub errors: u64,
    /// Requests sent in the bucket.
    pub sent: u64,
    /// Of the requests sent in the bucket, those whose timed answer came back. `sent −
    /// answered` were lost: their connection broke (a socket error) or the load ended first.
    pub answered: u64,
    /// Latency histogram: bin → responses (see [`BINS_PER_DECADE`]); responses without the
    /// echoed header are not in it.
    pub latency_bins: BTreeMap<u32, u64>,
}

/// A parsed series, buckets in time order (empty buckets left out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Bucket width, seconds.
    pub bucket_s: f64,
    /// The buckets.
    pub buckets: Vec<Bucket>,
}

/// Parses the file the script writes. `None` when it is not a series file.
pub fn parse(text: &str) -> Option<Series> {
    let mut lines = text.lines();
    if lines.next()? != "perflab-series 1" {
        return None;
    }
    let bucket_us: u64 = lines
        .next()?
        .strip_prefix("bucket_us ")?
        .trim()
        .parse()
        .ok()?;
    let t0_us: u64 = lines.next()?.strip_prefix("t0_us ")?.trim().parse().ok()?;
    let mut by_bucket: BTreeMap<u64, Bucket> = BTreeMap::new();
    for line in lines {
        let (k, v) = line.split_once(' ')?;
        let (k, v): (u64, u64) = (k.parse().ok()?, v.trim().parse().ok()?);
        let (bucket, slot) = (k / 1000, k % 1000);
        let b = by_bucket.entry(bucket).or_default();
        match slot {
            0 => b.responses += v,
            1 => b.errors += v,
            998 => b.sent += v,
            999 => b.answered += v,
            bin => *b.latency_bins.entry(bin as u32 - 2).or_default() += v,
        }
    }
    let buckets = by_bucket
        .into_iter()
        .map(|(bucket, mut b)| {
            b.start_s = (bucket * bucket_us) as f64 / 1e6 - t0_us as f64 / 1e6;
            b
        })
        .collect();
    Some(Series {
        bucket_s: bucket_us as f64 / 1e6,
        buckets,
    })
}

/// The latency, in milliseconds, at quantile `q` (0..1) of a histogram: the geometric middle of
/// the bin where the cumulative count reaches `q` (so within 6% of the true value). `None` for
/// an empty histogram.
pub fn quantile_ms(bins: &BTreeMap<u32, u64>, q: f64) -> Option<f64> {
    let total: u64 = bins.values().sum();
    if total == 0 {
        return None;
    }
    let target = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (bin, n) in bins {
        seen += n;
        if seen >= target {
            return Some(10f64.powf((*bin as f64 + 0.5) / BINS_PER_DECADE) / 1000.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buckets_relative_to_the_start() {
        let text = "perflab-series 1\nbucket_us 100000\nt0_us 1050000\n\
                    10000 7\n10001 2\n10062 5\n10065 2\n10998 9\n10999 7\n11000 3\n11062 3\n";
        let s = parse(text).unwrap();
        assert_eq!(s.bucket_s, 0.1);
        assert_eq!(s.buckets.len(), 2);
        assert!((s.buckets[0].start_s - (-0.05)).abs() < 1e-9);
        assert_eq!((s.buckets[0].responses, s.buckets[0].errors), (7, 2));
        assert_eq!(s.buckets[0].latency_bins.get(&60), Some(&5));
        assert_eq!((s.buckets[0].sent, s.buckets[0].answered), (9, 7));
        assert!((s.buckets[1].start_s - 0.05).abs() < 1e-9);
        assert!(parse("not a series").is_none());
    }

    #[test]
    fn quantiles_come_from_the_bins() {
        // 99 responses near 1 ms (bin 60: 1.000–1.122 ms), one near 100 ms (bin 100).
        let bins = BTreeMap::from([(60, 99), (100, 1)]);
        let p50 = quantile_ms(&bins, 0.5).unwrap();
        assert!((1.0..1.13).contains(&p50), "{p50}");
        let p99 = quantile_ms(&bins, 0.99).unwrap();
        assert!((1.0..1.13).contains(&p99), "{p99}");
        let max = quantile_ms(&bins, 1.0).unwrap();
        assert!((100.0..112.3).contains(&max), "{max}");
        assert_eq!(quantile_ms(&BTreeMap::new(), 0.5), None);
    }
}
