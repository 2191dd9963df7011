//! The committed JSON schemas (`docs/result.schema.json`, `docs/manifest.schema.json`) checked
//! against real output: a real suite run through the `perflab` binary (real nginx, real wrk) and
//! `perflab import wrk` over the recorded wrk fixtures.
//!
//! The validator is a small subset of JSON Schema draft 2020-12, written here so no crate is
//! needed: `type` (a name or an array of names), `const`, `enum`, `required`, `properties`,
//! `additionalProperties` (`false` or a schema), `items`, `anyOf`, `minimum` and `$ref` (a JSON
//! pointer into the same document). A schema using any other keyword fails the tests, so the
//! schemas cannot silently rely on something this validator ignores.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::util::{
    FAST, Lab, PERFLAB, json, load_lock, only_results_folder, repo_path, results_folders, run_dirs,
};

/// Keywords that only annotate.
const ANNOTATIONS: &[&str] = &["$schema", "$id", "$defs", "title", "description"];

/// A schema document and the validator over it.
struct Schema {
    root: Value,
}

impl Schema {
    fn load(rel: &str) -> Schema {
        let p = repo_path(rel);
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        Schema {
            root: serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        }
    }

    /// The sub-schema at a `#/…` pointer.
    fn at(&self, reference: &str) -> &Value {
        let ptr = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local $refs are supported: {reference}"));
        self.root
            .pointer(ptr)
            .unwrap_or_else(|| panic!("$ref {reference} points nowhere"))
    }

    /// Validates `inst` against the whole document; returns every violation.
    fn check(&self, inst: &Value) -> Vec<String> {
        self.check_at("#", inst)
    }

    /// Validates `inst` against the sub-schema at `reference`.
    fn check_at(&self, reference: &str, inst: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        self.validate(self.at(reference), inst, "$", &mut errs);
        errs
    }

