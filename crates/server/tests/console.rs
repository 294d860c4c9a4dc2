//! Issue 18, item 1: the operator's console (`ferrota_console`) as `ferrota serve` serves it
//! ([`ferrota_server::server::http_router`]: the API and the console on one router), called in
//! memory. The browser drives the happy path (scripts/browser-test.sh); these tests hold the
//! refusals: every bad input ends in a clear page and leaves the stored state as it was.

use axum::body::Body;
use axum::http::{Request, header};
use serde_json::json;
use tower::ServiceExt as _;

use crate::common::*;

/// One answer: status, headers, body as text.
struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(s: &Mem, req: Request<Body>) -> Answer {
    let app = ferrota_server::server::http_router(s.admin.clone(), "test-token".into());
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        // Read as a person reads the page: HTML's escapes of quotes and ampersands undone.
        body: String::from_utf8_lossy(&bytes)
            .replace("&#34;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&"),
    }
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .uri(path)
        .header(header::HOST, "console.test");
    if let Some(t) = token {
        b = b.header(header::COOKIE, format!("ferrota_console={t}"));
    }
    b.body(Body::empty()).unwrap()
}

fn post_form(
    path: &str,
    token: &str,
    form: &[(&str, &str)],
    origin: Option<&str>,
) -> Request<Body> {
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{k}={}", ferrota_console_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut b = Request::builder()
        .method("POST")
        .uri(path)
        .header(header::HOST, "console.test")
        .header(header::COOKIE, format!("ferrota_console={token}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    b.body(Body::from(body)).unwrap()
}

/// application/x-www-form-urlencoded of one value.
fn ferrota_console_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One multipart field: name, file name (a file input) or none (a text input), content.
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

fn multipart(token: &str, parts: &[Part<'_>]) -> Request<Body> {
    let boundary = "ferrota-test-boundary";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Request::builder()
        .method("POST")
        .uri("/ui/releases")
        .header(header::HOST, "console.test")
        .header(header::COOKIE, format!("ferrota_console={token}"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn pages_need_a_sign_in_and_a_wrong_token_is_said_so() {
    let s = Mem::new();
    let a = send(&s, get("/ui/rollouts", None)).await;
    assert_eq!(a.status, 303);
    assert_eq!(a.headers[header::LOCATION], "/ui/login?next=/ui/rollouts");
    // A wrong token: the form again with the reason, no cookie.
    let login = |token: &str| {
        Request::builder()
            .method("POST")
            .uri("/ui/login")
            .header(header::HOST, "console.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}&next=/ui/rollouts")))
            .unwrap()
    };
    let a = send(&s, login("fer_wrong")).await;
    assert_eq!(a.status, 401);
    assert!(
        a.body.contains("that token is wrong or revoked"),
        "{}",
        a.body
    );
    assert!(a.headers.get(header::SET_COOKIE).is_none());
    // The right one: kept in an HttpOnly, SameSite=Strict cookie, back to the page asked for.
    let a = send(&s, login("test-token")).await;
    assert_eq!(a.status, 303);
    assert_eq!(a.headers[header::LOCATION], "/ui/rollouts");
    let cookie = a.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // Signed in from an HTTPS page, the cookie is also Secure (never sent in clear).
    let a = send(
        &s,
        Request::builder()
            .method("POST")
            .uri("/ui/login")
            .header(header::HOST, "console.test")
            .header(header::ORIGIN, "https://console.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("token=test-token"))
            .unwrap(),
    )
    .await;
    let cookie = a.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    // A stale cookie (a revoked token) leads back to the sign-in page, not to an error.
    let a = send(&s, get("/ui/", Some("fer_revoked"))).await;
    assert_eq!(
        (a.status, &a.headers[header::LOCATION]),
        (303, &"/ui/login".parse().unwrap())
    );
}

#[tokio::test]
async fn a_change_from_another_site_is_refused_before_the_api_is_asked() {
    let s = Mem::new();
    s.thing("d1").await;
    s.data_ota("r1", "thing/d1", b"firmware").await;
    let records = |s: &Mem| {
        let s = s.admin.clone();
        async move { s.services.store.audit_records(0, 1000).await.unwrap().len() }
    };
    let before = records(&s).await;
    let a = send(
        &s,
        post_form(
            "/ui/rollouts/r1/cancel",
            "test-token",
            &[],
            Some("https://evil.example"),
        ),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("another site"), "{}", a.body);
    let (_, d) = s.api("GET", "/api/ota-updates/r1", None).await;
    assert_ne!(d["jobState"], "CANCELED", "{d}");
    assert_eq!(records(&s).await, before, "nothing reached the API");
    // From the console's own page (same host) the same request is carried out.
    let a = send(
        &s,
        post_form(
            "/ui/rollouts/r1/cancel",
            "test-token",
            &[],
            Some("http://console.test"),
        ),
    )
    .await;
    assert_eq!(a.status, 303, "{}", a.body);
}

#[tokio::test]
async fn a_bad_release_is_refused_by_name_and_nothing_is_uploaded() {
    use ferrota_keys::{KeyType, PrivateKey};
    let s = Mem::new();
    let key = || {
        PrivateKey::generate(KeyType::EcdsaP256)
            .unwrap()
            .into_ota_signing_key()
            .unwrap()
    };
    let (signer, other) = (key(), key());
    let cert = ferrota_keys::code_signing_certificate(&signer, "signer", 30).unwrap();
    let data = vec![0x5Au8; 4096];
    let sig = |k: &ferrota_image::p256::ecdsa::SigningKey, d: &[u8]| {
        let mut out = [0u8; ferrota_image::ota::MAX_P256_BASE64];
        ferrota_image::ota::sign_file(k, d)
            .unwrap()
            .to_base64(&mut out)
            .to_string()
    };
    let good = sig(&signer, &data);
    let by_other = sig(&other, &data);
    let cases: Vec<(Vec<Part<'_>>, &str)> = vec![
        (
            vec![
                ("image", Some("fw.bin"), &data),
                ("signature", Some("fw.sig"), good.as_bytes()),
                ("fileType", None, b"7"),
            ],
            "give the code-signing certificate",
        ),
        (
            vec![
                ("image", Some("fw.bin"), &data),
                ("signature", Some("fw.sig"), by_other.as_bytes()),
                ("certificate", Some("signer.crt"), cert.as_bytes()),
                ("fileType", None, b"7"),
            ],
            "does not verify",
        ),
        (
            vec![
                ("image", Some("fw.bin"), &data),
                ("signature", Some("fw.sig"), good.as_bytes()),
                ("certificate", Some("signer.crt"), cert.as_bytes()),
            ],
            "not a Ferrota bank image",
        ),
        (
            vec![
                ("image", Some("fw.bin"), &data),
                ("signatureText", None, b"not base64!"),
                ("certificate", Some("signer.crt"), cert.as_bytes()),
                ("fileType", None, b"7"),
            ],
            "not base64 of a DER",
        ),
        (
            vec![
                ("image", Some("fw.bin"), &data),
                ("signature", Some("fw.sig"), good.as_bytes()),
                (
                    "certificate",
                    Some("signer.pem"),
                    b"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
                ),
                ("fileType", None, b"7"),
            ],
            "code-signing certificate",
        ),
        (
            vec![("image", Some("fw.bin"), &data), ("surprise", None, b"1")],
            "unknown form field \"surprise\"",
        ),
    ];
    for (parts, why) in cases {
        let a = send(&s, multipart("test-token", &parts)).await;
        assert_eq!(a.status, 400, "{why}: {}", a.body);
        assert!(a.body.contains(why), "{why}: {}", a.body);
        assert!(a.body.contains("nothing was uploaded"), "{why}: {}", a.body);
    }
    assert!(s.stored_files().is_empty(), "{:?}", s.stored_files());
    // The same file, signed with the certificate's key: uploaded, offered for a rollout.
    let a = send(
        &s,
        multipart(
            "test-token",
            &[
                ("image", Some("fw.bin"), &data),
                ("signature", Some("fw.sig"), good.as_bytes()),
                ("certificate", Some("signer.crt"), cert.as_bytes()),
                ("fileType", None, b"7"),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("the signature verifies"), "{}", a.body);
    assert_eq!(s.stored_files().len(), 1);
}

#[tokio::test]
async fn a_bad_rollout_form_creates_nothing_and_says_why() {
    let s = Mem::new();
    s.thing("d1").await;
    let sha = s.admin.put_file(b"firmware").await.unwrap();
    let file = serde_json::to_string(&data_file("fw.bin", sha)).unwrap();
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut f = vec![("otaUpdateId", "r1"), ("things", "d1")];
        f.extend_from_slice(extra);
        f
    };
    for (form, why) in [
        (base(&[("waves", "canary")]), "wave \"canary\": no SIZE"),
        (base(&[("maxPerMinute", "0")]), "maximumPerMinute"),
        (
            base(&[("maintenanceWindows", "cron(0 2 * * ? *)=2000")]),
            "1430",
        ),
        (base(&[("abortFailedPercent", "5")]), "give both"),
    ] {
        let mut form = form;
        form.push(("file", &file));
        let a = send(&s, post_form("/ui/rollouts", "test-token", &form, None)).await;
        assert_eq!(a.status, 400, "{why}: {}", a.body);
        assert!(a.body.contains(why), "{why}: {}", a.body);
    }
    let mut no_release = base(&[]);
    no_release.push(("file", ""));
    let a = send(
        &s,
        post_form("/ui/rollouts", "test-token", &no_release, None),
    )
    .await;
    assert!(a.body.contains("choose a release"), "{}", a.body);
    let (_, list) = s.api("GET", "/api/ota-updates", None).await;
    assert_eq!(list, json!([]), "nothing was created");
    // The same form, right: created, and the browser goes to its live page. (A refused create
    // removes an upload no update uses, so the file is uploaded again.)
    s.admin.put_file(b"firmware").await.unwrap();
    let mut ok = base(&[("waves", "canary:1:approve\nrest:100%")]);
    ok.push(("file", &file));
    let a = send(&s, post_form("/ui/rollouts", "test-token", &ok, None)).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.headers[header::LOCATION], "/ui/rollouts/r1");
    let page = send(&s, get("/ui/rollouts/r1", Some("test-token"))).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("data-testid=\"wave-1\""),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_viewer_sees_the_pages_but_cannot_start_or_steer_a_rollout() {
    let s = Mem::new();
    s.thing("d1").await;
    s.data_ota("r1", "thing/d1", b"firmware").await;
    let (viewer, _) = operator_token(&s, "vera", "viewer").await;
    for page in [
        "/ui/",
        "/ui/rollouts",
        "/ui/rollouts/r1",
        "/ui/things/d1",
        "/ui/audit",
    ] {
        let a = send(&s, get(page, Some(&viewer))).await;
        assert_eq!(a.status, 200, "{page}: {}", a.body);
    }
    let sha = s.admin.put_file(b"other").await.unwrap();
    let file = serde_json::to_string(&data_file("fw.bin", sha)).unwrap();
    let form = [
        ("otaUpdateId", "r2"),
        ("things", "d1"),
        ("file", file.as_str()),
    ];
    let a = send(&s, post_form("/ui/rollouts", &viewer, &form, None)).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("AccessDeniedException"), "{}", a.body);
    let a = send(&s, post_form("/ui/rollouts/r1/cancel", &viewer, &[], None)).await;
    assert_eq!(a.status, 403, "{}", a.body);
    let (st, _) = s.api("GET", "/api/ota-updates/r2", None).await;
    assert_eq!(st, 404, "r2 was not created");
    let (_, d) = s.api("GET", "/api/ota-updates/r1", None).await;
    assert_ne!(d["jobState"], "CANCELED", "{d}");
    // Both refusals are in the audit log, under the viewer's token name.
    let log = s.admin.services.store.audit_records(0, 1000).await.unwrap();
    let refused: Vec<_> = log
        .iter()
        .filter(|(_, r)| r.entry.actor == "vera" && r.entry.result.starts_with("403"))
        .map(|(_, r)| r.entry.action.clone())
        .collect();
    assert_eq!(refused, ["CreateOTAUpdate", "CancelRollout"], "{log:?}");
}

#[tokio::test]
async fn the_live_view_streams_the_rollout_as_server_sent_events() {
    let s = Mem::new();
    s.thing("d1").await;
    s.data_ota("r1", "thing/d1", b"firmware").await;
    let app = ferrota_server::server::http_router(s.admin.clone(), "test-token".into());
    let resp = app
        .oneshot(get("/ui/rollouts/r1/events", Some("test-token")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    use http_body_util::BodyExt as _;
    let mut body = resp.into_body();
    let frame = tokio::time::timeout(T, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(frame.data_ref().unwrap()).into_owned();
    assert!(text.starts_with("event: progress\n"), "{text}");
    assert!(text.contains("data-testid=\"rollout-status\""), "{text}");
    // A rollout that does not exist: one `problem` event, then the stream ends.
    let app = ferrota_server::server::http_router(s.admin.clone(), "test-token".into());
    let resp = app
        .oneshot(get("/ui/rollouts/nope/events", Some("test-token")))
        .await
        .unwrap();
    let all = tokio::time::timeout(T, axum::body::to_bytes(resp.into_body(), 1 << 20))
        .await
        .unwrap()
        .unwrap();
    let all = String::from_utf8_lossy(&all);
    assert!(all.starts_with("event: problem\ndata: 404"), "{all}");
}
