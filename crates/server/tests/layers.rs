//! Issue 15: no import circle of more than one file in the server. Reads `src/` the way
//! `scripts/modgraph.py` does (the `crate::` paths of each top-level module, without comment
//! lines and test modules) and fails naming the modules of any circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let module = |p: &Path| {
        let rel = p.strip_prefix(&root).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let top: BTreeSet<String> = files.iter().map(|p| module(p)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &files {
        let m = module(p);
        if m == "lib" {
            continue;
        }
        let mut src = std::fs::read_to_string(p).unwrap();
        if let Some(k) = src.find("#[cfg(test)]\nmod tests") {
            src.truncate(k);
        }
        let code: String = src
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let deps = g.entry(m.clone()).or_default();
        let mut rest = code.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + 7..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end].split(',').collect()
            } else {
                vec![rest]
            };
            for n in names {
                let w: String = n
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if top.contains(&w) && w != m {
                    deps.insert(w);
                }
            }
        }
    }
    g
}

/// The modules reachable from `from` (not counting `from` unless a circle returns to it).
fn reach(g: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = g[from].iter().map(String::as_str).collect();
    while let Some(m) = todo.pop() {
        if seen.insert(m.to_string()) {
            todo.extend(g.get(m).into_iter().flatten().map(String::as_str));
        }
    }
    seen
}

#[test]
fn the_server_modules_import_each_other_in_no_circle() {
    let g = graph();
    assert!(g.len() > 10, "modules not found: {g:?}");
    let circles: Vec<(String, BTreeSet<String>)> = g
        .keys()
        .filter_map(|m| {
            let r = reach(&g, m);
            r.contains(m).then(|| {
                let with: BTreeSet<String> =
                    r.into_iter().filter(|o| reach(&g, o).contains(m)).collect();
                (m.clone(), with)
            })
        })
        .collect();
    assert!(
        circles.is_empty(),
        "import circles: {circles:?}\ngraph: {g:#?}"
    );
}

#[test]
fn the_services_and_the_operator_actions_do_not_import_the_broker() {
    let g = graph();
    // The operator's actions (`admin`) run over the services and a narrow `Sessions` trait:
    // neither they nor the CA they create things with may reach the broker or the sessions.
    for m in [
        "context", "jobs", "streams", "timeouts", "services", "admin", "ca", "tls", "rollout",
    ] {
        assert!(
            !reach(&g, m).contains("broker") && !reach(&g, m).contains("session"),
            "{m} reaches the broker or the sessions: {:?}",
            g[m]
        );
    }
}
