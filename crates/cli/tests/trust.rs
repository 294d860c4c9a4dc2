//! Signed update metadata (#20): `key trust-init`, `key trust-show`, `key rotate`,
//! `release sign`, `release verify`.

use std::collections::BTreeMap;

use ferrota_manifest::build::{self, ManifestSpec};

use crate::common::{Env, pack};

/// A trust directory `trust`, a boot key and a packed bank image `app.bin`.
fn setup() -> Env {
    let env = Env::new();
    env.ok(&["key", "trust-init", "--dir", "trust"]);
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    pack(&env, "boot.pem", "app.bin");
    env
}

fn sign(env: &Env, seq: &str, out: &str) -> String {
    env.ok(&[
        "release",
        "sign",
        "--trust",
        "trust",
        "--image",
        "app.bin",
        "--sequence",
        seq,
        "-o",
        out,
    ])
}

fn verify(env: &Env, anchor: &str, image: &str, manifest: &str) -> std::process::Output {
    env.run(&[
        "release", "verify", "--anchor", anchor, "--image", image, manifest,
    ])
}

fn verify_ok(env: &Env, anchor: &str, manifest: &str) -> String {
    env.ok(&[
        "release", "verify", "--anchor", anchor, "--image", "app.bin", manifest,
    ])
}

