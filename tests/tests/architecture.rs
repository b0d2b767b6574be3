//! Checks of the code's shape that must stay true (issue 12): core's modules form a DAG (a
//! lower floor never names a higher one), and no source file outside tests and the conformance
//! suites grows past ~700 lines. Both read the source tree (so they live in this native-only
//! crate, not in core's tests, which also run on wasm32).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most lines a source file may have (tests and conformance suites excepted).
const MAX_LINES: usize = 700;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace").to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).expect("readable source dir").flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module of core a file of `core/src` belongs to (`None` for lib.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(m) => Some(m.to_string()),
        None => Some(first.to_string()),
    }
}

/// The top-level modules a line of code names through `crate::` (comments excluded).
fn named_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.push(name);
        }
        rest = after;
    }
    // `use crate::{a, b::c}` names several.
    if let Some(i) = code.find("crate::{") {
        let inner = &code[i + "crate::{".len()..];
        for part in inner.split(',') {
            let name: String = part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// core's module graph: module -> (module it names -> the first file:line that names it).
fn module_graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = workspace().join("core/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(&src, f)).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(&src, file) else { continue };
        graph.entry(from.clone()).or_default();
        let text = std::fs::read_to_string(file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for to in named_modules(line) {
                if to != from && modules.contains(&to) {
                    let at = format!("{}:{}", file.strip_prefix(workspace()).unwrap().display(), n + 1);
                    graph.entry(from.clone()).or_default().entry(to).or_insert(at);
                }
            }
        }
    }
    graph
}

/// A cycle of `graph`, if it has one, as the modules around it.
fn find_cycle(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| p == node).expect("on the path");
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(next, graph, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn core_modules_form_a_dag() {
    let graph = module_graph();
    assert!(graph.len() > 20, "the graph was not read: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        let edges: Vec<String> =
            cycle.windows(2).map(|w| format!("  {} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]])).collect();
        panic!("core's modules have an import cycle:\n{}", edges.join("\n"));
    }
}

#[test]
fn the_cycle_check_can_fail() {
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into(), "x:1".into());
    graph.entry("b".into()).or_default().insert("c".into(), "x:2".into());
    assert_eq!(find_cycle(&graph), None);
    graph.entry("c".into()).or_default().insert("a".into(), "x:3".into());
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    assert_eq!(named_modules("use crate::{a::B, c};"), ["a", "c"]);
    assert_eq!(named_modules("    x // crate::commented"), Vec::<String>::new());
}

#[test]
fn no_source_file_is_over_the_limit() {
    let root = workspace();
    let mut files = Vec::new();
    for dir in ["core/src", "native/src", "wasm/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let too_long: Vec<String> = files
        .iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "conformance"))
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).expect("readable source").lines().count();
            (lines > MAX_LINES).then(|| format!("  {} ({lines} lines)", f.strip_prefix(&root).unwrap().display()))
        })
        .collect();
    assert!(files.len() > 40, "the sources were not read");
    assert!(too_long.is_empty(), "files over {MAX_LINES} lines; split them by concern:\n{}", too_long.join("\n"));
}
