//! Latency histograms: HdrHistogram (Gil Tene's High Dynamic Range histogram, through the
//! `hdrhistogram` crate) in microseconds, with 3 significant digits.
//!
//! Why a histogram and not percentiles: percentiles of several runs or several load hosts
//! cannot be averaged (the mean of two p99s is not the p99 of anything). Histograms can be
//! *added*: the merged histogram of two runs is exactly the histogram of all their samples, so
//! every percentile of a combination is read from the merge. The open-loop generator writes its
//! histogram in the crate's V2 serialised form (`latency.hdr` in a run's folder); the same bytes
//! are read back for reports and merges.

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

use super::result::LatencyMs;

/// Lowest recordable latency: 1 microsecond.
pub const LOWEST_US: u64 = 1;
/// Highest recordable latency: one hour, in microseconds (longer values saturate).
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Significant decimal digits kept (values are exact to 0.1%).
pub const SIGFIG: u8 = 3;

/// A latency histogram in microseconds.
pub type LatencyHistogram = Histogram<u64>;

/// An empty latency histogram with perflab's bounds and precision.
pub fn new_histogram() -> LatencyHistogram {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).expect("constant bounds are valid")
}

/// The histogram in the `hdrhistogram` crate's V2 serialised form.
pub fn encode(h: &LatencyHistogram) -> Vec<u8> {
    let mut out = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut out)
        .expect("serialising into memory cannot fail");
    out
}

/// Reads a histogram back from its V2 serialised form.
pub fn decode(bytes: &[u8]) -> Result<LatencyHistogram, String> {
    let mut h: LatencyHistogram = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("not a serialised HdrHistogram: {e:?}"))?;
    h.auto(true);
    Ok(h)
}

/// [`encode`] as base64 text (for JSON).
pub fn encode_base64(h: &LatencyHistogram) -> String {
    base64::engine::general_purpose::STANDARD.encode(encode(h))
}

/// [`decode`] from base64 text.
pub fn decode_base64(text: &str) -> Result<LatencyHistogram, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("bad base64 histogram: {e}"))?;
    decode(&bytes)
}

/// Adds histograms into one: the histogram of all their samples together. Histograms whose
/// values exceed the first one's range grow it, so nothing is lost.
pub fn merge<'a>(hs: impl IntoIterator<Item = &'a LatencyHistogram>) -> LatencyHistogram {
    let mut out = new_histogram();
    out.auto(true);
    for h in hs {
        out.add(h)
            .expect("auto-resizing histograms accept any values");
    }
    out
}

/// Milliseconds from a histogram value in microseconds.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The percentile `p` (0–100) in milliseconds; `None` for an empty histogram.
pub fn percentile_ms(h: &LatencyHistogram, p: f64) -> Option<f64> {
    (!h.is_empty()).then(|| ms(h.value_at_quantile(p / 100.0)))
}

/// The run's latency figures read from its histogram, in milliseconds.
pub fn latency_ms(h: &LatencyHistogram) -> LatencyMs {
    if h.is_empty() {
        return LatencyMs::default();
    }
    let mean = h.mean();
    let stdev = h.stdev();
    // Share of samples within one standard deviation of the mean, as wrk prints it.
    let lo = (mean - stdev).max(0.0) as u64;
    let hi = (mean + stdev) as u64;
    let within = h
        .iter_recorded()
        .filter(|v| (lo..=hi).contains(&v.value_iterated_to()))
        .map(|v| v.count_at_value())
        .sum::<u64>();
    LatencyMs {
        mean: mean / 1000.0,
        stdev: stdev / 1000.0,
        max: ms(h.max()),
        p50: percentile_ms(h, 50.0),
        p75: percentile_ms(h, 75.0),
        p90: percentile_ms(h, 90.0),
        p99: percentile_ms(h, 99.0),
        within_stdev_pct: Some(100.0 * within as f64 / h.len() as f64),
    }
}

/// Percentiles of all requests of several runs (or load hosts), read from their merged
/// histogram, in milliseconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MergedLatency {
    /// Requests in the merged histogram.
    pub requests: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Maximum.
    pub max: f64,
}