    fn validate(&self, schema: &Value, inst: &Value, path: &str, errs: &mut Vec<String>) {
        let s = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                errs.push(format!("{path}: no value is allowed here"));
                return;
            }
            Value::Object(s) => s,
            other => panic!("not a schema at {path}: {other}"),
        };
        for (k, v) in s {
            match k.as_str() {
                "$ref" => self.validate(self.at(v.as_str().unwrap()), inst, path, errs),
                "type" => {
                    let names: Vec<&str> = match v {
                        Value::String(n) => vec![n.as_str()],
                        Value::Array(a) => a.iter().map(|n| n.as_str().unwrap()).collect(),
                        other => panic!("bad type at {path}: {other}"),
                    };
                    if !names.iter().any(|n| has_type(inst, n)) {
                        errs.push(format!(
                            "{path}: expected {}, got {inst}",
                            names.join(" or ")
                        ));
                    }
                }
                "const" => {
                    if inst != v {
                        errs.push(format!("{path}: expected {v}, got {inst}"));
                    }
                }
                "enum" => {
                    if !v.as_array().unwrap().contains(inst) {
                        errs.push(format!("{path}: {inst} is not one of {v}"));
                    }
                }
                "minimum" => {
                    if let (Some(x), Some(min)) = (inst.as_f64(), v.as_f64())
                        && x < min
                    {
                        errs.push(format!("{path}: {x} is below the minimum {min}"));
                    }
                }
                "required" => {
                    if let Value::Object(o) = inst {
                        for name in v.as_array().unwrap() {
                            let name = name.as_str().unwrap();
                            if !o.contains_key(name) {
                                errs.push(format!(
                                    "{path}: required property \"{name}\" is missing"
                                ));
                            }
                        }
                    }
                }
                "properties" => {
                    if let Value::Object(o) = inst {
                        for (name, sub) in v.as_object().unwrap() {
                            if let Some(x) = o.get(name) {
                                self.validate(sub, x, &format!("{path}.{name}"), errs);
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Value::Object(o) = inst {
                        let known = s.get("properties").and_then(|p| p.as_object());
                        for (name, x) in o {
                            if known.is_some_and(|k| k.contains_key(name)) {
                                continue;
                            }
                            match v {
                                Value::Bool(false) => errs.push(format!(
                                    "{path}: property \"{name}\" is not in the schema"
                                )),
                                sub => self.validate(sub, x, &format!("{path}.{name}"), errs),
                            }
                        }
                    }
                }
                "items" => {
                    if let Value::Array(a) = inst {
                        for (i, x) in a.iter().enumerate() {
                            self.validate(v, x, &format!("{path}[{i}]"), errs);
                        }
                    }
                }
                "anyOf" => {
                    let mut all = Vec::new();
                    let ok = v.as_array().unwrap().iter().any(|sub| {
                        let mut e = Vec::new();
                        self.validate(sub, inst, path, &mut e);
                        all.extend(e.iter().cloned());
                        e.is_empty()
                    });
                    if !ok {
                        errs.push(format!(
                            "{path}: matches none of anyOf ({})",
                            all.join("; ")
                        ));
                    }
                }
                k if ANNOTATIONS.contains(&k) => {}
                other => panic!(
                    "schema keyword \"{other}\" at {path} is not supported by this validator"
                ),
            }
        }
    }
}

fn has_type(v: &Value, name: &str) -> bool {
    match name {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_u64() || v.is_i64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => panic!("unknown type name \"{other}\""),
    }
}

fn assert_valid(schema: &Schema, reference: &str, inst: &Value, what: &str) {
    let errs = schema.check_at(reference, inst);
    assert!(
        errs.is_empty(),
        "{what} does not match {reference}:\n  {}",
        errs.join("\n  ")
    );
}

/// The wrk fixtures `perflab import wrk` parses (connect-refused.txt is a failed run).
fn wrk_fixtures() -> Vec<PathBuf> {
    let dir = repo_path("tests/fixtures/wrk");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .filter(|p| !p.ends_with("connect-refused.txt"))
        .collect();
    v.sort();
    assert!(v.len() >= 5, "wrk fixtures missing in {}", dir.display());
    v
}

#[test]
fn a_real_suite_run_matches_the_committed_schemas() {
    let _g = load_lock();
    let result_schema = Schema::load("docs/result.schema.json");
    let manifest_schema = Schema::load("docs/manifest.schema.json");
    let lab = Lab::new();
    let output = lab.output();
    // simple-proxy through nginx, and the baseline case (no gateway: the nullable CPU fields).
    let out = lab
        .perflab()
        .args([
            "suite",
            "rps",
            "--tags",
            "simple-proxy,baseline",
            "--gateway",
            "nginx",
        ])
        .args(FAST)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "perflab suite failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let folders = results_folders(&output);
    assert_eq!(
        folders.len(),
        1,
        "one results folder per invocation: {folders:?}"
    );
    let root = &folders[0];
    assert!(
        root.file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with("-rps"),
        "{}",
        root.display()
    );

    let manifest = json(&root.join("manifest.json"));
    assert_valid(&manifest_schema, "#", &manifest, "manifest.json");
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["runs_planned"], 2);

    let mut runs: Vec<PathBuf> = std::fs::read_dir(root.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let mut gateways = Vec::new();
    for dir in &runs {
        for f in [
            "result.json",
            "wrk.txt",
            "upstream-error.log",
            "config/upstream-nginx.conf",
        ] {
            assert!(dir.join(f).is_file(), "{} has no {f}", dir.display());
        }
        let rec = json(&dir.join("result.json"));
        assert_valid(
            &result_schema,
            "#",
            &rec,
            &dir.join("result.json").display().to_string(),
        );
        // The flattened LoadResult part also matches the LoadResult definition on its own.
        let load: serde_json::Map<String, Value> = rec
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| {
                result_schema
                    .at("#/$defs/LoadResult/properties")
                    .get(k)
                    .is_some()
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_valid(
            &result_schema,
            "#/$defs/LoadResult",
            &Value::Object(load),
            "load part",
        );
        assert!(rec["requests"].as_u64().unwrap() > 0, "{rec}");
        gateways.push((rec["gateway"].clone(), rec["cpu"]["gateway_s"].clone()));
    }
    // The baseline run has no gateway CPU; the nginx run has some.
    assert!(
        gateways.iter().any(|(g, s)| g == "baseline" && s.is_null()),
        "{gateways:?}"
    );
    assert!(
        gateways.iter().any(|(g, s)| g == "nginx" && s.is_number()),
        "{gateways:?}"
    );
    for f in ["summary.md", "summary.json", "charts/rps.svg"] {
        assert!(root.join(f).is_file(), "{} has no {f}", root.display());
    }
}

/// A run with actions during load (a reload, an HTTP request, a scrape on real nginx) writes a
/// `during` object that matches the schema.
#[test]
fn a_run_with_actions_during_load_matches_the_schema() {
    let _g = load_lock();
    let result_schema = Schema::load("docs/result.schema.json");
    let lab = Lab::new();
    let suite = lab.path("suites/during");
    std::fs::create_dir_all(&suite).unwrap();
    std::fs::write(
        suite.join("reload.toml"),
        r#"
[case]
name = "reload"
gateway = "nginx"
[case.load]
duration = 3
connections = 10
threads = 1
[[case.during]]
at = 1
action = "reload"
[[case.during]]
at = 1.5
action = "http"
method = "PUT"
path = "/perflab-health"
port = "proxy"
[[case.during]]
at = 2
action = "scrape"
path = "/perflab-health"
port = "proxy"
"#,
    )
    .unwrap();
    let output = lab.output();
    let out = lab
        .perflab()
        .arg("suite")
        .arg(&suite)
        .args([
            "--repeat",
            "1",
            "--warmup",
            "0",
            "--cooldown-max",
            "0",
            "--plain",
        ])
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = run_dirs(&only_results_folder(&output))[0].clone();
    let rec = json(&run.join("result.json"));
    assert_valid(&result_schema, "#", &rec, "result.json with during");
    let actions = rec["during"]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 3, "{rec}");
    assert!(rec["during"]["outside"].is_object(), "{rec}");
}

#[test]
fn import_wrk_output_matches_the_load_result_definition() {
    let schema = Schema::load("docs/result.schema.json");
    let files = wrk_fixtures();
    let out = Command::new(PERFLAB)
        .args(["import", "wrk"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let all = all.as_array().expect("several files print an array");
    assert_eq!(all.len(), files.len());
    for (f, v) in files.iter().zip(all) {
        assert_valid(&schema, "#/$defs/LoadResult", v, &f.display().to_string());
    }
    // One file prints one object.
    let out = Command::new(PERFLAB)
        .args(["import", "wrk"])
        .arg(&files[0])
        .output()
        .unwrap();
    let one: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(one.is_object());
    assert_valid(&schema, "#/$defs/LoadResult", &one, "single import");
    // A failed wrk run is a lab failure (exit status 4), as docs/cli.md says.
    let refused = repo_path("tests/fixtures/wrk/connect-refused.txt");
    let out = Command::new(PERFLAB)
        .args(["import", "wrk"])
        .arg(refused)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_run_record_repeats_every_load_result_field_unchanged() {
    // result.json flattens LoadResult into the record; the schema's top level must list every
    // LoadResult property (by reference, so the two cannot drift) and require all of them.
    let schema = Schema::load("docs/result.schema.json");
    let load = schema.at("#/$defs/LoadResult");
    let top = schema.at("#/properties").as_object().unwrap();
    let required = schema.at("#/required").as_array().unwrap();
    for name in load["properties"].as_object().unwrap().keys() {
        assert_eq!(
            top.get(name),
            Some(&serde_json::json!({ "$ref": format!("#/$defs/LoadResult/properties/{name}") })),
            "top-level property {name}"
        );
        assert!(
            required.contains(&Value::String(name.clone())),
            "{name} not required"
        );
    }
}

#[test]
fn the_validator_rejects_what_the_schema_forbids() {
    let schema = Schema::load("docs/result.schema.json");
    let out = Command::new(PERFLAB)
        .args(["import", "wrk"])
        .arg(repo_path("tests/fixtures/wrk/latency.txt"))
        .output()
        .unwrap();
    let good: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema.check_at("#/$defs/LoadResult", &good).is_empty());

    let mut wrong_type = good.clone();
    wrong_type["rps"] = Value::String("fast".into());
    let errs = schema.check_at("#/$defs/LoadResult", &wrong_type);
    assert!(
        errs.iter().any(|e| e.contains("$.rps: expected number")),
        "{errs:?}"
    );

    let mut float_count = good.clone();
    float_count["errors"]["timeout"] = serde_json::json!(1.5);
    let errs = schema.check_at("#/$defs/LoadResult", &float_count);
    assert!(
        errs.iter()
            .any(|e| e.contains("$.errors.timeout: expected integer")),
        "{errs:?}"
    );

    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("requests");
    let errs = schema.check_at("#/$defs/LoadResult", &missing);
    assert!(
        errs.iter().any(|e| e.contains("\"requests\" is missing")),
        "{errs:?}"
    );

    let mut null_mean = good.clone();
    null_mean["latency_ms"]["mean"] = Value::Null;
    let errs = schema.check_at("#/$defs/LoadResult", &null_mean);
    assert!(
        errs.iter().any(|e| e.contains("$.latency_ms.mean")),
        "{errs:?}"
    );

    let mut extra = good.clone();
    extra["surprise"] = Value::Bool(true);
    let errs = schema.check_at("#/$defs/LoadResult", &extra);
    assert!(
        errs.iter()
            .any(|e| e.contains("\"surprise\" is not in the schema")),
        "{errs:?}"
    );

    let mut bad_thread = good.clone();
    bad_thread["thread_rps"] = serde_json::json!({ "mean": 1.0 });
    let errs = schema.check_at("#/$defs/LoadResult", &bad_thread);
    assert!(errs.iter().any(|e| e.contains("anyOf")), "{errs:?}");

    // The load part alone is not a run record (the record's own fields are required).
    let errs = schema.check(&good);
    assert!(
        errs.iter().any(|e| e.contains("\"schema\" is missing")),
        "{errs:?}"
    );
    let manifest = Schema::load("docs/manifest.schema.json");
    let errs = manifest.check(&serde_json::json!({ "schema": "perflab.manifest/2" }));
    assert!(
        errs.iter()
            .any(|e| e.contains("expected \"perflab.manifest/1\"")),
        "{errs:?}"
    );
}

#[test]
fn bad_input_exits_with_status_2() {
    let out = Command::new(PERFLAB)
        .args(["suite", "no-such-suite"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown suite \"no-such-suite\"") && err.contains("rps"),
        "{err}"
    );
    let out = Command::new(PERFLAB)
        .args(["suite", "rps", "--tags", "no-such-tag"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_open_loop_run_matches_the_committed_schema() {
    let _g = load_lock();
    let result_schema = Schema::load("docs/result.schema.json");
    let lab = Lab::new();
    let output = lab.output();
    let out = lab
        .perflab()
        .args([
            "suite",
            "rps",
            "--tags",
            "simple-proxy",
            "--gateway",
            "nginx",
        ])
        .args(["--rate", "300", "--connections", "10", "--threads", "1"])
        .args(["--duration", "1", "--repeat", "1", "--warmup", "0"])
        .args(["--cooldown-max", "0", "--plain", "--output"])
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = run_dirs(&only_results_folder(&output))[0].clone();
    let rec = json(&run.join("result.json"));
    assert_valid(&result_schema, "#", &rec, "open-loop result.json");
    assert_eq!(rec["open_loop"]["rate_asked"], 300.0);
    assert!(run.join("latency.hdr").is_file() && run.join("open-load.json").is_file());
}
