//! Suites: TOML case files in `suites/<kind>/`, tag filters, and the expansion into a plan.
//!
//! One file describes one case: the upstream, the gateway kind(s) and entities, load options,
//! repeats and tags. A case that lists several gateways expands into one case per gateway
//! (`simple-proxy@nginx`, `simple-proxy@haproxy`). Every case is tagged with its own name and its
//! gateway kind, so `--tags simple-proxy` or `--tags haproxy` select as Kong's `#tags` did.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::entities::Entities;
use crate::role::gateway::GATEWAYS;
use crate::role::load::wrk::LoadOptions;
use crate::{Error, Result};

/// The upstream part of a case: a blob, or a table with more settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UpstreamSpec {
    /// Just the blob placed inside nginx's `server {}` block.
    Blob(String),
    /// Full settings.
    Table(UpstreamTable),
}

/// Upstream settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamTable {
    /// The blob placed inside nginx's `server {}` block.
    pub config: String,
    /// Number of consecutive ports (default 1).
    pub ports: Option<u16>,
    /// nginx worker processes (default 1).
    pub workers: Option<u32>,
    /// Serve a body of this many bytes at `/`.
    pub body_bytes: Option<usize>,
}

impl UpstreamSpec {
    /// As a table.
    pub fn table(&self) -> UpstreamTable {
        match self {
            UpstreamSpec::Blob(b) => UpstreamTable {
                config: b.clone(),
                ..Default::default()
            },
            UpstreamSpec::Table(t) => t.clone(),
        }
    }
}

impl Default for UpstreamSpec {
    fn default() -> Self {
        UpstreamSpec::Blob(String::new())
    }
}

/// A case as written in a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The case.
    pub case: CaseSpec,
}

/// One case as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    /// Name (unique in its suite).
    pub name: String,
    /// What it measures.
    #[serde(default)]
    pub description: String,
    /// Tags for `--tags`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// One gateway kind.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Several gateway kinds (the case runs once per kind).
    #[serde(default)]
    pub gateways: Vec<String>,
    /// The upstream.
    #[serde(default)]
    pub upstream: UpstreamSpec,
    /// Gateway entities.
    #[serde(default)]
    pub entities: Entities,
    /// Load options.
    #[serde(default)]
    pub load: LoadOptions,
    /// Repeats per version (default 3).
    #[serde(default)]
    pub repeats: Option<u32>,
    /// Gateway workers (default 1).
    #[serde(default)]
    pub workers: Option<u32>,
    /// Gateway-specific settings (e.g. Kong's `mode` and `kong_configs`).
    #[serde(default)]
    pub gateway_settings: toml::Table,
    /// Attach the profiler to the gateway for each run (flame graph suites).
    #[serde(default)]
    pub profile: bool,
}

/// A case ready to run: one gateway kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// `name@gateway` (just `name` for baseline).
    pub id: String,
    /// The name as written.
    pub name: String,
    /// Description.
    pub description: String,
    /// Tags (including the name and the gateway kind).
    pub tags: BTreeSet<String>,
    /// Gateway kind.
    pub gateway: String,
    /// Upstream settings.
    pub upstream: UpstreamTable,
    /// Entities.
    pub entities: Entities,
    /// Load options.
    pub load: LoadOptions,
    /// Repeats per version.
    pub repeats: u32,
    /// Gateway workers.
    pub workers: u32,
    /// Gateway-specific settings.
    pub gateway_settings: toml::Table,
    /// Profile each run.
    pub profile: bool,
    /// The file it came from.
    pub file: PathBuf,
}

/// A loaded suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Suite name (the directory's name).
    pub name: String,
    /// Where it was loaded from.
    pub dir: PathBuf,
    /// Its cases, sorted by file name, expanded per gateway.
    pub cases: Vec<Case>,
}