/// The percentiles of the merge of `hs`; `None` when they hold no sample.
pub fn merged_latency<'a>(
    hs: impl IntoIterator<Item = &'a LatencyHistogram>,
) -> Option<MergedLatency> {
    let h = merge(hs);
    Some(MergedLatency {
        requests: h.len(),
        p50: percentile_ms(&h, 50.0)?,
        p90: percentile_ms(&h, 90.0)?,
        p99: percentile_ms(&h, 99.0)?,
        p99_9: percentile_ms(&h, 99.9)?,
        max: ms(h.max()),
    })
}

/// One point of a percentile spectrum: the latency at or below which `percentile` percent of
/// requests completed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpectrumPoint {
    /// Percentile, 0–100.
    pub percentile: f64,
    /// Latency in milliseconds.
    pub latency_ms: f64,
}

/// The percentile spectrum (HdrHistogram's "percentile distribution"): points that get denser
/// towards the tail, 5 per halving of the distance to 100%, ending at the maximum.
pub fn spectrum(h: &LatencyHistogram) -> Vec<SpectrumPoint> {
    h.iter_quantiles(5)
        .map(|v| SpectrumPoint {
            percentile: 100.0 * v.quantile_iterated_to(),
            latency_ms: ms(v.value_iterated_to()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic, long-tailed sample (a linear congruential generator, no dependency).
    fn samples(seed: u64, n: usize) -> Vec<u64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                // Pareto-like tail: mostly ~200 µs, some up to seconds.
                (200.0 / (1.0 - u).max(1e-6).powf(0.7)) as u64
            })
            .collect()
    }

    fn hist(v: &[u64]) -> LatencyHistogram {
        let mut h = new_histogram();
        for &x in v {
            h.record(x).unwrap();
        }
        h
    }

    #[test]
    fn merging_two_runs_equals_the_histogram_of_all_samples() {
        let a = samples(1, 20_000);
        let b: Vec<u64> = samples(2, 5_000).iter().map(|x| x * 7).collect();
        let (ha, hb) = (hist(&a), hist(&b));
        let merged = merge([&ha, &hb]);
        let all: Vec<u64> = a.iter().chain(&b).copied().collect();
        let concatenated = hist(&all);
        assert_eq!(
            merged.len(),
            ha.len() + hb.len(),
            "merged counts are the sum"
        );
        for p in [50.0, 90.0, 99.0, 99.9, 100.0] {
            assert_eq!(
                percentile_ms(&merged, p),
                percentile_ms(&concatenated, p),
                "p{p} of the merge equals p{p} of the concatenated samples"
            );
        }
        // And the mean of the two runs' p99s is not the p99 of both (why we merge).
        let avg = (percentile_ms(&ha, 99.0).unwrap() + percentile_ms(&hb, 99.0).unwrap()) / 2.0;
        assert_ne!(Some(avg), percentile_ms(&merged, 99.0));
    }

    #[test]
    fn merged_p99_matches_the_exact_sample_p99_within_the_histogram_precision() {
        let a = samples(3, 10_000);
        let b = samples(4, 10_000);
        let merged = merge([&hist(&a), &hist(&b)]);
        let mut all: Vec<u64> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        // Nearest-rank p99 of the raw samples.
        let exact = all[(0.99 * all.len() as f64).ceil() as usize - 1] as f64 / 1000.0;
        let got = percentile_ms(&merged, 99.0).unwrap();
        assert!(
            (got - exact).abs() <= exact * 1e-3,
            "p99 {got} ms vs exact {exact} ms"
        );
    }

    #[test]
    fn serialised_form_round_trips() {
        let h = hist(&samples(5, 1000));
        assert_eq!(decode(&encode(&h)).unwrap(), h);
        assert_eq!(decode_base64(&encode_base64(&h)).unwrap(), h);
        assert!(decode(b"nonsense").is_err());
    }

    #[test]
    fn latency_figures_and_spectrum_come_from_the_histogram() {
        let h = hist(&[1000, 2000, 3000, 4000]);
        let l = latency_ms(&h);
        // Values are exact to 3 significant digits (a bucket's edge).
        let near = |a: f64, b: f64| (a - b).abs() <= b * 1e-3;
        assert!(near(l.mean, 2.5) && near(l.max, 4.0), "{l:?}");
        assert_eq!(l.p50, Some(2.0));
        let s = spectrum(&h);
        assert!(near(s.last().unwrap().latency_ms, 4.0));
        assert!(s.windows(2).all(|w| w[0].percentile <= w[1].percentile));
    }
}
