//! RabbitMQ's HTTP auth backend asking Ferrota ([`ferrota_server::broker_auth`]): the answers
//! as RabbitMQ receives them (form bodies, `allow`/`deny`), for a thing with an active
//! certificate, a revoked one, a stranger, a password login, a wrong client id, its own and
//! another thing's topics, and a request without the secret.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ferrota_server::Policy;
use ferrota_server::broker_auth::BrokerAuth;
use ferrota_server::store::{CertRecord, CertStatus, MemoryStore, SharedStore, Store, Thing};
use tower::ServiceExt;

async fn store() -> SharedStore {
    let s = Arc::new(MemoryStore::new());
    for (name, id) in [("dev-1", "c1"), ("dev-2", "c2"), ("gone", "c3")] {
        s.create_thing(&Thing {
            name: name.into(),
            groups: vec![],
            created_at: 1,
        })
        .await
        .unwrap();
        s.add_certificate(&CertRecord {
            id: id.into(),
            thing: name.into(),
            serial: "01".into(),
            pem: String::new(),
            status: CertStatus::Active,
            created_at: 1,
            revoked_at: None,
        })
        .await
        .unwrap();
    }
    s.revoke_thing("gone", 2).await.unwrap();
    s
}

async fn ask(app: &axum::Router, path: &str, form: &[(&str, &str)]) -> String {
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('$', "%24").replace('/', "%2F")))
        .collect::<Vec<_>>()
        .join("&");
    let r = app
        .clone()
        .oneshot(
            Request::post(path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let b = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
    String::from_utf8(b.to_vec()).unwrap()
}

#[tokio::test]
async fn the_broker_asks_and_ferrota_decides_per_thing_without_broker_lines() {
    let app = BrokerAuth::new(store().await, Policy::default(), "s3cret".into()).router();
    let p = |q: &str| format!("/broker-auth/s3cret/{q}");

    // Login: a registered thing with an active certificate, by certificate (no password).
    assert_eq!(
        ask(&app, &p("user"), &[("username", "dev-1")]).await,
        "allow"
    );
    assert_eq!(ask(&app, &p("user"), &[("username", "gone")]).await, "deny");
    assert_eq!(
        ask(&app, &p("user"), &[("username", "stranger")]).await,
        "deny"
    );
    assert_eq!(
        ask(
            &app,
            &p("user"),
            &[("username", "dev-1"), ("password", "guess")]
        )
        .await,
        "deny",
        "a password login must never pass for a device"
    );
    // The client id must be the thing name.
    let vh = |c: &'static str| [("username", "dev-1"), ("vhost", "/"), ("client_id", c)];
    assert_eq!(ask(&app, &p("vhost"), &vh("dev-1")).await, "allow");
    assert_eq!(ask(&app, &p("vhost"), &vh("dev-2")).await, "deny");
    // Its own subscription queues and amq.topic; nothing else.
    let res = |kind: &'static str, name: &'static str| {
        [
            ("username", "dev-1"),
            ("resource", kind),
            ("name", name),
            ("permission", "write"),
        ]
    };
    assert_eq!(
        ask(&app, &p("resource"), &res("exchange", "amq.topic")).await,
        "allow"
    );
    assert_eq!(
        ask(
            &app,
            &p("resource"),
            &res("queue", "mqtt-subscription-dev-1qos1")
        )
        .await,
        "allow"
    );
    assert_eq!(
        ask(
            &app,
            &p("resource"),
            &res("queue", "mqtt-subscription-dev-2qos1")
        )
        .await,
        "deny"
    );
    assert_eq!(
        ask(&app, &p("resource"), &res("exchange", "amq.direct")).await,
        "deny"
    );
    // Topics: its own, by the same policy as Ferrota's own broker.
    let topic = |perm: &'static str, key: &'static str| {
        [
            ("username", "dev-1"),
            ("permission", perm),
            ("routing_key", key),
        ]
    };
    assert_eq!(
        ask(
            &app,
            &p("topic"),
            &topic("write", "$aws.things.dev-1.jobs.get")
        )
        .await,
        "allow"
    );
    assert_eq!(
        ask(
            &app,
            &p("topic"),
            &topic("write", "$aws.things.dev-2.jobs.get")
        )
        .await,
        "deny"
    );
    assert_eq!(
        ask(
            &app,
            &p("topic"),
            &topic("read", "$aws.things.dev-1.jobs.*.get.accepted")
        )
        .await,
        "allow"
    );
    assert_eq!(
        ask(
            &app,
            &p("topic"),
            &topic("read", "$aws.things.*.jobs.notify")
        )
        .await,
        "deny"
    );
    assert_eq!(
        ask(&app, &p("topic"), &topic("write", "$aws.things.dev-1.#")).await,
        "deny"
    );
    // Without the secret nothing is allowed.
    let wrong = "/broker-auth/guess/user";
    assert_eq!(ask(&app, wrong, &[("username", "dev-1")]).await, "deny");
    assert_eq!(
        ask(
            &app,
            "/broker-auth/guess/topic",
            &topic("write", "$aws.things.dev-1.jobs.get")
        )
        .await,
        "deny"
    );
}