fn verify_fails(env: &Env, anchor: &str, image: &str, manifest: &str) -> String {
    let o = verify(env, anchor, image, manifest);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "should fail: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// An envelope for `app.bin` signed by `key` (a PEM file in the env), carrying `roots`.
fn envelope_by(env: &Env, key: &str, seq: u32, roots: &[&str]) -> Vec<u8> {
    let key = ferrota_keys::load_ota_signing_key(&env.path(key)).expect("key");
    let spec = ManifestSpec::from_bank_image(&env.read("app.bin")).expect("spec");
    let roots: Vec<Vec<u8>> = roots.iter().map(|r| env.read(r)).collect();
    build::envelope(&spec, seq, 0, None, &key, &roots)
}

/// Every file of the trust directory with its bytes.
/// `ferrota release sign --trust trust --image app.bin ARGS` must exit with `code`: its stderr.
fn sign_fails(env: &Env, code: i32, args: &[&str]) -> String {
    let mut all = vec!["release", "sign", "--trust", "trust", "--image", "app.bin"];
    all.extend_from_slice(args);
    env.fails(code, &all)
}

/// `ferrota key rotate --dir trust ARGS` must exit with `code`: its stderr.
fn rotate_fails(env: &Env, code: i32, args: &[&str]) -> String {
    let mut all = vec!["key", "rotate", "--dir", "trust"];
    all.extend_from_slice(args);
    env.fails(code, &all)
}

fn snapshot(env: &Env, dir: &str) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(env.path(dir))
        .expect("dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}

#[test]
fn init_sign_verify_round_trip() {
    let env = setup();
    for f in [
        "root-1.pem",
        "root-2.pem",
        "root-3.pem",
        "release-1.pem",
        "timestamp-1.pem",
        "root-1.cbor",
    ] {
        assert!(env.exists(&format!("trust/{f}")), "{f}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.path("trust/release-1.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let show = env.ok(&["key", "trust-show", "--dir", "trust"]);
    assert!(show.contains("root version 1"), "{show}");
    assert!(show.contains("thresholds: root 2"), "{show}");
    assert!(show.contains("revoked boot-key slots: none"), "{show}");
    let keys = |role: &str| {
        show.lines()
            .filter(|l| l.starts_with("key ") && l.split_whitespace().nth(2) == Some(role))
            .count()
    };
    assert_eq!(
        (keys("root"), keys("release"), keys("timestamp")),
        (3, 1, 1),
        "{show}"
    );
    assert!(show.contains("release-1.pem"), "{show}");

    let out = sign(&env, "7", "app.suit");
    assert!(out.contains("sequence 7"), "{out}");
    let b64 = out
        .lines()
        .find_map(|l| l.strip_prefix("sig-sha256-ecdsa: "))
        .expect("signature line")
        .to_string();
    // The printed OTA signature is the release key's over the image.
    env.ok(&[
        "image",
        "verify",
        "app.bin",
        "--ota-signature",
        &b64,
        "--key",
        "trust/release-1.pem",
    ]);
    let v = verify_ok(&env, "trust/root-1.cbor", "app.suit");
    assert!(v.contains("sequence 7"), "{v}");
    assert!(v.contains("version 1.2.3, security counter 4"), "{v}");
    assert!(v.contains("matches"), "{v}");

    // Not overwritten without --force; replaced with it.
    let before = env.read("app.suit");
    let err = sign_fails(&env, 1, &["--sequence", "8", "-o", "app.suit"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(env.read("app.suit"), before);
    env.ok(&[
        "release",
        "sign",
        "--trust",
        "trust",
        "--image",
        "app.bin",
        "--sequence",
        "8",
        "-o",
        "app.suit",
        "--force",
    ]);
    assert!(verify_ok(&env, "trust/root-1.cbor", "app.suit").contains("sequence 8"));
}

#[test]
fn verify_refuses_forgeries() {
    let env = setup();
    sign(&env, "1", "app.suit");

    // A changed image of the same size.
    let mut img = env.read("app.bin");
    let last = img.len() - 1;
    img[last] ^= 1;
    env.write("evil.bin", &img);
    let err = verify_fails(&env, "trust/root-1.cbor", "evil.bin", "app.suit");
    assert!(err.contains("is not the manifest's"), "{err}");

    // Signed by the timestamp key: known, but not a release key.
    env.write(
        "ts.suit",
        envelope_by(&env, "trust/timestamp-1.pem", 2, &[]),
    );
    let err = verify_fails(&env, "trust/root-1.cbor", "app.bin", "ts.suit");
    assert!(
        err.contains("manifest signer lacks the required role (sub 4)"),
        "{err}"
    );

    // Signed by a key the root does not list (stolen or made up).
    env.ok(&["key", "generate", "-o", "thief.pem"]);
    env.write("thief.suit", envelope_by(&env, "thief.pem", 2, &[]));
    let err = verify_fails(&env, "trust/root-1.cbor", "app.bin", "thief.suit");
    assert!(
        err.contains("manifest signer is not in the trusted root (sub 4)"),
        "{err}"
    );

    // Another fleet's anchor.
    env.ok(&["key", "trust-init", "--dir", "other"]);
    let err = verify_fails(&env, "other/root-1.cbor", "app.bin", "app.suit");
    assert!(err.contains("signer is not in the trusted root"), "{err}");

    // Not a manifest; not an anchor.
    env.write("junk.suit", b"\xd8\x6bnot a manifest");
    let err = verify_fails(&env, "trust/root-1.cbor", "app.bin", "junk.suit");
    assert!(err.contains("junk.suit: refused: manifest"), "{err}");
    let err = verify_fails(&env, "app.suit", "app.bin", "app.suit");
    assert!(err.contains("refused as a trust anchor"), "{err}");

    // The genuine one still verifies.
    verify_ok(&env, "trust/root-1.cbor", "app.suit");
}

#[test]
fn rotation_walks_from_the_first_anchor() {
    let env = setup();
    sign(&env, "1", "old.suit");
    let out = env.ok(&["key", "rotate", "--dir", "trust", "--role", "release"]);
    assert!(out.contains("root 2"), "{out}");
    assert!(env.exists("trust/release-2.pem") && env.exists("trust/root-2.cbor"));
    let show = env.ok(&["key", "trust-show", "--dir", "trust"]);
    assert!(show.contains("root version 2"), "{show}");
    assert!(
        show.contains("release-2.pem") && !show.contains("release-1.pem"),
        "{show}"
    );

    // The new release key's manifest carries root 2: a device on root 1 walks to it.
    sign(&env, "2", "new.suit");
    let v = verify_ok(&env, "trust/root-1.cbor", "new.suit");
    assert!(v.contains("root 2 reached"), "{v}");

    // The old key's manifests are refused once the device trusts root 2.
    let err = verify_fails(&env, "trust/root-2.cbor", "app.bin", "old.suit");
    assert!(
        err.contains("manifest signer is not in the trusted root"),
        "{err}"
    );
    env.write(
        "old2.suit",
        envelope_by(&env, "trust/release-1.pem", 3, &["trust/root-2.cbor"]),
    );
    let err = verify_fails(&env, "trust/root-1.cbor", "app.bin", "old2.suit");
    assert!(
        err.contains("manifest signer is not in the trusted root"),
        "{err}"
    );

    // A new anchor over a rotated directory would strand root 2: refused, even with --force.
    let before = snapshot(&env, "trust");
    let err = env.fails(1, &["key", "trust-init", "--dir", "trust", "--force"]);
    assert!(err.contains("holds root-2.cbor"), "{err}");
    assert_eq!(snapshot(&env, "trust"), before);
    // The design's spellings: --root for the anchor, --out for the output.
    env.ok(&[
        "release",
        "sign",
        "--trust",
        "trust",
        "--image",
        "app.bin",
        "--sequence",
        "2",
        "--out",
        "alias.suit",
    ]);
    env.ok(&[
        "release",
        "verify",
        "--root",
        "trust/root-1.cbor",
        "--image",
        "app.bin",
        "alias.suit",
    ]);

    // Root and timestamp rotations: 1 -> 2 -> 3 -> 4 still walks from root 1.
    env.ok(&["key", "rotate", "--dir", "trust", "--role", "root"]);
    env.ok(&["key", "rotate", "--dir", "trust", "--role", "timestamp"]);
    let show = env.ok(&["key", "trust-show", "--dir", "trust"]);
    assert!(show.contains("root version 4"), "{show}");
    assert!(
        show.contains("root-4.pem") && !show.contains("root-1.pem"),
        "{show}"
    );
    assert!(show.contains("timestamp-2.pem"), "{show}");
    sign(&env, "3", "v4.suit");
    let v = verify_ok(&env, "trust/root-1.cbor", "v4.suit");
    assert!(v.contains("root 4 reached"), "{v}");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let env = setup();
    let before = snapshot(&env, "trust");

    // An existing trust directory is not replaced without --force.
    let err = env.fails(1, &["key", "trust-init", "--dir", "trust"]);
    assert!(err.contains("already exists (use --force"), "{err}");
    assert_eq!(snapshot(&env, "trust"), before);

    // A threshold no root could meet.
    let err = env.fails(
        1,
        &[
            "key",
            "trust-init",
            "--dir",
            "t2",
            "--root-keys",
            "2",
            "--threshold",
            "3",
        ],
    );
    assert!(
        err.contains("--threshold 3 is more than --root-keys 2"),
        "{err}"
    );
    assert!(!env.exists("t2"));
    env.fails(2, &["key", "trust-init", "--dir", "t2", "--root-keys", "4"]);
    assert!(!env.exists("t2"));

    // Missing trust directories.
    for args in [
        &["key", "trust-show", "--dir", "nope"][..],
        &["key", "rotate", "--dir", "nope", "--role", "release"][..],
        &[
            "release",
            "sign",
            "--trust",
            "nope",
            "--image",
            "app.bin",
            "--sequence",
            "1",
            "-o",
            "x.suit",
        ][..],
    ] {
        let err = env.fails(1, args);
        assert!(err.contains("nope: no such trust directory"), "{err}");
    }
    assert!(!env.exists("nope"));

    // Bad --expires, sequence 0, an image that is not a bank.
    for bad in ["5x", "0d", "d", "+3d", "90", "3 d", "99999999999999999d"] {
        let err = sign_fails(
            &env,
            2,
            &["--sequence", "1", "--expires", bad, "-o", "x.suit"],
        );
        assert!(err.contains("--expires"), "{err}");
    }
    let err = sign_fails(&env, 2, &["--sequence", "0", "-o", "x.suit"]);
    assert!(err.contains("--sequence"), "{err}");
    env.write("junk.bin", b"not a bank image");
    let err = env.fails(
        1,
        &[
            "release",
            "sign",
            "--trust",
            "trust",
            "--image",
            "junk.bin",
            "--sequence",
            "1",
            "-o",
            "x.suit",
        ],
    );
    assert!(
        err.contains("junk.bin: cannot describe in a manifest"),
        "{err}"
    );
    let err = env.fails(
        1,
        &[
            "release",
            "sign",
            "--trust",
            "trust",
            "--image",
            "missing.bin",
            "--sequence",
            "1",
            "-o",
            "x.suit",
        ],
    );
    assert!(err.contains("missing.bin: cannot read"), "{err}");
    assert!(!env.exists("x.suit"));

    // Without the release key, nothing is signed.
    std::fs::remove_file(env.path("trust/release-1.pem")).unwrap();
    let err = sign_fails(&env, 1, &["--sequence", "1", "-o", "x.suit"]);
    assert!(err.contains("no private key for a release key"), "{err}");
    assert!(!env.exists("x.suit"));
    env.write("trust/release-1.pem", &before["release-1.pem"]);

    // A tampered root document stops every command that reads the chain.
    env.ok(&["key", "rotate", "--dir", "trust", "--role", "release"]);
    let good = env.read("trust/root-2.cbor");
    let mut bad = good.clone();
    // A payload byte (a key of the list): every signature breaks. (One broken signature out of
    // three still leaves the threshold of two met: by design, it counts for nothing.)
    bad[40] ^= 1;
    env.write("trust/root-2.cbor", &bad);
    let after_rotate = snapshot(&env, "trust");
    let err = env.fails(1, &["key", "trust-show", "--dir", "trust"]);
    assert!(err.contains("root-2.cbor: refused after root 1"), "{err}");
    let err = rotate_fails(&env, 1, &["--role", "timestamp"]);
    assert!(err.contains("root-2.cbor: refused after root 1"), "{err}");
    assert_eq!(snapshot(&env, "trust"), after_rotate);
}

#[test]
fn expiry_is_signed() {
    let env = setup();
    env.ok(&[
        "release",
        "sign",
        "--trust",
        "trust",
        "--image",
        "app.bin",
        "--sequence",
        "1",
        "--expires",
        "never",
        "--thing",
        "car-17",
        "-o",
        "a.suit",
    ]);
    let v = verify_ok(&env, "trust/root-1.cbor", "a.suit");
    assert!(v.contains("expires never"), "{v}");
    assert!(v.contains("for one thing"), "{v}");
    env.ok(&[
        "release",
        "sign",
        "--trust",
        "trust",
        "--image",
        "app.bin",
        "--sequence",
        "2",
        "--expires",
        "1h",
        "-o",
        "b.suit",
    ]);
    let v = verify_ok(&env, "trust/root-1.cbor", "b.suit");
    assert!(v.contains("expires ") && !v.contains("never"), "{v}");
}

#[test]
fn rotate_revokes_boot_key_slots() {
    let env = setup();
    let out = env.ok(&[
        "key",
        "rotate",
        "--dir",
        "trust",
        "--revoke-boot-keys",
        "0x2",
    ]);
    assert!(out.contains("boot-key slots revoked 0x02"), "{out}");
    let show = env.ok(&["key", "trust-show", "--dir", "trust"]);
    assert!(show.contains("root version 2"), "{show}");
    assert!(show.contains("revoked boot-key slots: 1"), "{show}");
    // The keys stay; a manifest still walks from root 1.
    assert!(!env.exists("trust/release-2.pem"));
    sign(&env, "1", "a.suit");
    assert!(verify_ok(&env, "trust/root-1.cbor", "a.suit").contains("root 2 reached"));

    // With a release rotation, the revocation is kept (revocations are cumulative).
    env.ok(&[
        "key",
        "rotate",
        "--dir",
        "trust",
        "--role",
        "release",
        "--revoke-boot-keys",
        "1",
    ]);
    let show = env.ok(&["key", "trust-show", "--dir", "trust"]);
    assert!(show.contains("revoked boot-key slots: 0, 1"), "{show}");

    let before = snapshot(&env, "trust");
    let err = rotate_fails(&env, 1, &["--revoke-boot-keys", "0x2"]);
    assert!(err.contains("already revokes these slots"), "{err}");
    let err = rotate_fails(&env, 1, &["--revoke-boot-keys", "0x80"]);
    assert!(err.contains("the new root 4 is refused"), "{err}");
    rotate_fails(&env, 2, &["--revoke-boot-keys", "0"]);
    rotate_fails(&env, 2, &["--revoke-boot-keys", "slot1"]);
    env.fails(2, &["key", "rotate", "--dir", "trust"]);
    assert_eq!(snapshot(&env, "trust"), before);
}

/// The key ids `key trust-show` lists for `role`.
fn kids(env: &Env, role: &str) -> Vec<String> {
    env.ok(&["key", "trust-show", "--dir", "trust"])
        .lines()
        .filter(|l| l.starts_with("key ") && l.split_whitespace().nth(2) == Some(role))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

#[test]
fn revoke_writes_a_root_without_the_key_and_refuses_the_last_of_a_role() {
    let env = setup();
    let before = snapshot(&env, "trust");
    // The only release key, an unknown kid, a malformed kid: refused, nothing written.
    let release = kids(&env, "release");
    let err = env.fails(
        1,
        &["key", "revoke", "--dir", "trust", "--kid", &release[0]],
    );
    assert!(err.contains("the only release key"), "{err}");
    let err = env.fails(
        1,
        &[
            "key",
            "revoke",
            "--dir",
            "trust",
            "--kid",
            "0011223344556677",
        ],
    );
    assert!(err.contains("not a key of root 1"), "{err}");
    let err = env.fails(1, &["key", "revoke", "--dir", "trust", "--kid", "xyz"]);
    assert!(err.contains("16 hex digits"), "{err}");
    assert_eq!(snapshot(&env, "trust"), before);

    // Revoking one of three root keys (threshold 2): root 2, walked from root 1.
    let roots = kids(&env, "root");
    assert_eq!(roots.len(), 3);
    let out = env.ok(&["key", "revoke", "--dir", "trust", "--kid", &roots[0]]);
    assert!(out.contains("root 2"), "{out}");
    let anchor =
        ferrota_manifest::TrustedRoot::from_anchor(&env.read("trust/root-1.cbor")).unwrap();
    let doc = env.read("trust/root-2.cbor");
    let r2 = ferrota_manifest::walk_roots(&anchor, std::iter::once(doc.as_slice())).unwrap();
    assert_eq!(r2.version(), 2);
    assert_eq!(r2.keys().count(), 4);
    assert!(!kids(&env, "root").contains(&roots[0]));
    // A second one would leave one root key under threshold 2.
    let err = env.fails(1, &["key", "revoke", "--dir", "trust", "--kid", &roots[1]]);
    assert!(err.contains("only 1 root keys"), "{err}");
    // A manifest signed now carries root 2 and verifies from root 1.
    sign(&env, "3", "app.suit");
    verify_ok(&env, "trust/root-1.cbor", "app.suit");
    assert!(env.exists("app.suit.sig"));
}

/// trust-init → release sign → `ota create --manifest` against `serve --trust-dir`: the
/// device-facing notify-next carries a timestamp for the thing naming the manifest file; a
/// manifest of another image is refused and nothing is stored.
#[test]
fn ota_create_with_a_manifest_on_a_trust_server_timestamps_jobs() {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    use std::process::{Command, Stdio};
    let env = setup();
    env.ok(&["ca", "init", "--data-dir", "data"]);
    crate::common::thing_create(&env, "dev-1", "bundles", &[]);
    let out = sign(&env, "7", "app.suit");
    let b64 = out
        .lines()
        .find_map(|l| l.strip_prefix("sig-sha256-ecdsa: "))
        .expect("signature line")
        .to_string();
    env.write("app.bin.sig", format!("{b64}\n"));
    let s = crate::common::serve_with(&env, &["--trust-dir", "trust"]);
    let dir = "bundles/dev-1";
    let sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &s.mqtt_port.to_string()])
        .args(["--cafile", &format!("{dir}/root-ca.pem")])
        .args(["--cert", &format!("{dir}/dev-1.crt.pem")])
        .args(["--key", &format!("{dir}/dev-1.key.pem")])
        .args(["-i", "dev-1", "-V", "mqttv311", "-q", "1"])
        .args([
            "-t",
            "$aws/things/dev-1/jobs/notify-next",
            "-C",
            "1",
            "-W",
            "20",
        ])
        .current_dir(env.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    if sub.is_ok() {
        std::thread::sleep(std::time::Duration::from_millis(800));
    }
    // A manifest of another image: refused by the server, nothing stored.
    let mut other_img = env.read("app.bin");
    let n = other_img.len();
    other_img[n - 1] ^= 1;
    env.write("other.bin", &other_img);
    let key = ferrota_keys::load_ota_signing_key(&env.path("trust/release-1.pem")).unwrap();
    let sig = ferrota_image::ota::sign_file(&key, &other_img).unwrap();
    let mut buf = [0u8; ferrota_image::ota::MAX_P256_BASE64];
    env.write("other.bin.sig", sig.to_base64(&mut buf));
    let err = env.fails(
        1,
        &[
            "ota",
            "create",
            "bad",
            "--file",
            "other.bin",
            "--file-type",
            "7",
            "--manifest",
            "app.suit",
            "--manifest-signature",
            "app.suit.sig",
            "--thing",
            "dev-1",
            "--api",
            &s.http,
            "--data-dir",
            "data",
        ],
    );
    assert!(
        err.contains("image SHA-256") || err.contains("fileType 142"),
        "{err}"
    );
    assert!(
        crate::common::uploads(&env).is_empty(),
        "{:?}",
        crate::common::uploads(&env)
    );

    let out = ota_create(
        &env,
        &s.http,
        &[
            "rel-7",
            "--file",
            "app.bin",
            "--manifest",
            "app.suit",
            "--thing",
            "dev-1",
        ],
    );
    assert!(out.contains("AFR_OTA-rel-7"), "{out}");
    let Ok(sub) = sub else {
        println!("note: mosquitto_sub not installed; the device-facing part was skipped");
        return;
    };
    let o = sub.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(
        v["execution"]["jobDocument"]["afr_ota"]["files"][1]["fileType"],
        142
    );
    let ts = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v["ferrotaTimestamp"].as_str().expect("ferrotaTimestamp"))
        .unwrap();
    let anchor =
        ferrota_manifest::TrustedRoot::from_anchor(&env.read("trust/root-1.cbor")).unwrap();
    let t = ferrota_manifest::verify_timestamp(&ts, &anchor, "dev-1").unwrap();
    let want: [u8; 32] = Sha256::digest(env.read("app.suit")).into();
    assert_eq!(t.metadata, Some(want));
    assert_eq!(t.expires - t.time, 3600);
}

/// Build item 4 on the simulated board: `thing create --trust-root` makes a bundle whose
/// device.toml requires signed metadata; against `serve --trust-dir`, a job made with
/// `ota create --manifest` SUCCEEDS with the manifest accepted, and a later job without one
/// ends FAILED `0x000000e3: 0x00000003` before any image block, the board still running the
/// image it had.
#[test]
fn a_board_that_requires_manifests_takes_a_signed_release_and_refuses_a_plain_one() {
    use crate::common::{pack_version, serve_with, thing_create};
    let env = Env::new();
    env.ok(&["key", "trust-init", "--dir", "trust"]);
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    env.ok(&["ca", "init", "--data-dir", "data"]);
    // The AWS code-signing certificate the bundle pins: the release key's (a manifest job's
    // image is signed by the release key, which the manifest names).
    env.ok(&[
        "cert",
        "code-signing",
        "--key",
        "trust/release-1.pem",
        "-o",
        "release.crt",
    ]);
    // A refused anchor leaves no thing and no bundle.
    env.write("junk.cbor", b"not a root");
    let err = env.fails(
        1,
        &[
            "thing",
            "create",
            "dev-1",
            "--data-dir",
            "data",
            "-o",
            "bundles",
            "--trust-root",
            "junk.cbor",
        ],
    );
    assert!(err.contains("refused as a trust anchor"), "{err}");
    assert!(!env.exists("bundles/dev-1"));

    let s = serve_with(&env, &["--trust-dir", "trust"]);
    thing_create(
        &env,
        "dev-1",
        "bundles",
        &[
            "--code-signing-cert",
            "release.crt",
            "--trust-root",
            "trust/root-1.cbor",
            "--mqtt-port",
            &s.mqtt_port.to_string(),
        ],
    );
    assert_eq!(
        env.read("bundles/dev-1/root-1.cbor"),
        env.read("trust/root-1.cbor")
    );
    let toml = String::from_utf8(env.read("bundles/dev-1/device.toml")).unwrap();
    assert!(
        toml.contains("[trust]")
            && toml.contains("policy = \"require\"")
            && toml.contains("root = \"root-1.cbor\""),
        "{toml}"
    );

    // dev-2: the same fleet without --trust-root (policy aws-plain, no [trust] table).
    thing_create(
        &env,
        "dev-2",
        "bundles",
        &[
            "--code-signing-cert",
            "release.crt",
            "--mqtt-port",
            &s.mqtt_port.to_string(),
        ],
    );
    let toml2 = String::from_utf8(env.read("bundles/dev-2/device.toml")).unwrap();
    assert!(!toml2.contains("[trust]"), "{toml2}");
    assert!(!env.exists("bundles/dev-2/root-1.cbor"));

    pack_version(&env, "1.0.0", false, "v1.bin");
    pack_version(&env, "1.2.3", false, "app.bin");
    pack_version(&env, "1.3.0", false, "plain.bin");
    new_board(&env, "dev.t2g", Some("KIT_T2G"));
    // `require` on a board provisioned without a hardware id: refused at start, named.
    new_board(&env, "nohw.t2g", None);
    let err = env.fails(
        1,
        &[
            "device",
            "run",
            "--config",
            "bundles/dev-1/device.toml",
            "--flash",
            "nohw.t2g",
            "--exit-after",
            "job",
            "--timeout",
            "20",
        ],
    );
    assert!(
        err.contains("needs a board provisioned with a hardware id"),
        "{err}"
    );
    new_board(&env, "dev2.t2g", Some("KIT_T2G"));
    sign(&env, "7", "app.suit");
    env.ok(&[
        "image",
        "sign-ota",
        "app.bin",
        "--key",
        "trust/release-1.pem",
    ]);
    ota_create(
        &env,
        &s.http,
        &[
            "rel-7",
            "--file",
            "app.bin",
            "--manifest",
            "app.suit",
            "--thing",
            "dev-1",
        ],
    );
    let run = || device_run(&env, "bundles/dev-1/device.toml", "dev.t2g");
    let (ok, out, err) = run();
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("trust: signed manifest and timestamp required"),
        "{out}"
    );
    assert!(out.contains("signed timestamp accepted"), "{out}");
    assert!(
        out.contains("manifest accepted: sequence 7, version 1.2.3"),
        "{out}"
    );
    assert!(out.contains("job SUCCEEDED"), "{out}");
    assert!(!out.contains("plain AWS signature only"), "{out}");

    // The same board, a newer image in a job without a manifest (as real AWS would send).
    env.ok(&[
        "image",
        "sign-ota",
        "plain.bin",
        "--key",
        "trust/release-1.pem",
    ]);
    ota_create(
        &env,
        &s.http,
        &[
            "plain-8",
            "--file",
            "plain.bin",
            "--thing",
            "dev-1",
            "--thing",
            "dev-2",
        ],
    );
    let (ok, out, err) = run();
    assert!(!ok, "{out}\n{err}");
    assert!(
        err.contains("the OTA job FAILED: 0x000000e3: 0x00000003"),
        "{err}"
    );
    assert!(out.contains("CM7: app 1.2.3 running"), "{out}");
    assert!(!out.contains("download started"), "no image block: {out}");
    assert!(!out.contains("1.3.0"), "{out}");
    assert!(!out.contains("resetting"), "{out}");
    // dev-2 (aws-plain) takes the same job, with the warning in its log.
    let (ok, out, err) = device_run(&env, "bundles/dev-2/device.toml", "dev2.t2g");
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("WARNING: trust policy aws-plain"), "{out}");
    assert!(
        out.contains("WARNING: accepted on the plain AWS signature only (no signed manifest)"),
        "{out}"
    );
    assert!(out.contains("job SUCCEEDED"), "{out}");
    assert!(!out.contains("manifest accepted"), "{out}");

    // A signed manifest with an older sequence number (5 < 7): refused as a replay, which the
    // board can only know from the trust store it saved in its flash file in the first run.
    sign_image(&env, "plain.bin", "5", "old.suit");
    ota_create(
        &env,
        &s.http,
        &[
            "old-5",
            "--file",
            "plain.bin",
            "--manifest",
            "old.suit",
            "--thing",
            "dev-1",
        ],
    );
    let (_, out, err) = run();
    assert!(
        err.contains("the OTA job FAILED: 0x000000e3: 0x00000009"),
        "{out}\n{err}"
    );
    assert!(!out.contains("download started"), "no image block: {out}");
    assert!(out.contains("CM7: app 1.2.3 running"), "{out}");
}

/// `ferrota release sign --trust trust --image IMAGE --sequence SEQ -o OUT`.
fn sign_image(env: &Env, image: &str, seq: &str, out: &str) {
    env.ok(&[
        "release",
        "sign",
        "--trust",
        "trust",
        "--image",
        image,
        "--sequence",
        seq,
        "-o",
        out,
    ]);
}

/// `ferrota ota create ARGS --api HTTP --data-dir data`, which must succeed; its stdout.
fn ota_create(env: &Env, http: &str, args: &[&str]) -> String {
    let mut all = vec!["ota", "create"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--api", http, "--data-dir", "data"]);
    env.ok(&all)
}

/// A board file `file` booted with `boot.pem`, hardware id `hw`, v1.bin in the lower bank.
fn new_board(env: &Env, file: &str, hw: Option<&str>) {
    let mut args = vec!["t2g", "new", file, "--boot-key", "boot.pem"];
    if let Some(hw) = hw {
        args.extend_from_slice(&["--hardware", hw]);
    }
    env.ok(&args);
    env.ok(&["t2g", "program", file, "v1.bin", "--bank", "lower"]);
}

/// `ferrota device run --config CONFIG --flash FLASH --exit-after job --timeout 40`: whether
/// it exited 0, its stdout and its stderr.
fn device_run(env: &Env, config: &str, flash: &str) -> (bool, String, String) {
    let o = env.run(&[
        "device",
        "run",
        "--config",
        config,
        "--flash",
        flash,
        "--exit-after",
        "job",
        "--timeout",
        "40",
    ]);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