/// The line (1-based) of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses one case file into its cases (one per gateway kind).
pub fn parse_case_file(path: &Path, text: &str) -> Result<Vec<Case>> {
    let file: CaseFile = toml::from_str(text).map_err(|e| Error::SuiteFile {
        path: path.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
        message: e.message().to_string(),
    })?;
    let spec = file.case;
    let bad = |message: String| Error::SuiteFile {
        path: path.to_path_buf(),
        line: 0,
        message,
    };
    if spec.name.trim().is_empty() || spec.name.contains(['/', '@', ' ']) {
        return Err(bad(format!(
            "case name \"{}\" must be non-empty without '/', '@' or spaces",
            spec.name
        )));
    }
    let mut kinds = spec.gateways.clone();
    if let Some(g) = &spec.gateway {
        kinds.insert(0, g.clone());
    }
    if kinds.is_empty() {
        return Err(bad(format!(
            "case \"{}\" names no gateway: set `gateway = \"nginx\"` (or haproxy, kong, command, baseline)",
            spec.name
        )));
    }
    let mut out = Vec::new();
    for kind in kinds {
        if !GATEWAYS.contains(&kind.as_str()) {
            return Err(bad(format!(
                "unknown gateway \"{kind}\" in case \"{}\": expected one of {}",
                spec.name,
                GATEWAYS.join(", ")
            )));
        }
        spec.load
            .validate()
            .map_err(|e| bad(format!("case \"{}\": {e}", spec.name)))?;
        let mut tags: BTreeSet<String> = spec.tags.iter().cloned().collect();
        tags.insert(spec.name.clone());
        tags.insert(kind.clone());
        let id = if kind == "baseline" {
            spec.name.clone()
        } else {
            format!("{}@{kind}", spec.name)
        };
        tags.insert(id.clone());
        out.push(Case {
            id,
            name: spec.name.clone(),
            description: spec.description.clone(),
            tags,
            gateway: kind,
            upstream: spec.upstream.table(),
            entities: spec.entities.clone(),
            load: spec.load.clone(),
            repeats: spec.repeats.unwrap_or(3).max(1),
            workers: spec.workers.unwrap_or(1).max(1),
            gateway_settings: spec.gateway_settings.clone(),
            profile: spec.profile,
            file: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Where suites are looked for: `./suites`, `$PERFLAB_SUITES_DIR`, then the source tree's.
pub fn suite_roots() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("suites")];
    if let Ok(d) = std::env::var("PERFLAB_SUITES_DIR") {
        v.insert(0, PathBuf::from(d));
    }
    v.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("suites"));
    v
}

/// Loads a suite by name (`rps`) or by directory path.
pub fn load_suite(name_or_dir: &str) -> Result<Suite> {
    let as_path = Path::new(name_or_dir);
    let dir = if as_path.is_dir() && name_or_dir.contains('/') {
        as_path.to_path_buf()
    } else {
        suite_roots().into_iter().map(|r| r.join(name_or_dir)).find(|d| d.is_dir()).ok_or_else(|| {
            let known: BTreeSet<String> = suite_roots()
                .iter()
                .filter_map(|r| std::fs::read_dir(r).ok())
                .flat_map(|d| d.flatten())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            Error::Usage(format!(
                "unknown suite \"{name_or_dir}\": no directory suites/{name_or_dir}; known suites: {}",
                known.into_iter().collect::<Vec<_>>().join(", ")
            ))
        })?
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
        cases.extend(parse_case_file(&f, &text)?);
    }
    let mut seen = BTreeSet::new();
    for c in &cases {
        if !seen.insert(c.id.clone()) {
            return Err(Error::SuiteFile {
                path: c.file.clone(),
                line: 0,
                message: format!(
                    "case \"{}\" is defined twice in suite {}",
                    c.id,
                    dir.display()
                ),
            });
        }
    }
    if cases.is_empty() {
        return Err(Error::Usage(format!(
            "suite {} has no case files (*.toml)",
            dir.display()
        )));
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name_or_dir.to_string());
    Ok(Suite { name, dir, cases })
}

/// Keeps the cases having any of `tags`; an unknown tag is an error that lists the known ones.
pub fn filter_tags(cases: Vec<Case>, tags: &[String]) -> Result<Vec<Case>> {
    if tags.is_empty() {
        return Ok(cases);
    }
    let known: BTreeSet<&String> = cases.iter().flat_map(|c| c.tags.iter()).collect();
    if let Some(t) = tags.iter().find(|t| !known.contains(t)) {
        return Err(Error::Usage(format!(
            "no case has tag \"{t}\"; known tags: {}",
            known.into_iter().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(cases
        .into_iter()
        .filter(|c| tags.iter().any(|t| c.tags.contains(t)))
        .collect())
}

/// Restricts every gateway case to one kind (`--gateway`); baseline cases stay.
pub fn override_gateway(cases: Vec<Case>, kind: &str) -> Result<Vec<Case>> {
    if !GATEWAYS.contains(&kind) {
        return Err(Error::Usage(format!(
            "unknown gateway \"{kind}\": expected one of {}",
            GATEWAYS.join(", ")
        )));
    }
    let mut out: Vec<Case> = Vec::new();
    for mut c in cases {
        if c.gateway == "baseline" {
            out.push(c);
        } else if out
            .iter()
            .all(|o| o.name != c.name || o.gateway == "baseline")
        {
            c.tags.remove(&c.gateway);
            c.tags.remove(&c.id);
            c.gateway = kind.to_string();
            c.id = format!("{}@{kind}", c.name);
            c.tags.insert(kind.to_string());
            c.tags.insert(c.id.clone());
            out.push(c);
        }
    }
    Ok(out)
}

/// One run in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Index into the plan's cases.
    pub case: usize,
    /// Index into the plan's versions.
    pub version: usize,
    /// 1-based repeat.
    pub repeat: u32,
    /// Attach the profiler (such runs are kept out of the statistics).
    #[serde(default)]
    pub profile: bool,
}

/// Runs in order: per case, per repeat, every version in turn (A B A B …), so slow drifts of
/// the machine hit all versions alike and adjacent runs can be paired. Cases marked `profile`
/// profile every run; with `extra_profiled`, each case ends with one more, profiled, run per
/// version (for flame graphs that do not disturb the measured runs).
pub fn interleave(cases: &[Case], versions: usize, extra_profiled: bool) -> Vec<PlannedRun> {
    let mut v = Vec::new();
    for (ci, c) in cases.iter().enumerate() {
        let versions_here = if c.gateway == "baseline" { 1 } else { versions };
        for repeat in 1..=c.repeats {
            for version in 0..versions_here {
                v.push(PlannedRun {
                    case: ci,
                    version,
                    repeat,
                    profile: c.profile,
                });
            }
        }
        if extra_profiled && !c.profile {
            for version in 0..versions_here {
                v.push(PlannedRun {
                    case: ci,
                    version,
                    repeat: c.repeats + 1,
                    profile: true,
                });
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASE: &str = "[case]\nname = \"simple-proxy\"\ngateways = [\"nginx\", \"haproxy\"]\nrepeats = 2\n[case.load]\nconnections = 10\nthreads = 2\n";

    #[test]
    fn expands_per_gateway_with_tags() {
        let cases = parse_case_file(Path::new("x.toml"), CASE).unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[1].id, "simple-proxy@haproxy");
        assert!(cases[1].tags.contains("haproxy") && cases[1].tags.contains("simple-proxy"));
        assert_eq!(cases[0].load.duration, 10.0);
    }

    #[test]
    fn malformed_file_names_the_line() {
        let e = parse_case_file(
            Path::new("bad.toml"),
            "[case]\nname = \"x\"\ngateway = nginx\n",
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("bad.toml:3:"), "{s}");
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
    }

    #[test]
    fn unknown_gateway_and_bad_load_are_refused() {
        let e = parse_case_file(
            Path::new("a.toml"),
            "[case]\nname = \"x\"\ngateway = \"envoyy\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown gateway \"envoyy\""), "{e}");
        let e = parse_case_file(Path::new("a.toml"), "[case]\nname = \"x\"\ngateway = \"nginx\"\n[case.load]\nconnections = 1\nthreads = 2\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("connections (1) must be at least threads (2)"),
            "{e}"
        );
    }

    #[test]
    fn unknown_tag_lists_known_tags() {
        let cases = parse_case_file(Path::new("x.toml"), CASE).unwrap();
        assert_eq!(
            filter_tags(cases.clone(), &["haproxy".into()])
                .unwrap()
                .len(),
            1
        );
        let e = filter_tags(cases, &["nope".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no case has tag \"nope\"") && e.contains("simple-proxy"),
            "{e}"
        );
    }

    #[test]
    fn interleaves_versions_within_each_repeat() {
        let cases = parse_case_file(Path::new("x.toml"), CASE).unwrap();
        let plan = interleave(&cases[..1], 2, false);
        let order: Vec<(usize, u32)> = plan.iter().map(|r| (r.version, r.repeat)).collect();
        assert_eq!(order, vec![(0, 1), (1, 1), (0, 2), (1, 2)]);
        let with_profiles = interleave(&cases[..1], 2, true);
        assert_eq!(with_profiles.len(), 6);
        assert!(with_profiles[4].profile && with_profiles[5].profile && !with_profiles[3].profile);
    }

    #[test]
    fn gateway_override_keeps_baseline_and_dedupes() {
        let mut cases = parse_case_file(Path::new("x.toml"), CASE).unwrap();
        cases.extend(
            parse_case_file(
                Path::new("b.toml"),
                "[case]\nname = \"baseline\"\ngateway = \"baseline\"\n",
            )
            .unwrap(),
        );
        let out = override_gateway(cases, "haproxy").unwrap();
        let ids: Vec<&str> = out.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, vec!["simple-proxy@haproxy", "baseline"]);
    }
}
