//! The GitHub workflow files of docs/ci/ are checked as far as is possible without GitHub: they
//! parse as YAML into the workflow structure (unknown keys refused, so a misspelt `wiht:` fails),
//! every action input is one the action declares (lists taken from each action's `action.yml`),
//! every `run:` script passes `bash -n`, and every `perflab` command in them is accepted by
//! perflab's own argument parser (the real binary's `--help` of that subcommand names every flag
//! used). The PR recipe must compare `git:$BASE` with `git:$HEAD` with `--fail-on-regression`,
//! comment the `compare.md` and upload the folder that the command writes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::util::PERFLAB;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Workflow {
    name: String,
    on: serde_norway::Value,
    permissions: BTreeMap<String, String>,
    concurrency: serde_norway::Value,
    #[serde(default)]
    env: BTreeMap<String, String>,
    jobs: BTreeMap<String, Job>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Job {
    runs_on: String,
    timeout_minutes: u32,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    name: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "if")]
    condition: Option<String>,
    #[serde(default)]
    uses: Option<String>,
    #[serde(default)]
    with: BTreeMap<String, serde_norway::Value>,
    #[serde(default)]
    run: Option<String>,
    #[serde(default)]
    shell: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// The inputs each action used by the recipes declares (from its `action.yml` at the pinned
/// major version).
fn action_inputs(uses: &str) -> &'static [&'static str] {
    match uses {
        "actions/checkout@v4" => &[
            "repository",
            "ref",
            "token",
            "path",
            "fetch-depth",
            "clean",
            "lfs",
            "submodules",
            "persist-credentials",
            "sparse-checkout",
        ],
        "actions/upload-artifact@v4" => &[
            "name",
            "path",
            "if-no-files-found",
            "retention-days",
            "compression-level",
            "overwrite",
            "include-hidden-files",
        ],
        "marocchino/sticky-pull-request-comment@v2" => &[
            "header",
            "append",
            "recreate",
            "delete",
            "only_create",
            "only_update",
            "hide_details",
            "hide",
            "hide_and_recreate",
            "hide_classify",
            "message",
            "path",
            "ignore_empty",
            "skip_unchanged",
            "follow_symbolic_links",
            "number",
            "owner",
            "repo",
            "GITHUB_TOKEN",
        ],
        "benchmark-action/github-action-benchmark@v1" => &[
            "name",
            "tool",
            "output-file-path",
            "gh-pages-branch",
            "gh-repository",
            "benchmark-data-dir-path",
            "github-token",
            "ref",
            "auto-push",
            "skip-fetch-gh-pages",
            "comment-on-pull-request",
            "comment-always",
            "summary-always",
            "save-data-file",
            "comment-on-alert",
            "alert-threshold",
            "fail-on-alert",
            "fail-threshold",
            "alert-comment-cc-users",
            "external-data-json-path",
            "max-items-in-chart",
        ],
        other => panic!("{other}: an action this test does not know; add its inputs"),
    }
}

