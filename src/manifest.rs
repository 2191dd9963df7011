//! `manifest.json`: what an invocation asked for, the environment it ran in and how it ended.
//!
//! # Why typed
//!
//! `perflab reproduce`, `history` and the reports read manifests back, often ones written by an
//! older perflab. As structs with serde defaults, a field an old folder lacks loads as its
//! default instead of a missed `Value` lookup deep in a reader, and what a manifest holds is
//! written down once (here, with the JSON schema in docs/manifest.schema.json). The driver's
//! facts stay free-form: each driver describes itself with its own keys.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;
use crate::role::gateway::GatewayKind;
use crate::suite::Overrides;

/// The schema identifier of `manifest.json`.
pub const MANIFEST_SCHEMA: &str = "perflab.manifest/1";

/// What an invocation asked for and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_SCHEMA`].
    pub schema: String,
    /// perflab's version.
    pub perflab_version: String,
    /// The command that made the folder.
    pub kind: InvocationKind,
    /// The command line.
    pub command: Vec<String>,
    /// Suite name.
    pub suite: String,
    /// Case ids in the plan.
    pub cases: Vec<String>,
    /// Versions, baseline first.
    pub versions: Vec<String>,
    /// Driver.
    pub driver: crate::driver::DriverKind,
    /// Driver facts ([`crate::driver::Driver::describe`]: each driver's own keys; `null` until
    /// the driver is set up).
    pub driver_info: serde_json::Value,
    /// The resolved options (overrides, pinning, thresholds).
    pub options: ManifestOptions,
    /// Runs planned.
    pub runs_planned: usize,
    /// Start time (Unix seconds).
    pub started_unix_s: f64,
    /// End time, once finished.
    pub finished_unix_s: Option<f64>,
    /// `running`, `complete`, `interrupted` or `failed: <reason>`.
    pub status: String,
    /// The environment fingerprint (`null` until the driver's hosts exist).
    pub fingerprint: Option<Fingerprint>,
    /// The resolved cases (overrides applied), so the runs can be reproduced.
    #[serde(default)]
    pub case_specs: Vec<crate::suite::Case>,
    /// The resolved versions.
    #[serde(default)]
    pub version_specs: Vec<crate::version::Version>,
    /// Pinning, cool-down and driver settings needed to reproduce (secret values redacted).
    #[serde(default)]
    pub driver_options: crate::driver::DriverOptions,
    /// Runs during which the gateway died, one line each (run folder: what died). Such runs are
    /// kept, flagged `gateway_died` and left out of the statistics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_deaths: Vec<String>,
}

/// The command that made a results folder (`manifest.json`'s `kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum InvocationKind {
    /// `perflab suite`.
    #[default]
    Suite,
    /// `perflab compare`.
    Compare,
    /// The A/A folder of `perflab calibrate` (or `compare --calibrate`).
    Calibrate,
    /// `perflab capacity`.
    Capacity,
    /// `perflab reproduce`.
    Reproduce,
}

crate::names::impl_names!(InvocationKind => "invocation kind");

/// The resolved options an invocation ran with (`manifest.json`'s `options`). Every field has a
/// default, so manifests from older perflab versions load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ManifestOptions {
    /// `--tags`.
    pub tags: Vec<String>,
    /// `--gateway`: the kind every gateway case ran against.
    pub gateway: Option<GatewayKind>,
    /// Overrides of the cases' load options.
    pub overrides: Option<Overrides>,
    /// Whether the gateway and the load generator were pinned to separate CPUs.
    pub pin_cpus: Option<bool>,
    /// `--cooldown-max`, seconds.
    pub cooldown_max_s: Option<f64>,
    /// `--noisy-pct`.
    pub noisy_background_pct: Option<f64>,
    /// `--driver-opt` as given (secret values redacted).
    pub driver_options: Vec<String>,
    /// `perflab reproduce`: the results folder reproduced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reproducing: Option<PathBuf>,
    /// `perflab reproduce`: the options that folder recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_options: Option<Box<ManifestOptions>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A results folder written by perflab before the manifest was typed (a real local run:
    /// one baseline and one nginx case, two repeats each).
    const BEFORE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/results/suite-before-typed"
    );

    #[test]
    fn a_folder_written_before_the_types_loads_and_round_trips_exactly() {
        let text = std::fs::read_to_string(format!("{BEFORE}/manifest.json")).unwrap();
        let m: Manifest = serde_json::from_str(&text).unwrap();
        assert_eq!(m.driver, crate::driver::DriverKind::Local);
        assert_eq!(m.options.pin_cpus, Some(false));
        let fp = m.fingerprint.as_ref().unwrap();
        assert_eq!(fp.hosts["gateway"].cpus_online, Some(2));
        assert!(fp.tools["gateway"]["wrk"].found);
        assert_eq!(m.case_specs[1].gateway, GatewayKind::Nginx);
        // Every field the old perflab wrote comes back with the same name and value.
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_value(&m).unwrap(), original);
        let store = crate::store::Store::open(std::path::Path::new(BEFORE)).unwrap();
        assert_eq!(store.manifest().unwrap(), m);
        let runs = store.load_runs().unwrap();
        assert_eq!(runs.len(), 4);
        assert!(runs.iter().any(|r| r.gateway == "nginx"));
    }

    #[test]
    fn the_schema_lists_every_invocation_kind() {
        let schema: serde_json::Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/manifest.schema.json"
        )))
        .unwrap();
        let listed: Vec<String> =
            serde_json::from_value(schema["properties"]["kind"]["enum"].clone()).unwrap();
        assert_eq!(listed, crate::names::names::<InvocationKind>());
    }

    #[test]
    fn a_manifest_without_the_newer_fields_loads_with_defaults() {
        let m: Manifest = serde_json::from_value(serde_json::json!({
            "schema": "perflab.manifest/1", "perflab_version": "0.1.0", "kind": "suite",
            "command": ["perflab"], "suite": "rps", "cases": [], "versions": [],
            "driver": "docker", "driver_info": null, "options": {"tags": ["a"]},
            "runs_planned": 0, "started_unix_s": 1.0, "finished_unix_s": null,
            "status": "running", "fingerprint": {"hosts": {"gateway": {"kernel": "6.1"}}},
        }))
        .unwrap();
        assert_eq!(m.options.tags, ["a"]);
        assert_eq!(m.options.overrides, None);
        let fp = m.fingerprint.unwrap();
        assert_eq!(fp.hosts["gateway"].kernel.as_deref(), Some("6.1"));
        assert_eq!(fp.hosts["gateway"].container, None);
        assert!(m.case_specs.is_empty());
    }
}
