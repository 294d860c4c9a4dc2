//! The broker core shared by every connection: the session registry with subscriptions,
//! routing, and the hooks into Jobs and Streams.
//!
//! Each connected client has a bounded outgoing queue (a message count and a byte budget,
//! [`Limits`]). Whoever enqueues for a client that cannot keep up (queue full, budget spent)
//! does not wait: the client is disconnected. Memory per client is therefore bounded by the
//! limits, never by how slow the client is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rumqttc::QoS;
use tokio::sync::{Notify, mpsc};

use crate::filter::matches;
use crate::policy::Policy;
use crate::store::{BlobStore, SharedStore};

/// Limits of the MQTT endpoint.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest packet accepted from a client (remaining length), bytes. Bigger → disconnect.
    pub max_packet_size: usize,
    /// Messages an outgoing queue holds before the client is disconnected. Default 2,048: a
    /// device's largest stream window (`ferrota_agent::config::MAX_WINDOW_BLOCKS`, 1,280
    /// blocks, 5 MB at 4 KB, asked for at once before the link is measured) is queued here
    /// as the requests come in, with room for Jobs replies; `queue_bytes` (8 MB) still bounds
    /// the memory.
    pub queue_messages: usize,
    /// Bytes of payload an outgoing queue holds before the client is disconnected.
    pub queue_bytes: usize,
    /// Unacknowledged QoS 1 messages sent to a client; more wait in the queue.
    pub max_inflight: usize,
    /// Time to send CONNECT after the TLS handshake (default 5 s; see [`crate::gate`]).
    pub connect_timeout: std::time::Duration,
    /// Time for the TLS handshake after TCP accept (default 5 s; see [`crate::gate`]).
    pub tls_handshake_timeout: std::time::Duration,
    /// Connections that have not finished their TLS handshake, in all (default 256). When
    /// full, the oldest pending one is closed ([`crate::gate::PendingGate`]).
    pub max_pending: usize,
    /// Of those, from one source IP address (default 32; devices behind one NAT share it).
    pub max_pending_per_address: usize,
    /// Subscriptions one connection may hold (AWS IoT Core: 50 per connection). A SUBSCRIBE
    /// for more gets the failure code 0x80 for each filter over the bound.
    pub max_subscriptions: usize,
    /// Filters in one SUBSCRIBE (AWS IoT Core: 8, a hard limit). More closes the connection:
    /// a client that breaks a hard limit is broken, and a partial SUBACK would hide it.
    pub max_filters_per_subscribe: usize,
    /// Bytes of a topic filter (AWS IoT Core: 256, UTF-8). Longer → SUBACK 0x80 for it.
    pub max_filter_len: usize,
    /// Forward slashes in a topic filter (AWS IoT Core: 7). More → SUBACK 0x80 for it.
    pub max_filter_slashes: usize,
    /// Largest keep-alive a client may ask for (seconds; AWS: 1200). 0 from the client means
    /// "no keep-alive"; we then apply this maximum.
    pub max_keep_alive: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: 256 * 1024,
            queue_messages: 2048,
            queue_bytes: 8 * 1024 * 1024,
            max_inflight: 100,
            connect_timeout: std::time::Duration::from_secs(5),
            tls_handshake_timeout: std::time::Duration::from_secs(5),
            max_pending: 256,
            max_pending_per_address: 32,
            max_keep_alive: 1200,
            max_subscriptions: 50,
            max_filters_per_subscribe: 8,
            max_filter_len: 256,
            max_filter_slashes: 7,
        }
    }
}

pub use crate::context::{Clock, Outbound, Services, SystemClock};

/// A message queued for a client.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Topic.
    pub topic: String,
    /// Payload (shared, not copied per subscriber).
    pub payload: Bytes,
    /// QoS of the delivery.
    pub qos: QoS,
}

/// Why a session was closed by the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickReason {
    /// Its outgoing queue overflowed.
    SlowConsumer,
    /// Another connection took the client id.
    TakenOver,
    /// Its certificate was revoked.
    Revoked,
    /// The server is shutting down.
    Shutdown,
}

pub(crate) struct Kick {
    pub notify: Notify,
    pub reason: Mutex<Option<KickReason>>,
}

