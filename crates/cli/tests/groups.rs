//! Issue 16, item 4 (CLI part): thing attributes, `thing list --query` (AWS SearchIndex) and
//! dynamic thing groups (`group create --query`, list, describe, delete) through the binary
//! and a running server.

use crate::common;

use common::*;
use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn names(v: &Value, key: Option<&str>) -> Vec<String> {
    let arr = match key {
        Some(k) => &v[k],
        None => v,
    };
    arr.as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|t| {
            t.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| t["thingName"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn thing_list_query_and_dynamic_groups() {
    let env = Env::new();
    let s = serve(&env);
    let api = ["--api", s.http.as_str(), "--data-dir", "data"];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(api.iter())
            .map(|a| a.to_string())
            .collect()
    };
    let run = |args: &[&str]| {
        let v = with(args);
        env.ok(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    thing_create(&env, "dev-1", "b", &["--attribute", "model=KIT_T2G"]);
    thing_create(&env, "dev-2", "b", &["--attribute", "model=KIT_T2G"]);
    thing_create(&env, "dev-3", "b", &[]);
    // Attributes over AWS's limits: refused, nothing stored.
    let e = env.fails(
        1,
        &[
            "thing",
            "create",
            "dev-x",
            "--attribute",
            "a b=c",
            "--data-dir",
            "data",
            "-o",
            "b",
        ],
    );
    assert!(e.contains("attribute name"), "{e}");
    assert!(!env.exists("b/dev-x"));
    let out = env.ok(&[
        "thing",
        "update",
        "dev-3",
        "--attribute",
        "model=XMC7200",
        "--attribute",
        "site=bonn",
        "--data-dir",
        "data",
    ]);
    assert_eq!(json(&out)["model"], "XMC7200");
    let out = env.ok(&[
        "thing",
        "update",
        "dev-3",
        "--remove-attribute",
        "site",
        "--data-dir",
        "data",
    ]);
    assert_eq!(json(&out), serde_json::json!({"model": "XMC7200"}));

    let out = run(&[
        "thing",
        "list",
        "--query",
        "attributes.model:KIT_T2G",
        "--json",
    ]);
    assert_eq!(names(&json(&out), None), ["dev-1", "dev-2"]);
    let out = run(&["thing", "list", "--query", "attributes.model:XMC*"]);
    assert!(out.starts_with("dev-3\t"), "{out}");
    assert!(out.contains("model=XMC7200"), "{out}");

    let out = run(&[
        "group",
        "create",
        "kits",
        "--query",
        "attributes.model:KIT_T2G AND NOT thingName:dev-2",
        "--json",
    ]);
    assert_eq!(names(&json(&out), Some("members")), ["dev-1"]);
    // dev-2 changes model, dev-3 becomes a kit: the members follow.
    env.ok(&[
        "thing",
        "update",
        "dev-3",
        "--attribute",
        "model=KIT_T2G",
        "--data-dir",
        "data",
    ]);
    let out = run(&["group", "describe", "kits", "--json"]);
    assert_eq!(names(&json(&out), Some("members")), ["dev-1", "dev-3"]);
    let out = run(&["group", "list"]);
    assert!(out.contains("kits\tdynamic\t"), "{out}");

    // A bad query: the server's InvalidQueryException with the position; nothing stored.
    let v = with(&["group", "create", "bad", "--query", "attributes.model:"]);
    let e = env.fails(1, &v.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("at character 18"), "{e}");
    let out = run(&["group", "list", "--json"]);
    assert_eq!(
        json(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["thingGroupName"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["kits"]
    );
    let v = with(&["thing", "list", "--query", "firmware.versoin < 1"]);
    let e = env.fails(1, &v.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("unknown field"), "{e}");

    run(&["group", "delete", "kits"]);
    let v = with(&["group", "describe", "kits"]);
    let e = env.fails(1, &v.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("404"), "{e}");
}

#[test]
fn group_create_help_shows_query_examples() {
    let env = Env::new();
    let out = env.ok(&["group", "create", "--help"]);
    assert!(
        out.contains("firmware.version < 1.2.0 AND attributes.model:KIT_T2G"),
        "{out}"
    );
    assert!(out.contains("Query syntax"), "{out}");
    let out = env.ok(&["thing", "list", "--help"]);
    assert!(out.contains("--query"), "{out}");
    assert!(out.contains("Fields: thingName"), "{out}");
}
