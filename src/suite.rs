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
use crate::role::gateway::GatewayKind;
use crate::role::load::wrk::LoadOptions;
use crate::{Error, Result};

/// Most repeats per case and version (`repeats`, `--repeat`).
pub const MAX_REPEATS: u32 = 10_000;
/// Most worker processes of a gateway or the upstream (`workers`).
pub const MAX_WORKERS: u32 = 1_024;
/// Most consecutive upstream ports (`upstream.ports`): they must stay below the gateway's port,
/// which is 100 above the upstream's first port.
pub const MAX_UPSTREAM_PORTS: u16 = 100;
/// Largest body the upstream serves (`upstream.body_bytes`): 1 GiB.
pub const MAX_BODY_BYTES: u64 = 1 << 30;
/// Most routes of a case (`entities.services` × `entities.routes_per_service`); also the bound
/// of each factor and of `entities.consumers`.
pub const MAX_ROUTES: u64 = 100_000;

/// The bound of each numeric case-file field, for messages about values of the wrong type or
/// sign (the file, line and field are named with it).
const FIELD_BOUNDS: &[(&str, &str)] = &[
    ("body_bytes", "a whole number of bytes from 0 to 1073741824"),
    ("ports", "a whole number from 1 to 100"),
    ("workers", "a whole number from 1 to 1024"),
    ("repeats", "a whole number from 1 to 10000"),
    ("connections", "a whole number from 1 to 1000000"),
    ("threads", "a whole number from 1 to 1024"),
    ("duration", "a number of seconds from 1 to 86400"),
    ("warmup", "a number of seconds from 0 to 3600"),
    ("timeout", "a whole number of seconds from 1 to 3600"),
    ("rate", "a number of requests per second from 1 to 10000000"),
    ("services", "a whole number from 1 to 100000"),
    ("routes_per_service", "a whole number from 1 to 100000"),
    ("consumers", "a whole number from 0 to 100000"),
    ("upstreams", "a whole number from 0 to 100000"),
    ("targets_per_upstream", "a whole number from 1 to 100000"),
    ("target_weight_step", "a whole number from 0 to 1000"),
];

/// The upstream part of a case: a blob, or a table with more settings.
///
/// Deserialised by hand rather than as an untagged enum, so that a bad field of the table
/// (`body_bytes = -5`) is reported with its own message and line instead of "did not match any
/// variant".
#[derive(Debug, Clone, PartialEq, Serialize)]
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

