//! `json` → `compare.json`: the whole report, every comparison with its interval, verdict and
//! both summaries, under a schema identifier.

use serde::Serialize;

use super::{CompareReport, Exporter};

/// The schema identifier written at the top of `compare.json`.
pub const COMPARE_SCHEMA: &str = "perflab.compare/1";

/// Pretty-printed JSON of the [`CompareReport`] plus a `schema` field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

#[derive(Serialize)]
struct Doc<'a> {
    schema: &'static str,
    #[serde(flatten)]
    report: &'a CompareReport,
}

impl Exporter for Json {
    fn file_name(&self) -> &'static str {
        "compare.json"
    }

    fn render(&self, r: &CompareReport) -> String {
        let doc = Doc {
            schema: COMPARE_SCHEMA,
            report: r,
        };
        // Serialising plain structs of strings and finite numbers cannot fail.
        let mut s = serde_json::to_string_pretty(&doc).expect("report serialises");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::export::tests::sample;
    use serde_json::Value;

    #[test]
    fn fields_per_case_and_metric() {
        let r = sample();
        let v: Value = serde_json::from_str(&Json.render(&r)).unwrap();
        assert_eq!(v["schema"], "perflab.compare/1");
        assert_eq!(v["suite"], "smoke");
        assert_eq!(v["baseline"], "current");
        assert_eq!(v["candidates"][0], "git:abc");
        let case = &v["cases"][0];
        assert_eq!(case["case"], "simple");
        assert_eq!(case["excluded_runs"], 1);
        let m = &case["metrics"][0];
        assert_eq!(m["metric"], "rps");
        assert_eq!(m["verdict"], "slower");
        for k in ["ratio", "ci_low", "ci_high", "change_pct", "noise_band"] {
            assert!(m[k].is_f64(), "{k}: {m}");
        }
        assert_eq!(m["n_pairs"], 3);
        assert_eq!(m["baseline"]["mean"], 1000.0);
        assert_eq!(m["candidate"]["n"], 3);
        assert_eq!(case["metrics"][1]["verdict"], "no change");
        // The document reads back into the input model.
        let back: CompareReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
