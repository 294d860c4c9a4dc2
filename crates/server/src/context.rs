//! What the Jobs and Streams services run on: a [`Store`](crate::store::Store) for state,
//! a [`BlobStore`] for firmware files, a [`Clock`] for time and an [`Outbound`] for the
//! messages they send. [`Services`] bundles the four (with the stream cache, the timer signal
//! and the stream fault injector), so [`crate::jobs`], [`crate::streams`],
//! [`crate::timeouts`] and [`crate::services`] are callable without sockets, TLS or SQLite:
//! a test gives them a [`crate::store::MemoryStore`] and an `Outbound` that records.
//!
//! Decision: this module sits at the bottom of the crate (it imports only [`crate::store`],
//! [`crate::trust`]
//! and [`crate::metrics`], which imports only the store); the broker implements [`Outbound`]
//! for its local sessions and the client mode ([`crate::bridge`]) for an external broker, so
//! neither the services nor the store know which one carries their messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;
use rumqttc::QoS;
use tokio::sync::Notify;

use crate::store::{AuditBatcher, BlobStore, SharedStore, StoreResult, StreamRecord};

/// Epoch seconds, injected so tests can fix time.
pub trait Clock: Send + Sync + 'static {
    /// Now, in seconds since the epoch.
    fn now(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// Where the services' messages go: the local sessions (the broker) or an external broker
/// (client mode, [`crate::bridge`]).
pub trait Outbound: Send + Sync + 'static {
    /// Publishes `payload` on `topic` (not retained) to its subscribers. Must not block.
    fn publish(&self, topic: &str, payload: Bytes, qos: QoS);
    /// Sends to one client whether or not it subscribed (AWS's delivery of Jobs responses to
    /// the requester, spec §1.3). The default publishes: an external broker delivers it only
    /// if the device subscribed.
    fn deliver_to(&self, client_id: &str, topic: &str, payload: Bytes, qos: QoS) {
        let _ = client_id;
        self.publish(topic, payload, qos);
    }
}

/// Whether a thing is one of a job's targets now (`thing/<name>`, `thinggroup/<group>`, or an
/// ARN ending so): how a CONTINUOUS rollout learns that a thing joined its targets. The
/// operator layer provides it ([`Services::set_target_check`]: dynamic groups need the fleet
/// index, which lives above the services); without one, [`crate::rollout`] checks things and
/// static groups.
#[async_trait::async_trait]
pub trait TargetCheck: Send + Sync {
    /// `target` as the request wrote it.
    async fn check(&self, target: &str, thing: &str) -> StoreResult<bool>;
}

