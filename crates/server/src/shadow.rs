//! The classic AWS IoT Device Shadow over MQTT (`$aws/things/<thing>/shadow/…`), as AWS
//! documents it: UpdateThingShadow, GetThingShadow, DeleteThingShadow, their `/accepted` and
//! `/rejected` replies, `update/delta` and `update/documents`. Devices report their firmware
//! here (`ferrota-agent`'s `state.reported`, see `ferrota_api::ReportedState`); the inventory
//! ([`crate::inventory`]) reads it.
//!
//! * **Update**: `state.desired` and `state.reported` are merged into the stored state key by
//!   key (objects recursively; any other value, arrays included, replaces); a `null` deletes
//!   its key, `"desired": null` the whole section; a section left empty is dropped. Every
//!   leaf written gets `metadata` `{"timestamp":…}` (arrays: one per element). `version`,
//!   when given, must equal the stored version (409 "Version conflict"); the new version is
//!   the stored one + 1. `clientToken` is echoed in every reply.
//! * **Get**: `{"state":{"desired","reported","delta"},"metadata","version","timestamp"}`.
//! * **Delete**: the shadow is gone (404 on get) but its version is kept, as AWS does: the
//!   next update continues the numbering ([`crate::store::shadow`]).
//! * **Errors**: AWS's `{"code":…,"message":…,"timestamp":…,"clientToken":…}` on `/rejected`
//!   with AWS's codes and messages: 400 (invalid JSON, missing or non-object nodes, invalid
//!   version or clientToken, nesting deeper than [`STATE_DEPTH_MAX`], a node other than
//!   desired/reported in `state`), 403 (another thing's shadow), 404 (no shadow), 409
//!   (version), 413 (payload over [`REQUEST_BYTES_MAX`], or a stored state over
//!   [`STATE_BYTES_MAX`] after the merge), 500 (the store failed; nothing is acknowledged).
//!   A refused request changes nothing.
//! * **Replies go to subscribers** (`Outbound::publish`), as AWS's shadow service publishes
//!   them: a device that wants an answer subscribes to its `/accepted` and `/rejected`; one
//!   that only reports (ferrota-agent) subscribes to nothing.
//!
//! Decisions where AWS is silent or does not apply:
//! * `update/delta` is published after an update that carried `desired`, when the desired
//!   state then differs from the reported one (AWS: "only when desired changes"); a get
//!   includes `delta` whenever they differ.
//! * `update/documents` has no `previous` for the update that creates a shadow.
//! * Named shadows are refused by the topic parser ([`ferrota_proto::topic`]); the services
//!   answer them 404 "No shadow exists with name" ([`named_shadow`]).
//! * 429 (more than 10 requests in flight on a connection) does not arise: a session's
//!   requests are handled one at a time, in order. 401/403 from the policy close the
//!   connection before the service sees the request (AWS does the same for MQTT).

use bytes::Bytes;
use ferrota_proto::topic::{ShadowOp, ShadowReply, Topic};
use rumqttc::QoS;
use serde_json::{Map, Value, json};

use crate::context::Services;
use crate::store::{ShadowRecord, StoreResult};

pub use ferrota_proto::shadow::{
    CLIENT_TOKEN_MAX, REQUEST_BYTES_MAX, STATE_BYTES_MAX, STATE_DEPTH_MAX,
};

/// A refused request: AWS's HTTP-style code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowError {
    /// 400, 403, 404, 409, 413, 500.
    pub code: u16,
    /// AWS's message.
    pub message: String,
}

impl ShadowError {
    fn new(code: u16, message: impl Into<String>) -> Self {
        ShadowError {
            code,
            message: message.into(),
        }
    }
    fn bad(message: &str) -> Self {
        Self::new(400, message)
    }
    /// 404 `No shadow exists with name: '<thing>'`, AWS's words for a missing classic shadow.
    pub fn not_found(thing: &str) -> Self {
        Self::new(404, format!("No shadow exists with name: '{thing}'"))
    }
}

