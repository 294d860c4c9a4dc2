//! Issue 18, items 2 and 3 (CLI part): `ferrota token create|list|revoke` and `ferrota audit
//! export|verify` against a running server: a created token works with its role and no more,
//! a revoked one is refused, the exported log verifies offline, and a changed, removed or
//! reordered record in the export is named; a noted head catches removed newest records.

use crate::common;

use common::*;
use serde_json::Value;

#[test]
fn tokens_roles_and_the_audit_log_from_the_command_line() {
    let env = Env::new();
    let s = serve(&env);
    let api = ["--api", s.http.as_str(), "--data-dir", "data"];
    let args =
        |a: &[&str]| -> Vec<String> { a.iter().chain(api.iter()).map(|x| x.to_string()).collect() };
    let ok = |a: &[&str]| {
        let v = args(a);
        env.ok(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let fails = |a: &[&str]| {
        let v = args(a);
        env.fails(1, &v.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let viewer = ok(&["token", "create", "--name", "vera", "--role", "viewer"]);
    let viewer = viewer.trim().to_string();
    assert!(viewer.starts_with("fer_"), "{viewer}");
    // A bad role is refused by the CLI before any request, naming the roles.
    let e = env.fails(2, &["token", "create", "--name", "x", "--role", "root"]);
    assert!(e.contains("viewer, release-manager, admin"), "{e}");

    // The viewer lists OTA updates, and is refused a token list, naming its role.
    ok(&["ota", "list", "--token", &viewer]);
    let e = fails(&["token", "list", "--token", &viewer]);
    assert!(e.contains("403") && e.contains("viewer"), "{e}");

    // A remote server by --server or FERROTA_SERVER (the data directory only for the token).
    let http = s.http.as_str();
    let out = env.ok(&["token", "list", "--server", http, "--data-dir", "data"]);
    assert!(out.contains("\tvera\tviewer\t"), "{out}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrota"))
        .args(["ota", "list", "--token", &viewer, "--data-dir", "nowhere"])
        .env("FERROTA_SERVER", http)
        .current_dir(env.path("."))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let list: Value = serde_json::from_str(&ok(&["token", "list", "--json"])).unwrap();
    let id = list["tokens"][0]["tokenId"].as_str().unwrap().to_string();
    ok(&["token", "revoke", &id]);
    let e = fails(&["ota", "list", "--token", &viewer]);
    assert!(e.contains("401") && e.contains("revoked"), "{e}");

    // The log: intact from the server and from an export.
    let out = ok(&["audit", "verify"]);
    // CreateToken, the viewer's refused token list, RevokeToken.
    assert!(out.contains("intact, 3 record(s)"), "{out}");
    let head = out.trim().rsplit(' ').next().unwrap().to_string();
    let export = ok(&["audit", "export", "--json"]);
    env.write("audit.json", &export);
    assert!(
        env.ok(&["audit", "verify", "--file", "audit.json"])
            .contains("intact")
    );
    let text = ok(&["audit", "export"]);
    assert!(
        text.contains("\tvera\tGET /api/tokens\t/api/tokens\t403 AccessDeniedException"),
        "{text}"
    );
    assert!(
        text.contains(&format!("\tapi-token\tRevokeToken\ttoken/{id}\t200")),
        "{text}"
    );

    let records: Vec<Value> = serde_json::from_str(&export).unwrap();
    let tampered = |f: &dyn Fn(&mut Vec<Value>)| {
        let mut r = records.clone();
        f(&mut r);
        env.write("bad.json", serde_json::to_string(&r).unwrap());
        env.fails(1, &["audit", "verify", "--file", "bad.json"])
    };
    let e = tampered(&|r| r[1]["actor"] = "mallory".into());
    assert!(e.contains("record 2 was changed"), "{e}");
    let e = tampered(&|r| {
        r.remove(1);
    });
    assert!(e.contains("removed"), "{e}");
    let e = tampered(&|r| r.swap(1, 2));
    assert!(e.contains("reordered"), "{e}");
    // Removing the newest record leaves an intact chain: only a noted head shows it.
    let mut short = records.clone();
    short.pop();
    env.write("short.json", serde_json::to_string(&short).unwrap());
    assert!(
        env.ok(&["audit", "verify", "--file", "short.json"])
            .contains("intact")
    );
    let e = env.fails(
        1,
        &["audit", "verify", "--file", "short.json", "--head", &head],
    );
    assert!(e.contains("is gone"), "{e}");
    env.ok(&["audit", "verify", "--file", "audit.json", "--head", &head]);
    let e = env.fails(
        1,
        &[
            "audit",
            "verify",
            "--file",
            "audit.json",
            "--head",
            "nonsense",
        ],
    );
    assert!(e.contains("SEQ:HASH"), "{e}");
    env.write("not.json", "{}");
    let e = env.fails(1, &["audit", "verify", "--file", "not.json"]);
    assert!(e.contains("not an audit export"), "{e}");
}