impl Kick {
    pub fn new() -> Arc<Self> {
        Arc::new(Kick {
            notify: Notify::new(),
            reason: Mutex::new(None),
        })
    }
    pub fn kick(&self, r: KickReason) {
        let mut g = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(r);
        }
        self.notify.notify_one();
    }
    pub fn reason(&self) -> Option<KickReason> {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side of one client's queue.
#[derive(Clone)]
pub(crate) struct ClientTx {
    pub conn_id: u64,
    pub tx: mpsc::Sender<Outgoing>,
    pub queued_bytes: Arc<AtomicUsize>,
    pub kick: Arc<Kick>,
}

struct ClientEntry {
    h: ClientTx,
    subs: Vec<(String, QoS)>,
    /// The certificate the session authenticated with.
    cert_id: Option<String>,
}

/// Sessions plus an index of subscriptions: a filter under `$aws/things/<literal thing>/` is
/// indexed by that thing, every other filter puts its client in `global`. A PUBLISH on a thing
/// topic then only looks at that thing's subscribers and the global ones, so stream blocks do
/// not scan the whole fleet.
#[derive(Default)]
struct Registry {
    clients: HashMap<String, ClientEntry>,
    by_thing: HashMap<String, std::collections::HashSet<String>>,
    global: std::collections::HashSet<String>,
}

/// The thing a filter or topic is scoped to, if its first three levels are
/// `$aws/things/<literal>`.
fn thing_scope(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("$aws/things/")?;
    let t = rest.split('/').next()?;
    (!t.is_empty() && t != "+" && t != "#").then_some(t)
}

impl Registry {
    fn unindex(&mut self, client_id: &str) {
        self.global.remove(client_id);
        if let Some(e) = self.clients.get(client_id) {
            for (f, _) in &e.subs {
                if let Some(t) = thing_scope(f)
                    && let Some(set) = self.by_thing.get_mut(t)
                {
                    set.remove(client_id);
                    if set.is_empty() {
                        self.by_thing.remove(t);
                    }
                }
            }
        }
    }

    fn index(&mut self, client_id: &str) {
        let Some(e) = self.clients.get(client_id) else {
            return;
        };
        for (f, _) in &e.subs {
            match thing_scope(f) {
                Some(t) => {
                    self.by_thing
                        .entry(t.to_string())
                        .or_default()
                        .insert(client_id.to_string());
                }
                None => {
                    self.global.insert(client_id.to_string());
                }
            }
        }
    }
}

/// The local sessions as an [`Outbound`]: routing to subscribers, or to an external broker
/// once one is set (client mode).
struct Router {
    clients: Mutex<Registry>,
    limits: Limits,
    /// Set in client mode ([`crate::bridge`]): the services' messages go to an external broker.
    outbound: std::sync::OnceLock<Arc<dyn Outbound>>,
}

/// Broker state shared by every connection: the sessions and their routing, the
/// authorisation, and the [`Services`] a PUBLISH on a service topic goes to.
pub struct Broker {
    router: Arc<Router>,
    next_conn: std::sync::atomic::AtomicU64,
    /// Limits.
    pub limits: Limits,
    /// Authorisation.
    pub policy: Policy,
    /// The registry the CONNECT check reads (things, certificates); the same store as
    /// [`Services::store`]. Files and time belong to the services only.
    pub store: SharedStore,
    /// The Jobs and Streams services, sending through this broker.
    pub services: Arc<Services>,
    /// Signalled when certificates were revoked in this process (wakes the revocation watch
    /// of [`crate::server::Server::run`], which also polls the store for other processes).
    pub revocations: Notify,
    /// The stream fault injector, once a test or bench installed it
    /// ([`Broker::stream_faults`]).
    faults: std::sync::OnceLock<Arc<crate::faults::Faults>>,
}

impl Broker {
    /// A broker over the given stores, on the system clock (the services' tests give
    /// [`Services`] their own clock without a broker).
    pub fn new(
        store: SharedStore,
        blobs: Arc<dyn BlobStore>,
        policy: Policy,
        limits: Limits,
    ) -> Arc<Self> {
        let router = Arc::new(Router {
            clients: Mutex::new(Registry::default()),
            limits: limits.clone(),
            outbound: std::sync::OnceLock::new(),
        });
        let services = Arc::new(Services::new(
            store.clone(),
            blobs.clone(),
            Arc::new(SystemClock),
            router.clone(),
        ));
        Arc::new(Broker {
            router,
            next_conn: 1.into(),
            limits,
            policy,
            store,
            services,
            revocations: Notify::new(),
            faults: std::sync::OnceLock::new(),
        })
    }

    /// The stream fault injector (a test and bench aid, [`crate::faults`]): the first call
    /// wraps the services' [`Outbound`] in a [`crate::faults::FaultyOutbound`] (off until
    /// [`crate::faults::Faults::configure`]d); later calls return the same injector. A server
    /// nobody calls this on has no fault code on its path, and its configuration has no
    /// `[faults]`.
    pub fn stream_faults(&self) -> Arc<crate::faults::Faults> {
        self.faults
            .get_or_init(|| crate::faults::install(&self.services))
            .clone()
    }

    /// Client mode: from now on [`Broker::publish`] and [`Broker::deliver_to`] hand every
    /// message to `o` (an external broker) instead of local sessions. Set once; `false` if a
    /// sink was already set.
    pub fn set_outbound(&self, o: Arc<dyn Outbound>) -> bool {
        self.router.outbound.set(o).is_ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.router.lock()
    }

    /// Registers a session; an older session with the same client id is disconnected.
    pub(crate) fn register(
        &self,
        client_id: &str,
        cert_id: Option<&str>,
    ) -> (ClientTx, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(self.limits.queue_messages.max(1));
        let h = ClientTx {
            conn_id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            tx,
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            kick: Kick::new(),
        };
        let old = {
            let mut g = self.lock();
            g.unindex(client_id);
            g.clients.insert(
                client_id.to_string(),
                ClientEntry {
                    h: h.clone(),
                    subs: Vec::new(),
                    cert_id: cert_id.map(str::to_string),
                },
            )
        };
        if let Some(old) = old {
            tracing::info!(
                client = client_id,
                "client id taken over by a new connection"
            );
            old.h.kick.kick(KickReason::TakenOver);
        }
        (h, rx)
    }

    /// Removes a session (only if it is still the registered one).
    pub(crate) fn unregister(&self, client_id: &str, conn_id: u64) {
        let mut g = self.lock();
        if g.clients
            .get(client_id)
            .is_some_and(|e| e.h.conn_id == conn_id)
        {
            g.unindex(client_id);
            g.clients.remove(client_id);
        }
    }

    /// Adds (or updates the QoS of) a subscription. `false` when the filter is new and the
    /// client already has [`Limits::max_subscriptions`]: nothing changes (SUBACK 0x80).
    pub(crate) fn subscribe(&self, client_id: &str, conn_id: u64, filter: &str, qos: QoS) -> bool {
        let max = self.limits.max_subscriptions;
        let mut g = self.lock();
        let Some(e) = g
            .clients
            .get_mut(client_id)
            .filter(|e| e.h.conn_id == conn_id)
        else {
            return true;
        };
        if let Some(s) = e.subs.iter_mut().find(|(f, _)| f == filter) {
            s.1 = qos;
            return true;
        }
        if e.subs.len() >= max {
            return false;
        }
        g.unindex(client_id);
        if let Some(e) = g.clients.get_mut(client_id) {
            e.subs.push((filter.to_string(), qos));
        }
        g.index(client_id);
        true
    }

    pub(crate) fn unsubscribe(&self, client_id: &str, conn_id: u64, filter: &str) {
        let mut g = self.lock();
        if g.clients
            .get(client_id)
            .is_some_and(|e| e.h.conn_id == conn_id)
        {
            g.unindex(client_id);
            if let Some(e) = g.clients.get_mut(client_id) {
                e.subs.retain(|(f, _)| f != filter);
            }
            g.index(client_id);
        }
    }

    /// Whether a client is connected.
    pub fn is_connected(&self, client_id: &str) -> bool {
        self.lock().clients.contains_key(client_id)
    }

    /// Number of connected clients.
    pub fn connected(&self) -> usize {
        self.lock().clients.len()
    }

    /// Disconnects a client (e.g. its certificate was revoked).
    pub fn disconnect(&self, client_id: &str, reason: KickReason) {
        if let Some(e) = self.lock().clients.get(client_id) {
            e.h.kick.kick(reason);
        }
    }

    /// Disconnects every session that authenticated with one of these certificates; returns
    /// their client ids.
    pub fn disconnect_certs(
        &self,
        cert_ids: &std::collections::HashSet<String>,
        reason: KickReason,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (id, e) in &self.lock().clients {
            if e.cert_id.as_ref().is_some_and(|c| cert_ids.contains(c)) {
                e.h.kick.kick(reason);
                out.push(id.clone());
            }
        }
        out
    }

    /// Disconnects everyone (shutdown).
    pub fn disconnect_all(&self) {
        for e in self.lock().clients.values() {
            e.h.kick.kick(KickReason::Shutdown);
        }
    }

    /// Sends a message to one client whether or not it subscribed: AWS's delivery of Jobs
    /// responses to the requester (spec §1.3).
    /// In client mode the message is published on the external broker, which delivers it
    /// only if the device subscribed.
    pub fn deliver_to(&self, client_id: &str, topic: String, payload: Bytes, qos: QoS) {
        self.router.deliver_to(client_id, &topic, payload, qos);
    }

    /// Routes a message to every subscriber whose filter matches (highest matching QoS, capped
    /// at the message's), once per client.
    /// In client mode the message is published on the external broker instead.
    pub fn publish(&self, topic: &str, payload: Bytes, qos: QoS) {
        Outbound::publish(&*self.router, topic, payload, qos);
    }
}

impl Router {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enqueue(h: &ClientTx, limits: &Limits, m: Outgoing) {
        let n = m.payload.len() + m.topic.len();
        let before = h.queued_bytes.fetch_add(n, Ordering::AcqRel);
        if before + n > limits.queue_bytes || h.tx.try_send(m).is_err() {
            h.queued_bytes.fetch_sub(n, Ordering::AcqRel);
            h.kick.kick(KickReason::SlowConsumer);
        }
    }
}

impl Outbound for Router {
    /// Sends a message to one client whether or not it subscribed: AWS's delivery of Jobs
    /// responses to the requester (spec §1.3).
    /// In client mode the message is published on the external broker, which delivers it
    /// only if the device subscribed.
    fn deliver_to(&self, client_id: &str, topic: &str, payload: Bytes, qos: QoS) {
        if let Some(o) = self.outbound.get() {
            o.publish(topic, payload, qos);
            return;
        }
        let h = self.lock().clients.get(client_id).map(|e| e.h.clone());
        if let Some(h) = h {
            Self::enqueue(
                &h,
                &self.limits,
                Outgoing {
                    topic: topic.to_string(),
                    payload,
                    qos,
                },
            );
        }
    }

    /// Routes a message to every subscriber whose filter matches (highest matching QoS, capped
    /// at the message's), once per client.
    /// In client mode the message is published on the external broker instead.
    fn publish(&self, topic: &str, payload: Bytes, qos: QoS) {
        if let Some(o) = self.outbound.get() {
            o.publish(topic, payload, qos);
            return;
        }
        let targets: Vec<(ClientTx, QoS)> = {
            let g = self.lock();
            let scoped = thing_scope(topic).and_then(|t| g.by_thing.get(t));
            let ids = g.global.iter().chain(
                scoped
                    .into_iter()
                    .flatten()
                    .filter(|id| !g.global.contains(*id)),
            );
            ids.filter_map(|id| {
                let e = g.clients.get(id)?;
                let best = e
                    .subs
                    .iter()
                    .filter(|(f, _)| matches(topic, f))
                    .map(|(_, q)| *q)
                    .max_by_key(|q| *q as u8)?;
                let q = if (best as u8) < (qos as u8) {
                    best
                } else {
                    qos
                };
                Some((e.h.clone(), q))
            })
            .collect()
        };
        for (h, q) in targets {
            Self::enqueue(
                &h,
                &self.limits,
                Outgoing {
                    topic: topic.to_string(),
                    payload: payload.clone(),
                    qos: q,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope() {
        assert_eq!(thing_scope("$aws/things/a/jobs/#"), Some("a"));
        assert_eq!(thing_scope("$aws/things/+/jobs/#"), None);
        assert_eq!(thing_scope("$aws/things/#"), None);
        assert_eq!(thing_scope("other/x"), None);
    }

    #[tokio::test]
    async fn routing_uses_scoped_and_global_subscribers() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::memory().await.unwrap();
        let blobs = crate::store::DirBlobStore::new(dir.path()).unwrap();
        let b = Broker::new(
            Arc::new(store),
            Arc::new(blobs),
            Policy::default(),
            Limits::default(),
        );
        let (a, mut ra) = b.register("a", None);
        let (w, mut rw) = b.register("w", Some("cw"));
        let (_o, mut ro) = b.register("o", None);
        b.subscribe("a", a.conn_id, "$aws/things/a/jobs/#", QoS::AtLeastOnce);
        b.subscribe(
            "w",
            w.conn_id,
            "$aws/things/+/jobs/notify-next",
            QoS::AtMostOnce,
        );
        b.subscribe("o", _o.conn_id, "$aws/things/b/jobs/#", QoS::AtMostOnce);
        b.publish(
            "$aws/things/a/jobs/notify-next",
            Bytes::from_static(b"x"),
            QoS::AtLeastOnce,
        );
        assert_eq!(ra.try_recv().unwrap().qos, QoS::AtLeastOnce);
        assert_eq!(rw.try_recv().unwrap().qos, QoS::AtMostOnce);
        assert!(ro.try_recv().is_err());
        b.unsubscribe("w", w.conn_id, "$aws/things/+/jobs/notify-next");
        b.unregister("a", a.conn_id);
        b.publish(
            "$aws/things/a/jobs/notify-next",
            Bytes::from_static(b"x"),
            QoS::AtLeastOnce,
        );
        assert!(rw.try_recv().is_err());
        assert!(ra.try_recv().is_err());
        // Sessions are found by their certificate.
        let set = ["cw".to_string()].into_iter().collect();
        assert_eq!(b.disconnect_certs(&set, KickReason::Revoked), vec!["w"]);
        assert_eq!(w.kick.reason(), Some(KickReason::Revoked));
        assert_eq!(_o.kick.reason(), None);
    }
}