/// One target of a job as AWS writes it (`thing/<name>`, `thinggroup/<group>`, or an ARN
/// ending so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `thing/<name>`.
    Thing(&'a str),
    /// `thinggroup/<group>` (also `group/<group>`).
    Group(&'a str),
}

impl<'a> Target<'a> {
    /// Reads a target; `None` when it is neither form. The one reading of a target, for the
    /// create's resolution and the continuous rollouts' checks alike.
    pub fn parse(target: &'a str) -> Option<Target<'a>> {
        let tail = target.rsplit(':').next().unwrap_or(target);
        match tail.split_once('/')? {
            ("thing", n) => Some(Target::Thing(n)),
            ("thinggroup" | "group", g) => Some(Target::Group(g)),
            _ => None,
        }
    }
}

/// The services' dependencies (see the module docs).
pub struct Services {
    /// Registry, jobs, streams: the store given to [`Services::new`], wrapped in a
    /// [`crate::metrics::TimedStore`] that records each call's latency.
    pub store: SharedStore,
    /// Audit appends of concurrent requests, committed together ([`crate::operators`]).
    pub audit: AuditBatcher,
    /// This process's Prometheus metrics (`GET /metrics`), shared with the sessions and the
    /// TLS acceptor that serve these services.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Firmware files.
    pub blobs: Arc<dyn BlobStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Where messages go; a test or bench may wrap it ([`Services::wrap_outbound`]).
    out: RwLock<Arc<dyn Outbound>>,
    /// Streams are immutable once created: cached after the first request.
    pub(crate) stream_cache: Mutex<HashMap<String, Arc<StreamRecord>>>,
    /// Signalled when an execution timer was set or changed (wakes [`crate::timeouts::run`]).
    pub timers: Notify,
    /// Executions that reached a terminal state, `(job, thing)`, not yet seen by the rollout
    /// engine ([`crate::rollout::step`]): its retries and gates react to them.
    finished: Mutex<Vec<(String, String)>>,
    /// Signalled when [`Services::execution_finished`] queued one or a rollout changed
    /// (wakes [`crate::rollout::run`]).
    pub rollouts: Notify,
    /// One rollout step at a time in this process (the store's compare-and-set guards the
    /// records against other processes).
    pub(crate) rollout_lock: tokio::sync::Mutex<()>,
    /// Things whose groups or reported state changed, not yet seen by the rollout engine.
    changed: Mutex<Vec<String>>,
    /// The operator layer's [`TargetCheck`].
    target_check: OnceLock<Arc<dyn TargetCheck>>,
    /// Who runs the work that must happen once ([`crate::lease`]); [`crate::lease::Solo`]
    /// unless a cluster's worker sets another.
    lease: OnceLock<Arc<dyn crate::lease::Lease>>,
    /// Signed update metadata (#20): when set, every Jobs answer to a device carries a
    /// timestamp and OTA create checks metadata files ([`Services::set_trust`]).
    trust: RwLock<Option<Arc<crate::trust::TrustService>>>,
}

impl Services {
    /// Services over these stores, clock and message sink.
    pub fn new(
        store: SharedStore,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        out: Arc<dyn Outbound>,
    ) -> Self {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let store: SharedStore = Arc::new(crate::metrics::TimedStore::new(store, metrics.clone()));
        Services {
            store,
            audit: AuditBatcher::default(),
            metrics,
            blobs,
            clock,
            out: RwLock::new(out),
            stream_cache: Mutex::new(HashMap::new()),
            timers: Notify::new(),
            finished: Mutex::new(Vec::new()),
            rollouts: Notify::new(),
            rollout_lock: tokio::sync::Mutex::new(()),
            changed: Mutex::new(Vec::new()),
            target_check: OnceLock::new(),
            lease: OnceLock::new(),
            trust: RwLock::new(None),
        }
    }

    /// Turns signed update metadata on (`Some`) or off (`None`, the default: every Jobs
    /// answer is byte for byte what AWS IoT sends). Once set, every Jobs answer to a device
    /// (`$next/get`, `start-next`, `notify-next`) carries `ferrotaTimestamp`, signed at this
    /// services' clock ([`crate::jobs`]), and OTA create checks fileType-142 files
    /// ([`crate::admin`]). A lock rather than a `OnceLock`: a test (or a reload) may swap it.
    pub fn set_trust(&self, trust: Option<Arc<crate::trust::TrustService>>) {
        *self.trust.write().unwrap_or_else(|e| e.into_inner()) = trust;
    }

    /// The trust service set, if any.
    pub fn trust(&self) -> Option<Arc<crate::trust::TrustService>> {
        self.trust.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A stream by id, from the stream cache (streams are immutable once created) or the
    /// store, which then fills the cache.
    pub(crate) async fn stream(&self, stream: &str) -> StoreResult<Option<Arc<StreamRecord>>> {
        if let Some(s) = self
            .stream_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(stream)
        {
            return Ok(Some(s.clone()));
        }
        let Some(s) = self.store.stream(stream).await? else {
            return Ok(None);
        };
        let s = Arc::new(s);
        self.stream_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stream.to_string(), s.clone());
        Ok(Some(s))
    }

    /// Replaces the message sink by `f(current)`: how a test or bench puts a wrapper (such as
    /// [`crate::faults::FaultyOutbound`]) between the services and the sessions. Production
    /// never calls it.
    pub fn wrap_outbound(&self, f: impl FnOnce(Arc<dyn Outbound>) -> Arc<dyn Outbound>) {
        let mut g = self.out.write().unwrap_or_else(|e| e.into_inner());
        *g = f(g.clone());
    }

    /// The sink, read-locked for one call (no reference count per message: a stream serves
    /// thousands of blocks a second; `Outbound` calls never block, so the lock is short).
    fn out(&self) -> std::sync::RwLockReadGuard<'_, Arc<dyn Outbound>> {
        self.out.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the rollout engine that `thing`'s execution of `job` reached a terminal state
    /// (committed): a retry or a gate may follow. Cheap (a push under a lock); the engine
    /// takes them in batches, so a fleet's updates cost one gate evaluation per batch.
    pub fn execution_finished(&self, job: &str, thing: &str) {
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((job.to_string(), thing.to_string()));
        self.rollouts.notify_one();
    }

    /// The executions finished since the last call ([`Services::execution_finished`]).
    pub fn take_finished(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.finished.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Tells the rollout engine that `thing` may now match other targets (its groups, its
    /// attributes or what it reports changed): a CONTINUOUS rollout may reach it.
    pub fn thing_changed(&self, thing: &str) {
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(thing.to_string());
        self.rollouts.notify_one();
    }

    /// The things changed since the last call ([`Services::thing_changed`]), each once.
    pub fn take_changed(&self) -> Vec<String> {
        let mut v = std::mem::take(&mut *self.changed.lock().unwrap_or_else(|e| e.into_inner()));
        v.sort();
        v.dedup();
        v
    }

    /// Makes this process one worker of several: `lease` decides when it runs the rollouts
    /// and timers (once, before they start; later calls are ignored).
    pub fn set_lease(&self, lease: Arc<dyn crate::lease::Lease>) {
        let _ = self.lease.set(lease);
    }

    /// The lease ([`crate::lease::Solo`] when none was set).
    pub fn lease(&self) -> Arc<dyn crate::lease::Lease> {
        self.lease
            .get()
            .cloned()
            .unwrap_or_else(|| Arc::new(crate::lease::Solo))
    }

    /// Sets the operator layer's [`TargetCheck`] (once; later calls are ignored).
    pub fn set_target_check(&self, c: Arc<dyn TargetCheck>) {
        let _ = self.target_check.set(c);
    }

    /// The [`TargetCheck`] set, if any.
    pub fn target_check(&self) -> Option<Arc<dyn TargetCheck>> {
        self.target_check.get().cloned()
    }

    /// Publishes to the subscribers of `topic` ([`Outbound::publish`]).
    pub fn publish(&self, topic: &str, payload: Bytes, qos: QoS) {
        self.out().publish(topic, payload, qos);
    }

    /// Sends to one client ([`Outbound::deliver_to`]).
    pub fn deliver_to(&self, client_id: &str, topic: String, payload: Bytes, qos: QoS) {
        self.out().deliver_to(client_id, &topic, payload, qos);
    }
}

impl crate::lease::Inbox for Services {
    fn execution_finished(&self, job: &str, thing: &str) {
        Services::execution_finished(self, job, thing);
    }
    fn thing_changed(&self, thing: &str) {
        Services::thing_changed(self, thing);
    }
}
