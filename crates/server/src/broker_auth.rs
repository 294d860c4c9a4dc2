//! Ferrota as the authority of a clustered broker: the answers RabbitMQ's HTTP auth backend
//! (`rabbitmq_auth_backend_http`) asks for, so the broker holds no line per thing.
//!
//! A RabbitMQ node configured by `docs/DEPLOY.md` logs a device in by its TLS certificate
//! (the chain checked against the fleet CA, the user name = the certificate's CN) and then
//! asks, by `POST` with a form body, four questions; each answer is the text `allow` or `deny`:
//!
//! | path | asked with | Ferrota allows when |
//! |---|---|---|
//! | `…/user` | `username` (and `password` when one was given) | no password (devices log in by certificate only), and `username` is a registered thing with an active certificate |
//! | `…/vhost` | `username`, `vhost`, `client_id` | the user is allowed, `vhost` is `/` and the MQTT client id is the thing name (AWS IoT's rule; the in-process broker applies it at CONNECT) |
//! | `…/resource` | `username`, `resource`, `name`, `permission` | the exchange `amq.topic`, or the thing's own MQTT subscription queues `mqtt-subscription-<thing>qos0`/`qos1` |
//! | `…/topic` | `username`, `permission`, `routing_key` | the topic (the routing key with `.` read as `/`, `*` as `+`) is one the [`Policy`] allows the thing to publish to (`write`) or subscribe to (`read`) |
//!
//! The same [`Policy`] decides as for devices on Ferrota's own broker, so a thing reaches its
//! own `$aws/things/<thing>/…` topics and nothing of another's. A revoked thing (no active
//! certificate left) is refused at its next login; revoking one of two certificates of a
//! thing needs the broker's own CRL (`ssl_options.crl_check`), see `docs/DEPLOY.md`.
//!
//! The routes live under `/broker-auth/<secret>/…`: RabbitMQ sends no credentials of its own,
//! so the secret in the path (`[broker] auth_secret`) is what keeps others from asking. Answer
//! `deny` on any doubt (a store error included): the broker then refuses, and the device
//! retries.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::routing::post;

use crate::policy::Policy;
use crate::store::{CertStatus, SharedStore};

/// What one auth request carries (RabbitMQ's form fields; unknown ones are ignored, as
/// RabbitMQ adds fields between versions).
pub type Fields = HashMap<String, String>;

/// The decisions, over the registry and the policy.
#[derive(Clone)]
pub struct BrokerAuth {
    store: SharedStore,
    policy: Policy,
    secret: String,
}

impl BrokerAuth {
    /// Decides over `store` with `policy`; requests must carry `secret` in their path.
    pub fn new(store: SharedStore, policy: Policy, secret: String) -> Self {
        BrokerAuth {
            store,
            policy,
            secret,
        }
    }

    /// May `username` log in (`password` absent: by certificate)?
    pub async fn user(&self, f: &Fields) -> bool {
        if f.get("password").is_some_and(|p| !p.is_empty()) {
            return false;
        }
        let Some(thing) = f.get("username") else {
            return false;
        };
        self.is_active_thing(thing).await
    }

    async fn is_active_thing(&self, thing: &str) -> bool {
        match self.store.certificates_of(thing).await {
            Ok(certs) => certs.iter().any(|c| c.status == CertStatus::Active),
            Err(e) => {
                tracing::warn!(thing, error = %e, "broker auth: registry read failed; denied");
                false
            }
        }
    }

    /// May `username` use virtual host `vhost` with MQTT client id `client_id`?
    pub async fn vhost(&self, f: &Fields) -> bool {
        let (Some(user), Some(vhost)) = (f.get("username"), f.get("vhost")) else {
            return false;
        };
        let client_ok = f.get("client_id").is_none_or(|c| c == user);
        vhost == "/" && client_ok && self.is_active_thing(user).await
    }

    /// May `username` use exchange or queue `name`?
    pub fn resource(&self, f: &Fields) -> bool {
        let (Some(user), Some(kind), Some(name)) =
            (f.get("username"), f.get("resource"), f.get("name"))
        else {
            return false;
        };
        match kind.as_str() {
            "exchange" => name == "amq.topic",
            "queue" => name
                .strip_prefix("mqtt-subscription-")
                .and_then(|r| r.strip_prefix(user.as_str()))
                .is_some_and(|q| q == "qos0" || q == "qos1"),
            _ => false,
        }
    }

    /// May `username` publish to (`write`) or subscribe to (`read`) `routing_key`?
    pub fn topic(&self, f: &Fields) -> bool {
        let (Some(user), Some(perm), Some(key)) =
            (f.get("username"), f.get("permission"), f.get("routing_key"))
        else {
            return false;
        };
        let topic = mqtt_topic(key);
        match perm.as_str() {
            "write" => !topic.contains(['+', '#']) && self.policy.allows_publish(user, &topic),
            "read" => self.policy.allows_subscribe(user, &topic),
            _ => false,
        }
    }

    /// The routes, under `/broker-auth/<secret>/`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/broker-auth/{secret}/user", post(user))
            .route("/broker-auth/{secret}/vhost", post(vhost))
            .route("/broker-auth/{secret}/resource", post(resource))
            .route("/broker-auth/{secret}/topic", post(topic))
            .with_state(self)
    }

    fn secret_ok(&self, given: &str) -> bool {
        !self.secret.is_empty()
            && crate::operators::constant_eq(given.as_bytes(), self.secret.as_bytes())
    }
}

/// RabbitMQ's MQTT plugin maps topic `a/b` to routing key `a.b` (and `.` in a topic to `/`);
/// subscriptions bind with `*` for `+`. This is the way back.
pub fn mqtt_topic(routing_key: &str) -> String {
    routing_key
        .split('.')
        .map(|level| match level {
            "*" => "+",
            l => l,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn answer(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}

async fn user(
    State(a): State<BrokerAuth>,
    Path(secret): Path<String>,
    Form(f): Form<Fields>,
) -> &'static str {
    answer(a.secret_ok(&secret) && a.user(&f).await)
}

async fn vhost(
    State(a): State<BrokerAuth>,
    Path(secret): Path<String>,
    Form(f): Form<Fields>,
) -> &'static str {
    answer(a.secret_ok(&secret) && a.vhost(&f).await)
}

async fn resource(
    State(a): State<BrokerAuth>,
    Path(secret): Path<String>,
    Form(f): Form<Fields>,
) -> &'static str {
    answer(a.secret_ok(&secret) && a.resource(&f))
}

async fn topic(
    State(a): State<BrokerAuth>,
    Path(secret): Path<String>,
    Form(f): Form<Fields>,
) -> &'static str {
    let ok = a.secret_ok(&secret) && a.topic(&f);
    if !ok {
        tracing::info!(user = ?f.get("username"), key = ?f.get("routing_key"), perm = ?f.get("permission"), "broker auth: topic denied");
    }
    answer(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_read_back_as_topics() {
        assert_eq!(
            mqtt_topic("$aws.things.dev-1.jobs.get"),
            "$aws/things/dev-1/jobs/get"
        );
        assert_eq!(
            mqtt_topic("$aws.things.dev-1.jobs.*.get"),
            "$aws/things/dev-1/jobs/+/get"
        );
        assert_eq!(mqtt_topic("$aws.things.dev-1.#"), "$aws/things/dev-1/#");
    }
}