/// The request's `clientToken`, if it is a string of at most 64 bytes; `Err` otherwise.
fn client_token(req: &Map<String, Value>) -> Result<Option<String>, ShadowError> {
    match req.get("clientToken") {
        None => Ok(None),
        Some(Value::String(s)) if s.len() <= CLIENT_TOKEN_MAX => Ok(Some(s.clone())),
        Some(_) => Err(ShadowError::bad("Invalid clientToken")),
    }
}

/// The body of a request: a JSON object (an empty payload reads as `{}`, as for get/delete).
fn parse_request(payload: &[u8]) -> Result<Map<String, Value>, ShadowError> {
    if payload.len() > REQUEST_BYTES_MAX {
        return Err(ShadowError::new(
            413,
            "The payload exceeds the maximum size allowed",
        ));
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ShadowError::bad("Invalid JSON")),
    }
}

/// The request's `version`, if any: a non-negative integer.
fn version_of(req: &Map<String, Value>) -> Result<Option<u64>, ShadowError> {
    match req.get("version") {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| ShadowError::bad("Invalid version")),
    }
}

/// Levels of objects in `v` (a scalar is 0, `{}` is 1, `{"a":{}}` is 2; arrays add none).
fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The metadata of a written value: `{"timestamp":now}` per leaf, mirrored through objects
/// and arrays; `null` (a deletion) has none.
fn metadata_of(v: &Value, now: u64) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), metadata_of(v, now)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| metadata_of(v, now)).collect()),
        _ => json!({ "timestamp": now }),
    }
}

/// Merges `patch` into `base` (objects key by key, `null` deletes) and its metadata likewise.
fn merge(
    base: &mut Map<String, Value>,
    meta: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    now: u64,
) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                base.remove(k);
                meta.remove(k);
            }
            Value::Object(p) => {
                if !matches!(base.get(k), Some(Value::Object(_))) {
                    base.insert(k.clone(), Value::Object(Map::new()));
                }
                if !matches!(meta.get(k), Some(Value::Object(_))) {
                    meta.insert(k.clone(), Value::Object(Map::new()));
                }
                if let (Some(Value::Object(b)), Some(Value::Object(m))) =
                    (base.get_mut(k), meta.get_mut(k))
                {
                    merge(b, m, p, now);
                    if b.is_empty() {
                        base.remove(k);
                        meta.remove(k);
                    }
                }
            }
            v => {
                base.insert(k.clone(), v.clone());
                meta.insert(k.clone(), metadata_of(v, now));
            }
        }
    }
}

/// The keys of `desired` whose value differs from `reported` (objects compared key by key).
fn delta(
    desired: &Map<String, Value>,
    reported: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, d) in desired {
        let r = reported.and_then(|r| r.get(k));
        match (d, r) {
            (Value::Object(d), Some(Value::Object(r))) => {
                let sub = delta(d, Some(r));
                if !sub.is_empty() {
                    out.insert(k.clone(), Value::Object(sub));
                }
            }
            (d, Some(r)) if d == r => {}
            (d, _) => {
                out.insert(k.clone(), d.clone());
            }
        }
    }
    out
}