fn load(name: &str) -> Workflow {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/ci")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `run:` scripts with the `${{ … }}` expressions GitHub substitutes replaced by a word.
fn scripts(w: &Workflow) -> Vec<String> {
    w.jobs
        .values()
        .flat_map(|j| j.steps.iter())
        .filter_map(|s| s.run.as_deref())
        .map(|r| {
            let mut out = String::new();
            let mut rest = r;
            while let Some(i) = rest.find("${{") {
                out.push_str(&rest[..i]);
                out.push_str("EXPR");
                rest = &rest[i + rest[i..].find("}}").expect("closed expression") + 2..];
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// The `perflab …` command lines of a script, continuation lines joined, split into words.
fn perflab_commands(script: &str) -> Vec<Vec<String>> {
    let joined = script.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("perflab "))
        .map(|l| {
            let cmd = l.split(" | ").next().unwrap();
            shlex::split(cmd).unwrap_or_else(|| panic!("unbalanced quotes: {cmd}"))
        })
        .collect()
}

fn check_common(w: &Workflow) {
    assert!(!w.name.is_empty() && !w.on.is_null());
    assert!(
        w.concurrency.get("group").is_some(),
        "one run at a time per group"
    );
    for job in w.jobs.values() {
        assert_eq!(job.runs_on, "ubuntu-latest");
        assert!(job.timeout_minutes <= 90);
        let ids: Vec<&str> = job.steps.iter().filter_map(|s| s.id.as_deref()).collect();
        for step in &job.steps {
            assert!(!step.name.is_empty());
            assert!(
                step.uses.is_some() != step.run.is_some(),
                "{}: a step either uses an action or runs a script",
                step.name
            );
            if let Some(uses) = &step.uses {
                let known = action_inputs(uses);
                for k in step.with.keys() {
                    assert!(known.contains(&k.as_str()), "{uses}: unknown input {k}");
                }
            }
            if let Some(shell) = &step.shell {
                assert_eq!(shell, "bash");
            }
            // A step output referred to must come from a step with that id.
            let cond = step.condition.clone().unwrap_or_default();
            let env: Vec<String> = step.env.values().cloned().collect();
            for text in std::iter::once(cond).chain(env) {
                for part in text.split("steps.").skip(1) {
                    let id = part.split('.').next().unwrap();
                    assert!(ids.contains(&id), "{}: no step with id {id}", step.name);
                }
            }
        }
    }
    for script in scripts(w) {
        let out = Command::new("bash")
            .args(["-n", "-c", &script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bash -n refuses:\n{script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for words in perflab_commands(&script) {
            let sub = &words[1];
            let help = Command::new(PERFLAB)
                .args([sub, "--help"])
                .output()
                .unwrap();
            assert!(help.status.success(), "perflab has no subcommand {sub}");
            let help = String::from_utf8_lossy(&help.stdout);
            for flag in words.iter().filter(|w| w.starts_with("--")) {
                assert!(
                    help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                    "perflab {sub} has no flag {flag}"
                );
            }
        }
    }
}

#[test]
fn pull_request_recipe_compares_comments_uploads_and_fails_on_regression() {
    let w = load("perflab-pr.yml");
    check_common(&w);
    assert!(w.on.get("pull_request").is_some());
    assert_eq!(w.permissions["pull-requests"], "write");
    let results = &w.env["RESULTS"];
    let steps = &w.jobs["compare"].steps;
    let compare: Vec<Vec<String>> = scripts(&w)
        .iter()
        .flat_map(|s| perflab_commands(s))
        .filter(|c| c[1] == "compare")
        .collect();
    assert_eq!(compare.len(), 1, "{compare:?}");
    let c = &compare[0];
    assert_eq!(&c[2..4], ["git:$BASE", "git:$HEAD"]);
    assert!(c.iter().any(|w| w == "--fail-on-regression"));
    let out = c.iter().position(|w| w == "--output-dir").unwrap();
    assert_eq!(c[out + 1], "$RESULTS");
    let comment = steps
        .iter()
        .find(|s| s.uses.as_deref() == Some("marocchino/sticky-pull-request-comment@v2"))
        .expect("a sticky comment step");
    assert_eq!(
        comment.with["path"].as_str().unwrap(),
        format!("{results}/compare.md")
    );
    assert!(comment.with.contains_key("header"), "one comment, updated");
    let upload = steps
        .iter()
        .find(|s| s.uses.as_deref() == Some("actions/upload-artifact@v4"))
        .expect("an upload step");
    assert_eq!(upload.with["path"].as_str().unwrap(), results);
    assert_eq!(upload.condition.as_deref(), Some("always()"));
    // The job's own status follows perflab's: the last step fails when compare did.
    let last = steps.last().unwrap();
    assert!(
        last.condition
            .as_deref()
            .unwrap()
            .contains("steps.compare.outputs.status")
    );
}

#[test]
fn main_recipe_runs_the_suite_and_appends_to_history() {
    let w = load("perflab-main.yml");
    check_common(&w);
    assert!(w.on.get("push").is_some());
    assert_eq!(w.permissions["contents"], "write");
    let results = &w.env["RESULTS"];
    let suite: Vec<Vec<String>> = scripts(&w)
        .iter()
        .flat_map(|s| perflab_commands(s))
        .filter(|c| c[1] == "suite")
        .collect();
    assert_eq!(suite.len(), 1);
    assert!(suite[0].iter().any(|w| w == "git:$GITHUB_SHA"));
    let steps = &w.jobs["suite"].steps;
    let files: Vec<(String, String)> = steps
        .iter()
        .filter(|s| s.uses.as_deref() == Some("benchmark-action/github-action-benchmark@v1"))
        .map(|s| {
            (
                s.with["tool"].as_str().unwrap().to_string(),
                s.with["output-file-path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            (
                "customBiggerIsBetter".to_string(),
                format!("{results}/benchmark-bigger.json")
            ),
            (
                "customSmallerIsBetter".to_string(),
                format!("{results}/benchmark-smaller.json")
            ),
        ]
    );
    assert!(
        scripts(&w)
            .iter()
            .any(|s| s.contains("push origin HEAD:perflab-history")),
        "the results folder is appended to the history branch"
    );
}