impl<'de> Deserialize<'de> for UpstreamSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UpstreamSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an nginx config blob (a string) or a table of upstream settings")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                s: &str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(UpstreamSpec::Blob(s.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                UpstreamTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(UpstreamSpec::Table)
            }
        }
        d.deserialize_any(V)
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
    pub gateway: Option<GatewayKind>,
    /// Several gateway kinds (the case runs once per kind).
    #[serde(default)]
    pub gateways: Vec<GatewayKind>,
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
    /// Actions while the load runs (`[[case.during]]`, docs/suites.md).
    #[serde(default)]
    pub during: Vec<crate::during::DuringAction>,
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
    pub gateway: GatewayKind,
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
    /// Actions while the load runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub during: Vec<crate::during::DuringAction>,
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
    let file: CaseFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
        Error::SuiteFile {
            path: path.to_path_buf(),
            line,
            message: explain_toml_error(text, line, e.message()),
        }
    })?;
    let spec = file.case;
    let bad = |message: String| Error::SuiteFile {
        path: path.to_path_buf(),
        line: 0,
        message,
    };
    // A value out of bounds: the line of its field (the message starts with the field's name).
    let out_of_bounds = |message: String| Error::SuiteFile {
        path: path.to_path_buf(),
        line: field_line(text, message.split_whitespace().next().unwrap_or("")),
        message: format!("case \"{}\": {message}", spec.name),
    };
    check_counts(&spec).map_err(out_of_bounds)?;
    if spec.name.trim().is_empty() || spec.name.contains(['/', '@', ' ']) {
        return Err(bad(format!(
            "case name \"{}\" must be non-empty without '/', '@' or spaces",
            spec.name
        )));
    }
    let mut kinds = spec.gateways.clone();
    if let Some(g) = spec.gateway {
        kinds.insert(0, g);
    }
    if kinds.is_empty() {
        return Err(bad(format!(
            "case \"{}\" names no gateway: set `gateway = \"nginx\"` (or haproxy, kong, command, baseline)",
            spec.name
        )));
    }
    let mut out = Vec::new();
    for kind in kinds {
        spec.load
            .validate()
            .map_err(|e| out_of_bounds(format!("load.{e}")))?;
        crate::during::validate(&spec.during, spec.load.duration, kind).map_err(|e| {
            // The line of the action's `[[case.during]]` header (messages start `during[N].`).
            let n: usize = e
                .strip_prefix("during[")
                .and_then(|r| r.split(']').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let line = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.trim() == "[[case.during]]")
                .nth(n - 1)
                .map_or(0, |(i, _)| i + 1);
            Error::SuiteFile {
                path: path.to_path_buf(),
                line,
                message: format!("case \"{}\" ({kind}): {e}", spec.name),
            }
        })?;
        let mut tags: BTreeSet<String> = spec.tags.iter().cloned().collect();
        tags.insert(spec.name.clone());
        tags.insert(kind.to_string());
        let id = if kind == GatewayKind::Baseline {
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
            repeats: spec.repeats.unwrap_or(3),
            workers: spec.workers.unwrap_or(1),
            gateway_settings: spec.gateway_settings.clone(),
            profile: spec.profile,
            during: spec.during.clone(),
            file: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Names the field and its bound when TOML refused a value's type or sign: the message of
/// `body_bytes = -5` is "invalid value: integer `-5`, expected usize", which says neither.
fn explain_toml_error(text: &str, line: usize, message: &str) -> String {
    let key = text
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let Some(key) = key else {
        return message.trim().to_string();
    };
    let field = key.rsplit('.').next().unwrap_or(&key);
    match FIELD_BOUNDS.iter().find(|(f, _)| *f == field) {
        Some((_, bound)) => format!("field `{key}`: {}; it must be {bound}", message.trim()),
        None if message.contains("invalid value") || message.contains("invalid type") => {
            format!("field `{key}`: {}", message.trim())
        }
        None => message.trim().to_string(),
    }
}

/// The line (1-based) where `field` (`load.duration`, `repeats`; the last part is matched) is
/// set, 0 when it is not found.
fn field_line(text: &str, field: &str) -> usize {
    let field = field.trim_end_matches(':');
    let key = field.rsplit('.').next().unwrap_or(field);
    text.lines()
        .position(|l| {
            l.split_once('=')
                .is_some_and(|(k, _)| k.trim().trim_matches('"') == key)
        })
        .map_or(0, |i| i + 1)
}

/// The case-level counts: repeats, workers, upstream ports, workers and body size.
fn check_counts(spec: &CaseSpec) -> std::result::Result<(), String> {
    if let Some(r) = spec.repeats
        && !(1..=MAX_REPEATS).contains(&r)
    {
        return Err(format!("repeats must be from 1 to {MAX_REPEATS} (got {r})"));
    }
    if let Some(w) = spec.workers
        && !(1..=MAX_WORKERS).contains(&w)
    {
        return Err(format!("workers must be from 1 to {MAX_WORKERS} (got {w})"));
    }
    let e = &spec.entities;
    if !(1..=MAX_ROUTES).contains(&(e.services as u64)) {
        return Err(format!(
            "services must be from 1 to {MAX_ROUTES} (got {})",
            e.services
        ));
    }
    if !(1..=MAX_ROUTES).contains(&(e.routes_per_service as u64)) {
        return Err(format!(
            "routes_per_service must be from 1 to {MAX_ROUTES} (got {})",
            e.routes_per_service
        ));
    }
    let routes = e.services as u64 * e.routes_per_service as u64;
    if routes > MAX_ROUTES {
        return Err(format!(
            "routes_per_service: services × routes_per_service must be at most {MAX_ROUTES} \
             (got {} × {} = {routes})",
            e.services, e.routes_per_service
        ));
    }
    if e.consumers as u64 > MAX_ROUTES {
        return Err(format!(
            "consumers must be from 0 to {MAX_ROUTES} (got {})",
            e.consumers
        ));
    }
    if e.upstreams as u64 > MAX_ROUTES {
        return Err(format!(
            "upstreams must be from 0 to {MAX_ROUTES} (got {})",
            e.upstreams
        ));
    }
    if !(1..=MAX_ROUTES).contains(&(e.targets_per_upstream as u64))
        || e.upstreams as u64 * e.targets_per_upstream as u64 > MAX_ROUTES
    {
        return Err(format!(
            "targets_per_upstream must be from 1 and upstreams × targets_per_upstream at most \
             {MAX_ROUTES} (got {} × {})",
            e.upstreams, e.targets_per_upstream
        ));
    }
    if e.target_weight_step as u64 * e.targets_per_upstream as u64 > 65_535 {
        return Err(format!(
            "target_weight_step × targets_per_upstream must be at most 65535, Kong's largest \
             weight (got {} × {})",
            e.target_weight_step, e.targets_per_upstream
        ));
    }
    e.check()?;
    let up = spec.upstream.table();
    if let Some(p) = up.ports
        && !(1..=MAX_UPSTREAM_PORTS).contains(&p)
    {
        return Err(format!(
            "upstream.ports must be from 1 to {MAX_UPSTREAM_PORTS} (got {p})"
        ));
    }
    if let Some(w) = up.workers
        && !(1..=MAX_WORKERS).contains(&w)
    {
        return Err(format!(
            "upstream.workers must be from 1 to {MAX_WORKERS} (got {w})"
        ));
    }
    if let Some(b) = up.body_bytes
        && b as u64 > MAX_BODY_BYTES
    {
        return Err(format!(
            "upstream.body_bytes must be from 0 to {MAX_BODY_BYTES} (got {b})"
        ));
    }
    Ok(())
}

/// Where suites are looked for: `$PERFLAB_SUITES_DIR`, `./suites`, an installed perflab's
/// `<prefix>/share/perflab/suites` ([`crate::install`]), then the source tree's.
pub fn suite_roots() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("suites")];
    if let Ok(d) = std::env::var("PERFLAB_SUITES_DIR") {
        v.insert(0, PathBuf::from(d));
    }
    v.extend(crate::install::data_dir("suites"));
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
pub fn override_gateway(cases: Vec<Case>, kind: GatewayKind) -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    for mut c in cases {
        if c.gateway == GatewayKind::Baseline {
            out.push(c);
        } else if out
            .iter()
            .all(|o| o.name != c.name || o.gateway == GatewayKind::Baseline)
        {
            c.tags.remove(&c.gateway.to_string());
            c.tags.remove(&c.id);
            c.gateway = kind;
            c.id = format!("{}@{kind}", c.name);
            c.tags.insert(kind.to_string());
            c.tags.insert(c.id.clone());
            out.push(c);
        }
    }
    out
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
        let versions_here = if c.gateway == GatewayKind::Baseline {
            1
        } else {
            versions
        };
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

/// Overrides applied to every case (from the command line).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overrides {
    /// Seconds of load.
    pub duration: Option<f64>,
    /// Repeats per version.
    pub repeat: Option<u32>,
    /// Connections.
    pub connections: Option<u32>,
    /// Threads.
    pub threads: Option<u32>,
    /// Warm-up seconds.
    pub warmup: Option<f64>,
    /// Open-loop rate: makes every case open-loop at this rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

impl Overrides {
    /// Applies the overrides to a case and validates the result.
    pub fn apply(&self, mut c: Case) -> Result<Case> {
        if let Some(d) = self.duration {
            c.load.duration = d;
        }
        if let Some(r) = self.repeat {
            if !(1..=MAX_REPEATS).contains(&r) {
                return Err(Error::Usage(format!(
                    "--repeat must be from 1 to {} (got {r})",
                    MAX_REPEATS
                )));
            }
            c.repeats = r;
        }
        if let Some(n) = self.connections {
            c.load.connections = n;
        }
        if let Some(n) = self.threads {
            c.load.threads = n;
        }
        if let Some(w) = self.warmup {
            c.load.warmup = w;
        }
        if let Some(r) = self.rate {
            c.load.kind = crate::role::load::wrk::LoadKind::Open;
            c.load.rate = Some(r);
        }
        c.load.validate()?;
        crate::during::validate(&c.during, c.load.duration, c.gateway).map_err(|e| {
            Error::Usage(format!(
                "case {}: {e} (after the command line's --duration {}s)",
                c.id, c.load.duration
            ))
        })?;
        Ok(c)
    }
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
        let e = e.to_string();
        assert!(
            e.starts_with("a.toml:3:")
                && e.contains("unknown variant `envoyy`, expected one of `baseline`, `nginx`"),
            "{e}"
        );
        let e = parse_case_file(Path::new("a.toml"), "[case]\nname = \"x\"\ngateway = \"nginx\"\n[case.load]\nconnections = 1\nthreads = 2\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("connections (1) must be at least threads (2)"),
            "{e}"
        );
    }

    #[test]
    fn numbers_out_of_bounds_name_file_field_and_bound() {
        let head = "[case]\nname = \"x\"\ngateway = \"nginx\"\n";
        for (body, needle) in [
            (
                "[case.load]\nduration = inf\n",
                "duration must be a finite number of seconds from 1 to 86400",
            ),
            ("[case.load]\nduration = 1e300\n", "from 1 to 86400"),
            (
                "[case.load]\nwarmup = nan\n",
                "warmup must be a finite number",
            ),
            ("[case.upstream]\nbody_bytes = -5\n", "field `body_bytes`"),
            (
                "[case.upstream]\nports = 500\n",
                "upstream.ports must be from 1 to 100",
            ),
            ("repeats = 0\n", "repeats must be from 1 to 10000"),
            ("repeats = 4000000000\n", "repeats must be from 1 to 10000"),
            ("[case.load]\nconnections = -1\n", "field `connections`"),
            (
                "[case.entities]\nservices = 4000000000\nroutes_per_service = 4000000000\n",
                "services must be from 1 to 100000",
            ),
            (
                "[case.entities]\nservices = 1000\nroutes_per_service = 1000\n",
                "at most 100000",
            ),
            ("[case.entities]\nservices = 0\n", "services must be from 1"),
        ] {
            let text = if body.starts_with('[') {
                format!("{head}{body}")
            } else {
                format!("[case]\n{body}name = \"x\"\ngateway = \"nginx\"\n")
            };
            let e = parse_case_file(Path::new("n.toml"), &text).unwrap_err();
            let s = e.to_string();
            assert!(
                s.starts_with("n.toml:") && s.contains(needle),
                "{body}: {s}"
            );
            assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
        }
        let e = parse_case_file(
            Path::new("n.toml"),
            &format!("{head}[case.upstream]\nbody_bytes = -5\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("n.toml:5:") && e.contains("1073741824"),
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
        let out = override_gateway(cases, GatewayKind::Haproxy);
        let ids: Vec<&str> = out.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, vec!["simple-proxy@haproxy", "baseline"]);
    }
}