/// The part of `meta` that mirrors `shape`'s keys.
fn meta_for(shape: &Map<String, Value>, meta: Option<&Map<String, Value>>) -> Value {
    let mut out = Map::new();
    for (k, v) in shape {
        let m = meta.and_then(|m| m.get(k));
        match (v, m) {
            (Value::Object(s), Some(Value::Object(m))) => {
                out.insert(k.clone(), meta_for(s, Some(m)));
            }
            (_, Some(m)) => {
                out.insert(k.clone(), m.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

/// A shadow's state and metadata, decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    /// `{"desired":…,"reported":…}`.
    pub state: Map<String, Value>,
    /// Mirrors `state` with `{"timestamp":…}` leaves.
    pub metadata: Map<String, Value>,
    /// The version.
    pub version: u64,
}

impl Document {
    /// The stored document of `rec`; `None` for a tombstone. Corrupt JSON reads as empty
    /// (logged): the next update rewrites it.
    pub fn of(rec: &ShadowRecord) -> Option<Document> {
        let state = rec.state.as_deref()?;
        let obj = |text: &str| match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            _ => {
                tracing::error!(thing = %rec.thing, "stored shadow is not a JSON object");
                Map::new()
            }
        };
        Some(Document {
            state: obj(state),
            metadata: obj(&rec.metadata),
            version: rec.version,
        })
    }

    fn section(&self, name: &str) -> Option<&Map<String, Value>> {
        self.state.get(name).and_then(Value::as_object)
    }

    /// The desired keys that differ from the reported ones (empty when none).
    pub fn delta(&self) -> Map<String, Value> {
        self.section("desired")
            .map(|d| delta(d, self.section("reported")))
            .unwrap_or_default()
    }

    /// The `reported` section.
    pub fn reported(&self) -> Option<&Map<String, Value>> {
        self.section("reported")
    }

    /// The newest leaf timestamp under `metadata.reported`: when the device last reported.
    pub fn reported_at(&self) -> Option<u64> {
        fn newest(v: &Value) -> Option<u64> {
            match v {
                Value::Object(m) => match m.get("timestamp").and_then(Value::as_u64) {
                    Some(t) if m.len() == 1 => Some(t),
                    _ => m.values().filter_map(newest).max(),
                },
                Value::Array(a) => a.iter().filter_map(newest).max(),
                _ => None,
            }
        }
        self.metadata.get("reported").and_then(newest)
    }

    /// GetThingShadow's answer (MQTT `get/accepted` and `GET /api/things/{name}/shadow`).
    pub fn get_body(&self, now: u64, token: Option<&str>) -> Value {
        let mut state = self.state.clone();
        let d = self.delta();
        let mut meta = self.metadata.clone();
        if !d.is_empty() {
            state.insert("delta".into(), Value::Object(d));
        }
        meta.remove("delta");
        let mut body = json!({
            "state": state,
            "metadata": meta,
            "version": self.version,
            "timestamp": now,
        });
        with_token(&mut body, token);
        body
    }

    fn snapshot(&self) -> Value {
        json!({ "state": self.state, "metadata": self.metadata, "version": self.version })
    }
}

fn with_token(body: &mut Value, token: Option<&str>) {
    if let (Some(t), Value::Object(m)) = (token, body) {
        m.insert("clientToken".into(), Value::String(t.to_string()));
    }
}

fn send(b: &Services, thing: &str, op: ShadowOp, reply: ShadowReply, body: &Value) {
    let topic = Topic::shadow(thing, op, reply).to_string();
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    b.publish(&topic, Bytes::from(bytes), QoS::AtLeastOnce);
}

/// AWS's error document.
pub fn error_body(e: &ShadowError, now: u64, token: Option<&str>) -> Value {
    let mut body = json!({ "code": e.code, "message": e.message, "timestamp": now });
    with_token(&mut body, token);
    body
}

fn reject(b: &Services, thing: &str, op: ShadowOp, e: &ShadowError, token: Option<&str>) {
    tracing::info!(thing, op = op.as_str(), code = e.code, message = %e.message, "shadow request rejected");
    let body = error_body(e, b.clock.now(), token);
    send(b, thing, op, ShadowReply::Rejected, &body);
}

/// The thing's shadow, `None` when it has none (never had one, or deleted).
pub async fn document(b: &Services, thing: &str) -> StoreResult<Option<Document>> {
    Ok(b.store.shadow(thing).await?.as_ref().and_then(Document::of))
}

/// Handles a shadow request (`op` on `…/shadow/<op>`) from the session `client_id` of
/// `client_thing` on `thing`'s shadow. A request on another thing's shadow (possible only
/// when an operator's extra policy pattern lets it through) is refused 403 "Forbidden", sent
/// to the requester alone so the other thing's subscribers learn nothing. `Err` only when
/// the store failed (a 500 was published and the request must not be acknowledged).
pub async fn handle(
    b: &Services,
    client_id: &str,
    client_thing: &str,
    thing: &str,
    op: ShadowOp,
    payload: &[u8],
) -> StoreResult<()> {
    let req = match parse_request(payload) {
        Ok(r) => r,
        Err(e) => {
            reject(b, thing, op, &e, None);
            return Ok(());
        }
    };
    let token = match client_token(&req) {
        Ok(t) => t,
        Err(e) => {
            reject(b, thing, op, &e, None);
            return Ok(());
        }
    };
    let token = token.as_deref();
    if client_thing != thing {
        let e = ShadowError::new(403, "Forbidden");
        tracing::warn!(
            client = client_id,
            thing,
            "shadow request on another thing's shadow"
        );
        let body = serde_json::to_vec(&error_body(&e, b.clock.now(), token)).unwrap_or_default();
        let topic = Topic::shadow(thing, op, ShadowReply::Rejected).to_string();
        b.deliver_to(client_id, topic, Bytes::from(body), QoS::AtLeastOnce);
        return Ok(());
    }
    let r = match op {
        ShadowOp::Get => get(b, thing, token).await,
        ShadowOp::Update => update(b, thing, &req, token).await,
        ShadowOp::Delete => delete(b, thing, &req, token).await,
    };
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            reject(b, thing, op, &e, token);
            Ok(())
        }
        Err(e) => {
            reject(
                b,
                thing,
                op,
                &ShadowError::new(500, "Internal service failure"),
                token,
            );
            Err(e)
        }
    }
}

type Outcome = StoreResult<Result<(), ShadowError>>;

async fn get(b: &Services, thing: &str, token: Option<&str>) -> Outcome {
    let Some(doc) = document(b, thing).await? else {
        return Ok(Err(ShadowError::not_found(thing)));
    };
    send(
        b,
        thing,
        ShadowOp::Get,
        ShadowReply::Accepted,
        &doc.get_body(b.clock.now(), token),
    );
    Ok(Ok(()))
}

async fn delete(
    b: &Services,
    thing: &str,
    req: &Map<String, Value>,
    token: Option<&str>,
) -> Outcome {
    let want = match version_of(req) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let stored = b.store.shadow(thing).await?;
    let Some(rec) = stored.filter(ShadowRecord::exists) else {
        return Ok(Err(ShadowError::not_found(thing)));
    };
    if want.is_some_and(|v| v != rec.version) {
        return Ok(Err(ShadowError::new(409, "Version conflict")));
    }
    let now = b.clock.now();
    let tomb = ShadowRecord {
        thing: thing.to_string(),
        state: None,
        metadata: "{}".into(),
        version: rec.version,
        updated_at: now,
    };
    if !b.store.put_shadow(&tomb, Some(rec.version)).await? {
        return Ok(Err(ShadowError::new(409, "Version conflict")));
    }
    let mut body = json!({ "version": rec.version, "timestamp": now });
    with_token(&mut body, token);
    send(b, thing, ShadowOp::Delete, ShadowReply::Accepted, &body);
    Ok(Ok(()))
}

/// Checks an update request's `state` (AWS's 400s) and returns its sections.
fn update_state(req: &Map<String, Value>) -> Result<&Map<String, Value>, ShadowError> {
    let state = match req.get("state") {
        None => return Err(ShadowError::bad("Missing required node: state")),
        Some(Value::Object(s)) => s,
        Some(_) => return Err(ShadowError::bad("State node must be an object")),
    };
    for (k, v) in state {
        match (k.as_str(), v) {
            ("desired" | "reported", Value::Null | Value::Object(_)) => {}
            ("desired", _) => return Err(ShadowError::bad("Desired node must be an object")),
            ("reported", _) => return Err(ShadowError::bad("Reported node must be an object")),
            _ => return Err(ShadowError::bad("State contains an invalid node")),
        }
        if depth(v) > STATE_DEPTH_MAX {
            return Err(ShadowError::bad(
                "JSON contains too many levels of nesting; maximum is 6",
            ));
        }
    }
    Ok(state)
}

async fn update(
    b: &Services,
    thing: &str,
    req: &Map<String, Value>,
    token: Option<&str>,
) -> Outcome {
    let checked = update_state(req).and_then(|s| Ok((s, version_of(req)?)));
    let (patch, want) = match checked {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    let now = b.clock.now();
    let stored = b.store.shadow(thing).await?;
    let stored_version = stored.as_ref().map(|r| r.version);
    if want.is_some_and(|v| Some(v) != stored_version) {
        return Ok(Err(ShadowError::new(409, "Version conflict")));
    }
    let previous = stored.as_ref().and_then(Document::of);
    let mut doc = previous.clone().unwrap_or_default();
    for (section, v) in patch {
        match v {
            Value::Object(p) => {
                let mut base = doc.state.remove(section).and_then(|v| match v {
                    Value::Object(m) => Some(m),
                    _ => None,
                });
                let mut meta = doc.metadata.remove(section).and_then(|v| match v {
                    Value::Object(m) => Some(m),
                    _ => None,
                });
                let (bm, mm) = (base.get_or_insert_default(), meta.get_or_insert_default());
                merge(bm, mm, p, now);
                if !bm.is_empty() {
                    doc.state.insert(section.clone(), Value::Object(bm.clone()));
                    doc.metadata
                        .insert(section.clone(), Value::Object(mm.clone()));
                }
            }
            _ => {
                doc.state.remove(section);
                doc.metadata.remove(section);
            }
        }
    }
    let state_text = serde_json::to_string(&doc.state).unwrap_or_default();
    if state_text.len() > STATE_BYTES_MAX {
        return Ok(Err(ShadowError::new(
            413,
            "The payload exceeds the maximum size allowed",
        )));
    }
    doc.version = stored_version.unwrap_or(0) + 1;
    let rec = ShadowRecord {
        thing: thing.to_string(),
        state: Some(state_text),
        metadata: serde_json::to_string(&doc.metadata).unwrap_or_else(|_| "{}".into()),
        version: doc.version,
        updated_at: now,
    };
    if !b.store.put_shadow(&rec, stored_version).await? {
        return Ok(Err(ShadowError::new(409, "Version conflict")));
    }
    // What it reports may make it match a dynamic group a CONTINUOUS rollout targets.
    b.thing_changed(thing);
    // update/accepted: the request's state (nulls included) and the metadata of what it wrote.
    let patch_meta: Map<String, Value> = patch
        .iter()
        .filter_map(|(k, v)| {
            v.as_object()
                .map(|p| (k.clone(), metadata_of(&Value::Object(p.clone()), now)))
        })
        .collect();
    let mut accepted = json!({
        "state": patch,
        "metadata": patch_meta,
        "version": doc.version,
        "timestamp": now,
    });
    with_token(&mut accepted, token);
    send(b, thing, ShadowOp::Update, ShadowReply::Accepted, &accepted);
    let mut documents = json!({ "current": doc.snapshot(), "timestamp": now });
    if let (Some(p), Value::Object(m)) = (&previous, &mut documents) {
        m.insert("previous".into(), p.snapshot());
    }
    with_token(&mut documents, token);
    send(
        b,
        thing,
        ShadowOp::Update,
        ShadowReply::Documents,
        &documents,
    );
    let d = doc.delta();
    if patch.contains_key("desired") && !d.is_empty() {
        let meta = meta_for(&d, doc.metadata.get("desired").and_then(Value::as_object));
        let mut body = json!({
            "state": d,
            "metadata": meta,
            "version": doc.version,
            "timestamp": now,
        });
        with_token(&mut body, token);
        send(b, thing, ShadowOp::Update, ShadowReply::Delta, &body);
    }
    Ok(Ok(()))
}

/// A request on a named shadow (`…/shadow/name/<name>/<op>`): only the classic shadow is
/// served, so the named one does not exist: 404 on its `/rejected` topic, AWS's answer for a
/// shadow that does not exist. Topics that are not a named-shadow request are ignored.
pub fn named_shadow(b: &Services, topic: &str, payload: &[u8]) {
    let Some((_, rest)) = topic.split_once("/shadow/name/") else {
        return;
    };
    let mut it = rest.split('/');
    let (Some(name), Some(op), None) = (it.next(), it.next(), it.next()) else {
        return;
    };
    if !matches!(op, "update" | "get" | "delete") {
        return;
    }
    let token = parse_request(payload)
        .ok()
        .and_then(|r| client_token(&r).ok().flatten());
    let e = ShadowError::new(404, format!("No shadow exists with name: '{name}'"));
    let body = error_body(&e, b.clock.now(), token.as_deref());
    b.publish(
        &format!("{topic}/rejected"),
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        QoS::AtLeastOnce,
    );
}
