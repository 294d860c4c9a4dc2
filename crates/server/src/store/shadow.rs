//! The Device Shadow's storage: one classic (unnamed) shadow per thing, kept behind
//! [`ShadowStore`], a supertrait of [`super::Store`] so every store (SQLite, memory and
//! PostgreSQL) carries it and a [`super::SharedStore`] reaches it.
//!
//! Decision: the record holds the shadow's `state` (`{"desired":…,"reported":…}`) and
//! `metadata` as JSON text; the service ([`crate::shadow`]) merges and checks them, the store
//! only keeps them and compares versions. A deleted shadow stays as a tombstone
//! (`state: None`) that keeps its version: AWS does not reset a shadow's version when it is
//! deleted, so the next update after a delete gets the next number, and a client's
//! optimistic lock can never match a version that was already used.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreResult;

/// A thing's shadow as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowRecord {
    /// The thing.
    pub thing: String,
    /// `{"desired":{…},"reported":{…}}` (either section may be absent), JSON object text;
    /// `None`: the shadow was deleted (a tombstone that keeps [`ShadowRecord::version`]).
    pub state: Option<String>,
    /// The per-leaf `{"timestamp":…}` metadata of `state`, JSON object text (`{}` when none).
    pub metadata: String,
    /// The shadow's version: +1 on every update, kept by a delete.
    pub version: u64,
    /// When the thing last updated or deleted it, epoch seconds.
    pub updated_at: u64,
}

impl ShadowRecord {
    /// Whether a shadow exists (it is not a tombstone).
    pub fn exists(&self) -> bool {
        self.state.is_some()
    }
}

/// Device Shadows (see the module docs).
#[async_trait]
pub trait ShadowStore: Send + Sync {
    /// The thing's shadow record (a tombstone included), if it ever had one.
    async fn shadow(&self, thing: &str) -> StoreResult<Option<ShadowRecord>>;
    /// Stores `rec` (a tombstone for a delete) if the stored record's version is still
    /// `expected` (`None`: no record stored yet), atomically. `false`: someone else changed
    /// it first, nothing was written.
    async fn put_shadow(&self, rec: &ShadowRecord, expected: Option<u64>) -> StoreResult<bool>;
}
