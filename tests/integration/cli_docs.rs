//! docs/cli.md against the real binary's `--help`, and the generated shell completions and man
//! pages checked by the programs that read them (`bash -n`, `man -l` through groff).
//!
//! The check is both ways: every command has its section, every flag `--help` prints is
//! documented, and every flag the page names exists — so a flag added without docs, or docs
//! left behind by a removed flag, fail here.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use crate::util::PERFLAB;

fn perflab(args: &[&str]) -> String {
    let out = Command::new(PERFLAB)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "perflab {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The commands `perflab --help` lists (without `help` itself).
fn commands() -> Vec<String> {
    let help = perflab(&["--help"]);
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The `--long` flags in a text (letters, digits and dashes after `--`).
fn flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("--") {
        let tail = &rest[i + 2..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let starts_word = i == 0 || !rest[..i].ends_with(|c: char| c.is_ascii_alphanumeric());
        if starts_word && name.len() > 1 && name.starts_with(|c: char| c.is_ascii_lowercase()) {
            out.insert(format!("--{}", name.trim_end_matches('-')));
        }
        rest = &tail[name.len()..];
    }
    out
}

/// The `--help` of a command and, for commands with subcommands, of each of those.
fn help_of(command: &str) -> String {
    let help = perflab(&[command, "--help"]);
    let mut all = help.clone();
    if help.contains("\nCommands:") {
        for sub in help
            .lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
        {
            all.push_str(&perflab(&[command, sub, "--help"]));
        }
    }
    all
}

#[test]
fn cli_md_matches_help() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md")).unwrap();
    let mut helped = BTreeSet::new();
    for c in commands() {
        assert!(
            doc.contains(&format!("## `perflab {c}")),
            "docs/cli.md has no section for `perflab {c}`"
        );
        let line = format!("\n  {c} ");
        assert!(doc.contains(&line), "docs/cli.md's command list lacks {c}");
        helped.extend(flags(&help_of(&c)));
    }
    helped.remove("--help");
    helped.remove("--version");
    let documented = flags(&doc);
    let undocumented: Vec<&String> = helped.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "flags in --help but not in docs/cli.md: {undocumented:?}"
    );
    // Flags of other programs the page quotes (wrk, perf, cargo) are not perflab's.
    let foreign = ["--latency", "--call-graph-dwarf", "--release", "--locked"];
    let stale: Vec<&String> = documented
        .difference(&helped)
        .filter(|f| !foreign.contains(&f.as_str()) && *f != "--help" && *f != "--version")
        .collect();
    assert!(
        stale.is_empty(),
        "flags in docs/cli.md that no command has: {stale:?}"
    );
}

#[test]
fn completions_and_man_pages_are_read_by_their_programs() {
    let bash = perflab(&["completions", "bash"]);
    let check = Command::new("bash")
        .args(["-n", "-c", &bash])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for c in commands() {
        assert!(bash.contains(&format!("perflab__subcmd__{c}")), "{c}");
    }
    for shell in ["zsh", "fish"] {
        assert!(perflab(&["completions", shell]).contains("compare"));
    }
    let pages = std::iter::once(None).chain(commands().into_iter().map(Some));
    for page in pages {
        let args: Vec<&str> = std::iter::once("man").chain(page.as_deref()).collect();
        let roff = perflab(&args);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("page.1");
        std::fs::write(&file, &roff).unwrap();
        // groff itself (preconv for UTF-8 input), with warnings on: a malformed page fails here.
        let out = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = Command::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        let name = match &page {
            Some(c) => format!("perflab-{c}"),
            None => "perflab".into(),
        };
        assert!(text.contains(&name), "{args:?}:\n{text}");
    }
}
