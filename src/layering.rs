//! The library's layering, written down once and kept by a test.
//!
//! Why: perflab's one idea (drivers only provide hosts; every role is written once against a
//! host) holds only while a host does not reach up into a driver, a role into the session, or
//! the store into the suite runner. Import cycles had tied 21 of the top-level modules into one
//! knot. [`LAYERS`] lists every top-level module of the library from the bottom up; a module
//! may use modules of its own layer or below, never above, and the modules of one layer must
//! not import each other in a cycle. The test [`tests::imports_follow_the_layers`] reads every
//! `crate::…` path in `src/` (test code and comments left out) and names each file and edge
//! that breaks the rule. `docs/architecture.md` draws the same picture.
//!
//! This module holds no code of the library: only the table and, under `cfg(test)`, the check.

/// Every top-level module of the library, by layer, lowest first. A new module must be placed
/// here (the test fails on a module it does not find).
pub const LAYERS: &[(&str, &[&str])] = &[
    // Leaves: no domain imports (files, clocks, hashes, signals, HTTP, the Docker engine
    // client, secret redaction, entity descriptions, install locations, the tool table).
    (
        "leaves",
        &[
            "util", "signals", "install", "http", "engine", "redact", "entities", "tools",
        ],
    ),
    // What the lab started, for cleanup after a crash (hosts record into it).
    ("journal", &["journal"]),
    // Where commands run: local, container, SSH.
    ("host", &["host"]),
    // The library's error type (wraps host errors), and names of closed sets (typed kinds).
    ("error", &["error", "names"]),
    // Things the lab builds or renders from files: images, version checkouts, flame graphs.
    ("artefacts", &["image", "version", "flamegraph"]),
    // Drivers: they only provide hosts.
    ("driver", &["driver"]),
    // Roles, each written once against a host.
    ("role", &["role"]),
    // Actions during load, and the run record around a load result.
    ("during", &["during"]),
    ("result", &["result"]),
    // Pure statistics over run records.
    ("stats", &["stats"]),
    // Suite files and plans.
    ("suite", &["suite"]),
    // The session API (Kong's verbs).
    ("session", &["session"]),
    // The results store, the environment fingerprint and the manifest.
    ("store", &["store", "fingerprint", "manifest"]),
    // Executions: progress output, the suite runner, the multiplexed compare.
    ("progress", &["progress"]),
    ("runner", &["runner"]),
    ("multiplex", &["multiplex"]),
    // Reports re-rendered from the store (charts, exports, flame graphs, history).
    ("report", &["report"]),
    // Commands built on all of the above.
    ("commands", &["cleanup", "capacity", "reproduce", "doctor"]),
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use super::LAYERS;

    /// Source text with comments, string and character literals blanked out, so that braces
    /// and `crate::` inside them are not read as code.
    fn code_only(src: &str) -> String {
        let b = src.as_bytes();
        let mut out = String::with_capacity(src.len());
        let mut i = 0;
        while i < b.len() {
            let rest = &src[i..];
            if rest.starts_with("//") {
                let end = rest.find('\n').unwrap_or(rest.len());
                i += end;
            } else if rest.starts_with("/*") {
                let end = rest.find("*/").map(|e| e + 2).unwrap_or(rest.len());
                i += end;
                out.push(' ');
            } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
                let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
                let close = format!("\"{}", "#".repeat(hashes));
                let body = 2 + hashes;
                let end = rest[body..]
                    .find(&close)
                    .map(|e| body + e + close.len())
                    .unwrap_or(rest.len());
                i += end;
                out.push_str("\"\"");
            } else if b[i] == b'"' {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                i = j + 1;
                out.push_str("\"\"");
            } else if b[i] == b'\'' && is_char_literal(rest) {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'\'' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                i = j + 1;
                out.push_str("' '");
            } else {
                let c = rest.chars().next().expect("not at the end");
                out.push(c);
                i += c.len_utf8();
            }
        }
        out
    }

    /// `'x'`, `'\n'`, `'{'` are character literals; `'a` (a lifetime) is not.
    fn is_char_literal(rest: &str) -> bool {
        let mut c = rest.chars().skip(1);
        matches!(
            (c.next(), c.next()),
            (Some('\\'), _) | (Some(_), Some('\''))
        )
    }

    /// `code` without the items marked `#[cfg(test)]` (a test module, a test-only function).
    fn without_test_items(code: &str) -> String {
        let mut out = String::new();
        let mut rest = code;
        while let Some(at) = rest.find("#[cfg(test)]") {
            out.push_str(&rest[..at]);
            let item = &rest[at..];
            let end = match (item.find('{'), item.find(';')) {
                (Some(open), semi) if semi.is_none_or(|s| open < s) => {
                    let mut depth = 0usize;
                    let mut close = item.len();
                    for (k, ch) in item.char_indices().skip(open) {
                        match ch {
                            '{' => depth += 1,
                            '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    close = k + 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    close
                }
                (_, Some(semi)) => semi + 1,
                _ => item.len(),
            };
            rest = &item[end..];
        }
        out.push_str(rest);
        out
    }

    /// The first path segment of every `crate::` path in `code`, a `use crate::{a, b::c}`
    /// group giving one per member.
    fn crate_paths(code: &str) -> Vec<String> {
        let ident = |s: &str| -> String {
            s.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let mut out = Vec::new();
        for (at, _) in code.match_indices("crate::") {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue; // `$crate::` or part of a longer name
            }
            let rest = &code[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 1usize;
                let mut member = String::new();
                for ch in group.chars() {
                    match ch {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 1 => {
                            out.push(ident(&member));
                            member.clear();
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                    member.push(ch);
                }
                out.push(ident(&member));
            } else {
                out.push(ident(rest));
            }
        }
        out.retain(|s| !s.is_empty() && s != "self");
        out
    }

    /// `pub mod x;` modules of `lib.rs`, and the names it re-exports (`pub use a::{B, c};`)
    /// with the module each comes from.
    fn library_modules(lib: &str) -> (BTreeSet<String>, BTreeMap<String, String>) {
        let mut mods = BTreeSet::new();
        let mut reexports = BTreeMap::new();
        for line in lib.lines().map(str::trim) {
            if let Some(m) = line.strip_prefix("pub mod ") {
                mods.insert(m.trim_end_matches(';').to_string());
            } else if let Some(u) = line.strip_prefix("pub use ") {
                let u = u.trim_end_matches(';');
                let (from, names) = u.split_once("::").unwrap_or((u, ""));
                let names = names.trim_start_matches('{').trim_end_matches('}');
                for n in names.split(',') {
                    let last = n.rsplit("::").next().unwrap_or(n).trim();
                    reexports.insert(last.to_string(), from.to_string());
                }
            }
        }
        (mods, reexports)
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// Every edge between top-level modules: (from, to) → the files that make it.
    fn module_edges(src: &Path) -> BTreeMap<(String, String), BTreeSet<String>> {
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        let (mods, reexports) = library_modules(&lib);
        let mut files = Vec::new();
        rust_files(src, &mut files);
        let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for f in files {
            let rel = f.strip_prefix(src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            // lib.rs and the binary's own files (main.rs, cli.rs, commands.rs) sit above the
            // library.
            if !mods.contains(&top) {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            let code = without_test_items(&code_only(&text));
            for name in crate_paths(&code) {
                let to = reexports.get(&name).cloned().unwrap_or(name);
                if to != top {
                    edges
                        .entry((top.clone(), to))
                        .or_default()
                        .insert(format!("src/{}", rel.display()));
                }
            }
        }
        edges
    }

    /// A cycle among `nodes` following `edges`, if any, as a path that ends where it starts.
    fn find_cycle(
        nodes: &BTreeSet<String>,
        edges: &BTreeSet<(String, String)>,
    ) -> Option<Vec<String>> {
        fn visit(
            n: &str,
            edges: &BTreeSet<(String, String)>,
            state: &mut BTreeMap<String, u8>,
            path: &mut Vec<String>,
        ) -> Option<Vec<String>> {
            state.insert(n.to_string(), 1);
            path.push(n.to_string());
            for (_, to) in edges.iter().filter(|(a, _)| a == n) {
                match state.get(to.as_str()) {
                    Some(1) => {
                        let start = path.iter().position(|p| p == to).unwrap();
                        let mut cycle = path[start..].to_vec();
                        cycle.push(to.clone());
                        return Some(cycle);
                    }
                    Some(_) => {}
                    None => {
                        if let Some(c) = visit(to, edges, state, path) {
                            return Some(c);
                        }
                    }
                }
            }
            path.pop();
            state.insert(n.to_string(), 2);
            None
        }
        let mut state = BTreeMap::new();
        for n in nodes {
            if !state.contains_key(n.as_str())
                && let Some(c) = visit(n, edges, &mut state, &mut Vec::new())
            {
                return Some(c);
            }
        }
        None
    }

    #[test]
    fn imports_follow_the_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        let (mods, _) = library_modules(&lib);
        let layer_of: BTreeMap<&str, usize> = LAYERS
            .iter()
            .enumerate()
            .flat_map(|(i, (_, ms))| ms.iter().map(move |m| (*m, i)))
            .collect();
        let mut problems = Vec::new();
        for m in &mods {
            if m != "layering" && !layer_of.contains_key(m.as_str()) {
                problems.push(format!(
                    "module `{m}` is in no layer: add it to layering::LAYERS"
                ));
            }
        }
        let edges = module_edges(&src);
        for ((from, to), files) in &edges {
            let (Some(&a), Some(&b)) = (layer_of.get(from.as_str()), layer_of.get(to.as_str()))
            else {
                if !mods.contains(to) {
                    problems.push(format!(
                        "{}: crate::{to} is not a module of lib.rs",
                        files.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                continue;
            };
            if b > a {
                problems.push(format!(
                    "{}: `{from}` (layer {}) uses `{to}` (layer {}), a layer above it",
                    files.iter().cloned().collect::<Vec<_>>().join(", "),
                    LAYERS[a].0,
                    LAYERS[b].0
                ));
            }
        }
        let nodes: BTreeSet<String> = mods.iter().cloned().collect();
        let graph: BTreeSet<(String, String)> = edges.keys().cloned().collect();
        if let Some(cycle) = find_cycle(&nodes, &graph) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| {
                    let files = &edges[&(w[0].clone(), w[1].clone())];
                    format!(
                        "{} -> {} ({})",
                        w[0],
                        w[1],
                        files.iter().cloned().collect::<Vec<_>>().join(", ")
                    )
                })
                .collect();
            problems.push(format!("import cycle: {}", steps.join("; ")));
        }
        assert!(
            problems.is_empty(),
            "the layering is broken (see src/layering.rs, docs/architecture.md):\n  {}",
            problems.join("\n  ")
        );
    }

    #[test]
    fn the_reader_sees_grouped_and_plain_paths_but_not_tests_comments_or_strings() {
        let code = code_only(
            "use crate::{Error, host::{Cmd, Host}, util::fs};\n\
             // crate::commented\n\
             let s = \"crate::quoted {\"; let c = '{';\n\
             fn f<'a>(x: &'a str) { crate::store::Store::open(x); }\n\
             #[cfg(test)]\nmod tests { use crate::runner; }\n\
             #[cfg(test)]\nuse crate::session;\n\
             fn g() { crate::during::analyse(); }\n",
        );
        let found = crate_paths(&without_test_items(&code));
        assert_eq!(found, ["Error", "host", "util", "store", "during"]);
    }

    #[test]
    fn a_cycle_is_found_with_its_path() {
        let nodes: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        let e = |a: &str, b: &str| (a.to_string(), b.to_string());
        let acyclic: BTreeSet<_> = [e("a", "b"), e("b", "c"), e("a", "c")].into();
        assert_eq!(find_cycle(&nodes, &acyclic), None);
        let cyclic: BTreeSet<_> = [e("a", "b"), e("b", "c"), e("c", "b")].into();
        assert_eq!(
            find_cycle(&nodes, &cyclic),
            Some(vec!["b".to_string(), "c".to_string(), "b".to_string()])
        );
    }
}
