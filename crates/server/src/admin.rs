//! Operator actions, shared by the HTTP API and the offline CLI: things and their
//! certificates, firmware files, OTA updates (AWS `CreateOTAUpdate` semantics).
//!
//! An OTA update is a stream (the files, content-addressed) plus a job whose document is the
//! `afr_ota` document of spec §2 (written by [`ferrota_proto::job::OtaJobOut`]), with a QUEUED
//! execution for every target thing (targets resolved once: SNAPSHOT). Ids follow AWS:
//! job `AFR_OTA-<otaUpdateId>`, stream `AFR_OTA-<uuid>` (44 characters, spec §2.4).

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrota_proto::job::{FileOut, OtaJobOut, PackedBaseOut, PackedOut, Protocols};
use ferrota_proto::limits::NameLimits;
use ferrota_proto::topic::{NameKind, validate_name};

// The HTTP API's requests and answers are defined with the API (one definition for the server
// and its clients, `ferrota-api`); re-exported here, where the server's code names them.
pub use ferrota_api::{
    AttributePayload, CreateThingGroup, SearchIndex, SearchIndexAnswer, ThingDocument,
    ThingGroupDescription, UpdateThing,
};
pub use ferrota_api::{
    CertSummary, CertificateChain, CodeSigning, CreateOtaUpdate, CustomCodeSigning,
    DESCRIBE_PAGE_DEFAULT, DESCRIBE_PAGE_MAX, ExecutionDescription, FIRMWARE_FILE_TYPE,
    FileLocation, HistoryDescription, InlineSignature, JobProcessDetails, OtaDescription, OtaFile,
    OtaSummary, PageRequest, RolloutAction, RolloutDescription, RolloutStatus, ThingBundle,
    ThingDescription, ThingExecution, ThingSummary, TimeoutConfig,
};

use crate::ca::{Ca, CaError};
use crate::context::{Services, Target};
use crate::groups;
use crate::jobs;
use crate::query::Query;
use crate::rollout::{self, RolloutError, config::JobConfig};
use crate::store::attrs::check_attributes;
use crate::store::{
    CertRecord, CertStatus, Execution, HistoryEntry, Job, JobState, OtaRecord, StoreError,
    StreamFile, StreamRecord, Thing,
};

/// SearchIndex's default page (things per answer).
pub const SEARCH_PAGE_DEFAULT: usize = 100;
/// SearchIndex's largest page (AWS's `maxResults` maximum, 500).
pub const SEARCH_PAGE_MAX: usize = 500;

/// AWS's `indexName` and `queryVersion` of a search or a dynamic group: the only ones that
/// exist, `AWS_Things` and `2017-09-30`.
fn check_index(index_name: Option<&str>, query_version: Option<&str>) -> R<()> {
    if let Some(i) = index_name
        && i != "AWS_Things"
    {
        return Err(AdminError::Invalid(format!(
            "indexName {i:?}: the only index is AWS_Things"
        )));
    }
    if let Some(v) = query_version
        && v != "2017-09-30"
    {
        return Err(AdminError::Invalid(format!(
            "queryVersion {v:?}: the only query version is 2017-09-30"
        )));
    }
    Ok(())
}

/// Largest OTA file (AWS's hard limit for MQTT OTA).
pub const OTA_FILE_MAX: u64 = 16 * 1024 * 1024;

/// Largest metadata file (fileType 142, #20): one stream block of the default size, which a
/// device verifies in place (design §3.1, D-4).
pub const METADATA_FILE_MAX: u64 = 4096;

/// Why an operator action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Bad input (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// A fleet-index query that does not parse (HTTP 400, AWS's `InvalidQueryException`).
    #[error("{0}")]
    InvalidQuery(String),
    /// Not found (HTTP 404).
    #[error("{0} not found")]
    NotFound(String),
    /// Exists (HTTP 409).
    #[error("{0} exists already")]
    Exists(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The CA failed.
    #[error(transparent)]
    Ca(#[from] CaError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Exists(w) => AdminError::Exists(w),
            StoreError::NotFound(w) => AdminError::NotFound(w),
            e => AdminError::Store(e),
        }
    }
}

impl From<RolloutError> for AdminError {
    fn from(e: RolloutError) -> Self {
        match e {
            RolloutError::Invalid(m) => AdminError::Invalid(m),
            RolloutError::NotFound(w) => AdminError::NotFound(w),
            RolloutError::Store(e) => e.into(),
        }
    }
}

type R<T> = Result<T, AdminError>;

/// What operator actions need from the connection layer, and nothing more: whether a thing
/// is connected ([`ThingDescription::connected`]) and a way to end a revoked thing's session.
///
/// Why a trait and not the broker: [`Admin`] changes the store, the files and the Jobs state
/// through [`Services`], and touches live sessions only in these two places. Behind this trait
/// it runs without a broker (a test's recorder, the offline CLI's [`NoSessions`]) and its
/// module does not import the broker's. The broker implements it
/// ([`crate::server`], where the two meet, so neither module imports the other).
pub trait Sessions: Send + Sync {
    /// Whether `thing` has a live MQTT session.
    fn is_connected(&self, thing: &str) -> bool;
    /// Every certificate of `thing` was just revoked in the store: close its live session and
    /// have the TLS layer reload the CRL now rather than at its next poll. One call, because
    /// the two always go together and a revocation is the only reason an operator action
    /// ends a session.
    fn revoked(&self, thing: &str);
}

/// No live sessions: the offline CLI (`ferrota thing revoke` while a server may be running in
/// another process). Nothing is connected here; a server in another process finds a
/// revocation at its next poll of the store ([`crate::server::Server::revocation_poll`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSessions;

impl Sessions for NoSessions {
    fn is_connected(&self, _thing: &str) -> bool {
        false
    }
    fn revoked(&self, _thing: &str) {}
}

/// Operator actions over the services (whose store, files and Jobs state they change) and the
/// live sessions ([`Sessions`]).
pub struct Admin {
    /// Store, files, clock and the Jobs notifications.
    pub services: Arc<Services>,
    /// The live sessions (the broker's, or none).
    pub sessions: Arc<dyn Sessions>,
    /// The CA (needed to create things).
    pub ca: Option<Ca>,
    /// Host name devices connect to (written into device bundles).
    pub endpoint: String,
    /// MQTT port written into device bundles.
    pub port: u16,
}

impl From<Thing> for ThingSummary {
    fn from(t: Thing) -> Self {
        ThingSummary {
            thing_name: t.name,
            groups: t.groups,
            created_at: t.created_at,
            attributes: BTreeMap::new(),
        }
    }
}

impl From<Execution> for ThingExecution {
    fn from(e: Execution) -> Self {
        ThingExecution {
            reason_text: reason_text(&e.status_details),
            job_id: e.job_id,
            status: e.status.as_str().into(),
            status_details: e.status_details,
            queued_at: e.queued_at,
            started_at: e.started_at,
            last_updated_at: e.last_updated_at,
            version_number: e.version_number,
            execution_number: e.execution_number,
        }
    }
}

/// Epoch seconds as RFC 3339 UTC (`2026-12-05T19:04:03Z`), for the CLI's human output; the
/// JSON keeps AWS's epoch seconds. A time out of range prints as the number.
pub fn rfc3339(epoch: u64) -> String {
    i64::try_from(epoch)
        .ok()
        .and_then(|e| time::OffsetDateTime::from_unix_timestamp(e).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| epoch.to_string())
}

/// `statusDetails.reason` in words, for the JSON of describes: the reason a device reports
/// stays verbatim in `statusDetails` (it is what the device wrote, and what AWS's console
/// shows), and the words go in a separate `reasonText` beside it
/// ([`ferrota_proto::reason::explain`]). `None` when there is no reason or the code is unknown
/// (an unknown code is never guessed).
pub fn reason_text(details: &BTreeMap<String, String>) -> Option<String> {
    details
        .get("reason")
        .and_then(|r| ferrota_proto::reason::explain(r))
        .map(|e| e.words.to_string())
}

impl From<OtaRecord> for OtaSummary {
    fn from(o: OtaRecord) -> Self {
        OtaSummary {
            request: serde_json::from_str(&o.request).unwrap_or(serde_json::Value::Null),
            ota_update_id: o.ota_update_id,
            status: o.status,
            job_id: o.job_id,
            stream_id: o.stream_id,
            created_at: o.created_at,
            error_info: o.error_info,
        }
    }
}

fn random_uuid() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("OS random");
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Admin {
    /// Checks the names of things about to be created and returns the CA that will sign them.
    fn check_new_things(&self, names: &[String], groups: &[String]) -> R<&Ca> {
        for name in names {
            validate_name(name, NameKind::Thing, &NameLimits::OTA_DEVICE)
                .map_err(|e| AdminError::Invalid(format!("thing name {name:?}: {e}")))?;
        }
        for g in groups {
            validate_name(g, NameKind::Stream, &NameLimits::AWS)
                .map_err(|_| AdminError::Invalid(format!("group name {g:?}: use [a-zA-Z0-9_-]")))?;
        }
        self.ca
            .as_ref()
            .ok_or_else(|| AdminError::Invalid("no CA: run `ferrota ca init` first".into()))
    }

    /// The stored records of a new thing and its first certificate.
    fn records(
        &self,
        name: &str,
        issued: &crate::ca::Issued,
        groups: &[String],
    ) -> (Thing, CertRecord) {
        let now = self.services.clock.now();
        (
            Thing {
                name: name.into(),
                groups: groups.to_vec(),
                created_at: now,
            },
            CertRecord {
                id: issued.cert_id.clone(),
                thing: name.into(),
                serial: issued.serial.clone(),
                pem: issued.cert_pem.clone(),
                status: CertStatus::Active,
                created_at: now,
                revoked_at: None,
            },
        )
    }

    /// Creates a thing, its certificate and the device bundle.
    pub async fn create_thing(&self, name: &str, groups: &[String]) -> R<ThingBundle> {
        self.create_thing_with(name, groups, |_| Ok(())).await
    }

    /// Creates a thing, its certificate and the device bundle, calling `stage` with the
    /// bundle before anything is stored. The private key exists only in the bundle, so a
    /// caller that writes it (`ferrota thing create`) does so in `stage`: if `stage` fails,
    /// nothing is stored (no thing with an ACTIVE certificate whose key is lost); if storing
    /// fails after `stage` succeeded, the caller removes what it wrote. Either way the
    /// outcome is all or nothing.
    pub async fn create_thing_with(
        &self,
        name: &str,
        groups: &[String],
        stage: impl FnOnce(&ThingBundle) -> Result<(), String>,
    ) -> R<ThingBundle> {
        self.create_thing_with_attributes(name, groups, &AttributePayload::default(), stage)
            .await
    }

    /// [`Admin::create_thing_with`] with AWS's `attributePayload` (`CreateThing`): the
    /// attributes are checked against AWS's limits before anything is issued or stored, and
    /// stored with the thing in one transaction. An empty value means no attribute (AWS's
    /// rule for removing one), and `merge` is refused: there is nothing to merge with.
    pub async fn create_thing_with_attributes(
        &self,
        name: &str,
        groups: &[String],
        payload: &AttributePayload,
        stage: impl FnOnce(&ThingBundle) -> Result<(), String>,
    ) -> R<ThingBundle> {
        if payload.merge.is_some() {
            return Err(AdminError::Invalid(
                "attributePayload.merge: only valid on UpdateThing (PATCH /api/things/{name})"
                    .into(),
            ));
        }
        let attributes: BTreeMap<String, String> = payload
            .attributes
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        check_attributes(&attributes)
            .map_err(|e| AdminError::Invalid(format!("attributePayload: {e}")))?;
        self.check_static_groups(groups).await?;
        let ca = self.check_new_things(std::slice::from_ref(&name.to_string()), groups)?;
        if self.services.store.thing(name).await?.is_some() {
            return Err(AdminError::Exists(format!("thing {name}")));
        }
        let issued = ca.issue_thing(name)?;
        let records = self.records(name, &issued, groups);
        let bundle = ThingBundle {
            credentials_config_h: credentials_h(
                name,
                &self.endpoint,
                self.port,
                ca.cert_pem(),
                &issued.cert_pem,
                &issued.key_pem,
            ),
            ota_config_h: ota_config_h(),
            thing_name: name.into(),
            certificate_id: issued.cert_id,
            certificate_pem: issued.cert_pem,
            private_key_pem: issued.key_pem,
            root_ca_pem: ca.cert_pem().to_string(),
        };
        stage(&bundle).map_err(AdminError::Invalid)?;
        // The thing, its certificate and its attributes in one transaction: a crash leaves
        // all or none.
        self.services
            .store
            .create_thing_with_attributes(&records.0, &records.1, &attributes)
            .await?;
        self.things_changed(&[name.to_string()]).await?;
        Ok(bundle)
    }

    /// Things were created or their groups (or, for a dynamic group, what it reports) changed:
    /// a CONTINUOUS rollout whose targets one now matches adds it ([`rollout::things_changed`]).
    /// Returns the `(job, thing)` pairs added.
    pub async fn things_changed(&self, names: &[String]) -> R<Vec<(String, String)>> {
        Ok(rollout::things_changed_now(&self.services, names).await?)
    }

    /// Creates many things at once (a fleet, a benchmark): every certificate is issued first,
    /// on as many threads as the machine has, then all things and certificates are stored in
    /// one transaction, so 10,000 things cost seconds rather than 20,000 commits. Returns each
    /// thing's certificate and key, in the order of `names`; no device bundles are written.
    pub async fn create_things(
        &self,
        names: &[String],
        groups: &[String],
    ) -> R<Vec<crate::ca::Issued>> {
        self.check_static_groups(groups).await?;
        let ca = self.check_new_things(names, groups)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = names.len().div_ceil(threads).max(1);
        let issued: Vec<crate::ca::Issued> = std::thread::scope(|s| {
            let handles: Vec<_> = names
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        let issuer = ca.issuer()?;
                        part.iter()
                            .map(|n| ca.issue_thing_with(&issuer, n))
                            .collect::<Result<Vec<_>, CaError>>()
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(names.len());
            for h in handles {
                let part = h
                    .join()
                    .map_err(|_| AdminError::Invalid("certificate thread panicked".into()))??;
                all.extend(part);
            }
            Ok::<_, AdminError>(all)
        })?;
        let items: Vec<(Thing, CertRecord)> = names
            .iter()
            .zip(&issued)
            .map(|(name, i)| self.records(name, i, groups))
            .collect();
        self.services
            .store
            .create_things_with_certificates(&items)
            .await?;
        self.things_changed(names).await?;
        Ok(issued)
    }

    /// A static group may not take the name of a dynamic group: `thinggroup/<name>` would
    /// then mean two sets of things.
    async fn check_static_groups(&self, groups: &[String]) -> R<()> {
        for g in groups {
            if self.services.store.dynamic_group(g).await?.is_some() {
                return Err(AdminError::Invalid(format!(
                    "group {g:?} is a dynamic thing group (its members are chosen by its \
                     query); a thing cannot be put into it"
                )));
            }
        }
        Ok(())
    }

    /// All things, with their attributes.
    pub async fn list_things(&self) -> R<Vec<ThingSummary>> {
        let s = &self.services.store;
        let mut attrs = s.all_attributes().await?;
        Ok(s.list_things()
            .await?
            .into_iter()
            .map(|t| {
                let a = attrs.remove(&t.name).unwrap_or_default();
                ThingSummary {
                    attributes: a,
                    ..ThingSummary::from(t)
                }
            })
            .collect())
    }

    /// AWS `UpdateThing` (attributes only): `merge: true` merges `attributes` into the stored
    /// ones, otherwise they replace them all; an empty value removes that attribute. The
    /// result is checked against AWS's limits (at most 50, names and values of AWS's
    /// characters and lengths) before it is stored; a refused update stores nothing.
    pub async fn update_thing(&self, name: &str, req: &UpdateThing) -> R<ThingDescription> {
        let s = &self.services.store;
        if s.thing(name).await?.is_none() {
            return Err(AdminError::NotFound(format!("thing {name}")));
        }
        let p = &req.attribute_payload;
        let merge = p.merge == Some(true);
        // Read, changed and checked in one store change: two merges never drop each other's
        // keys, and a refused one stores nothing.
        let update = |stored: BTreeMap<String, String>| {
            let mut attrs = if merge { stored } else { BTreeMap::new() };
            for (k, v) in &p.attributes {
                if v.is_empty() {
                    attrs.remove(k);
                } else {
                    attrs.insert(k.clone(), v.clone());
                }
            }
            check_attributes(&attrs)
                .map(|()| attrs)
                .map_err(|e| format!("attributePayload: {e}"))
        };
        s.update_attributes(name, &update)
            .await?
            .map_err(AdminError::Invalid)?;
        // New attributes may make it match a dynamic group a CONTINUOUS rollout targets.
        self.things_changed(&[name.to_string()]).await?;
        self.describe_thing(name).await
    }

    /// Gives the rollout engine this operator layer's view of targets: a CONTINUOUS rollout to
    /// a dynamic group reaches a thing as soon as it matches the group's query
    /// ([`crate::groups::Targets`]). Called once by whoever builds the `Admin` (the server,
    /// tests, simulations); without it only things and static groups are followed.
    pub fn follow_dynamic_targets(&self) {
        self.services
            .set_target_check(Arc::new(crate::groups::Targets {
                connected: Box::new(self.connected()),
                services: Arc::downgrade(&self.services),
            }));
    }

    /// Whether a thing is connected, as a function ([`groups::Connected`]).
    fn connected(&self) -> impl Fn(&str) -> bool + Send + Sync + use<> {
        let sessions = self.sessions.clone();
        move |t: &str| sessions.is_connected(t)
    }

    /// AWS `CreateDynamicThingGroup`: a group whose members are the things its query matches
    /// now ([`crate::groups`]). The query is parsed first (a bad one is
    /// [`AdminError::InvalidQuery`], nothing stored); the name may not be a static group's
    /// that things are in (409), nor a dynamic group's (409). Without `queryString` the
    /// request is refused: static groups exist by naming them in a thing's `groups`.
    pub async fn create_thing_group(&self, req: &CreateThingGroup) -> R<ThingGroupDescription> {
        let name = &req.thing_group_name;
        validate_name(name, NameKind::Stream, &NameLimits::AWS).map_err(|_| {
            AdminError::Invalid(format!(
                "thingGroupName {name:?}: 1-128 characters of [a-zA-Z0-9_-]"
            ))
        })?;
        check_index(req.index_name.as_deref(), req.query_version.as_deref())?;
        let Some(qs) = &req.query_string else {
            return Err(AdminError::Invalid(
                "queryString is required: this creates a dynamic group (a static group exists \
                 by naming it in a thing's groups, `ferrota thing create --group`)"
                    .into(),
            ));
        };
        Query::parse(qs).map_err(|e| AdminError::InvalidQuery(e.to_string()))?;
        let s = &self.services.store;
        let statics = s.group_members(name).await?;
        if !statics.is_empty() {
            return Err(AdminError::Exists(format!(
                "thing group {name} (a static group of {} thing(s))",
                statics.len()
            )));
        }
        s.create_dynamic_group(&crate::store::DynamicGroup {
            name: name.clone(),
            query_string: qs.clone(),
            created_at: self.services.clock.now(),
        })
        .await?;
        tracing::info!(group = %name, query = %qs, "dynamic thing group created");
        // A CONTINUOUS job may have named the group before it existed: its members join now.
        let names: Vec<String> = s.list_things().await?.into_iter().map(|t| t.name).collect();
        self.things_changed(&names).await?;
        self.describe_thing_group(name).await
    }

    /// Every thing group: the dynamic ones and the static ones things name, by name.
    pub async fn list_thing_groups(&self) -> R<Vec<ThingGroupDescription>> {
        let s = &self.services.store;
        let mut out: BTreeMap<String, ThingGroupDescription> = BTreeMap::new();
        for t in s.list_things().await? {
            for g in t.groups {
                out.entry(g.clone()).or_insert(ThingGroupDescription {
                    thing_group_name: g,
                    query_string: None,
                    created_at: None,
                    members: None,
                });
            }
        }
        for g in s.list_dynamic_groups().await? {
            out.insert(
                g.name.clone(),
                ThingGroupDescription {
                    thing_group_name: g.name,
                    query_string: Some(g.query_string),
                    created_at: Some(g.created_at),
                    members: None,
                },
            );
        }
        Ok(out.into_values().collect())
    }

    /// One thing group with its members now.
    pub async fn describe_thing_group(&self, name: &str) -> R<ThingGroupDescription> {
        let b = &*self.services;
        let dynamic = b.store.dynamic_group(name).await?;
        let connected = self.connected();
        let members = groups::members(b, &connected, name)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("thing group {name}")))?;
        Ok(ThingGroupDescription {
            thing_group_name: name.to_string(),
            query_string: dynamic.as_ref().map(|g| g.query_string.clone()),
            created_at: dynamic.map(|g| g.created_at),
            members: Some(members),
        })
    }

    /// Deletes a dynamic thing group (its things are untouched). A static group cannot be
    /// deleted: it exists while things name it.
    pub async fn delete_thing_group(&self, name: &str) -> R<()> {
        let s = &self.services.store;
        if s.dynamic_group(name).await?.is_none() && !s.group_members(name).await?.is_empty() {
            return Err(AdminError::Invalid(format!(
                "thing group {name} is static: it exists while things name it in their groups"
            )));
        }
        s.delete_dynamic_group(name).await?;
        tracing::info!(group = %name, "dynamic thing group deleted");
        Ok(())
    }

    /// AWS `SearchIndex`: the things whose index document matches the query, by name, one
    /// page at a time (`maxResults` 1–500, default 100, AWS's range; `nextToken` is the last
    /// name of the page before). A query that does not parse is
    /// [`AdminError::InvalidQuery`].
    pub async fn search_index(&self, req: &SearchIndex) -> R<SearchIndexAnswer> {
        let limit = req.max_results.unwrap_or(SEARCH_PAGE_DEFAULT);
        if !(1..=SEARCH_PAGE_MAX).contains(&limit) {
            return Err(AdminError::Invalid(format!(
                "maxResults must be 1-{SEARCH_PAGE_MAX}"
            )));
        }
        check_index(req.index_name.as_deref(), req.query_version.as_deref())?;
        let q =
            Query::parse(&req.query_string).map_err(|e| AdminError::InvalidQuery(e.to_string()))?;
        let connected = self.connected();
        let found = groups::search(&self.services, &connected, &q).await?;
        let mut things: Vec<ThingDocument> = found
            .into_iter()
            .filter(|i| req.next_token.as_ref().is_none_or(|t| i.thing.name > *t))
            .take(limit + 1)
            .map(|i| ThingDocument {
                shadow: i.document.get("shadow").map(|s| s.to_string()),
                connectivity: ferrota_api::Connectivity {
                    connected: i.inventory.connected,
                    timestamp: i.inventory.last_seen.map(|t| t.saturating_mul(1000)),
                },
                thing_name: i.thing.name,
                thing_group_names: i.thing.groups,
                attributes: i.attributes,
            })
            .collect();
        let next_token = if things.len() > limit {
            things.truncate(limit);
            things.last().map(|t| t.thing_name.clone())
        } else {
            None
        };
        Ok(SearchIndexAnswer { things, next_token })
    }

    /// One thing.
    pub async fn describe_thing(&self, name: &str) -> R<ThingDescription> {
        let s = &self.services.store;
        let thing = s
            .thing(name)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("thing {name}")))?;
        let connected = self.sessions.is_connected(name);
        Ok(ThingDescription {
            certificates: s
                .certificates_of(name)
                .await?
                .into_iter()
                .map(|c| CertSummary {
                    id: c.id,
                    serial: c.serial,
                    status: c.status,
                })
                .collect(),
            connected,
            inventory: crate::inventory::inventory(&self.services, connected, name).await?,
            executions: s
                .executions_of_thing(name)
                .await?
                .into_iter()
                .map(ThingExecution::from)
                .collect(),
            attributes: s.attributes(name).await?,
            thing_name: thing.name,
            groups: thing.groups,
            created_at: thing.created_at,
        })
    }

    /// Revokes every certificate of a thing, rewrites the CRL and disconnects it.
    pub async fn revoke_thing(&self, name: &str) -> R<u64> {
        let s = &self.services.store;
        if s.thing(name).await?.is_none() {
            return Err(AdminError::NotFound(format!("thing {name}")));
        }
        let n = s.revoke_thing(name, self.services.clock.now()).await?;
        if let Some(ca) = &self.ca {
            let revoked: Vec<(String, u64)> = s
                .revoked_certificates()
                .await?
                .into_iter()
                .map(|c| (c.serial, c.revoked_at.unwrap_or(0)))
                .collect();
            ca.write_crl(&revoked)?;
        }
        // A server in this process closes the session and reloads its CRL now; one in another
        // process (this is the offline CLI, [`NoSessions`]) notices the store change at its
        // next revocation poll.
        self.sessions.revoked(name);
        tracing::info!(thing = name, certificates = n, "revoked");
        Ok(n)
    }

    /// Stores a firmware file; returns its SHA-256. [`Admin::create_ota`] checks the content
    /// (and deletes the file if the create fails and nothing else uses it).
    pub async fn put_file(&self, data: &[u8]) -> R<String> {
        if data.is_empty() || data.len() as u64 > OTA_FILE_MAX {
            return Err(AdminError::Invalid(format!(
                "file size {} is outside 1..={OTA_FILE_MAX}",
                data.len()
            )));
        }
        Ok(self.services.blobs.put(data).await?)
    }

    /// The things of a request's targets. A CONTINUOUS job may name a group with no member
    /// yet (its members join later); a SNAPSHOT job must reach at least one thing.
    async fn resolve_targets(&self, targets: &[String], continuous: bool) -> R<Vec<String>> {
        let mut things = Vec::new();
        for t in targets {
            match Target::parse(t) {
                Some(Target::Thing(name)) => {
                    if self.services.store.thing(name).await?.is_none() {
                        return Err(AdminError::NotFound(format!("thing {name}")));
                    }
                    things.push(name.to_string());
                }
                Some(Target::Group(name)) => {
                    // A static group's things, or a dynamic group's members now; a
                    // CONTINUOUS job may name a group that has no member yet.
                    let connected = self.connected();
                    let m = match groups::members(&self.services, &connected, name).await? {
                        Some(m) => m,
                        None if continuous => Vec::new(),
                        None => return Err(AdminError::NotFound(format!("thing group {name}"))),
                    };
                    things.extend(m);
                }
                None => {
                    return Err(AdminError::Invalid(format!(
                        "target {t:?}: use thing/NAME or thinggroup/NAME"
                    )));
                }
            }
        }
        things.sort();
        things.dedup();
        if things.is_empty() && (!continuous || targets.is_empty()) {
            return Err(AdminError::Invalid("no targets".into()));
        }
        Ok(things)
    }

    /// `CreateOTAUpdate`: stream + job + executions; notifies connected targets.
    ///
    /// Only what devices will accept is stored: every file's signature must be base64 of a DER
    /// ECDSA P-256 signature, and a firmware file ([`FIRMWARE_FILE_TYPE`]) must be a Ferrota
    /// bank image (valid CM0+ region header and version record, as `ferrota image show`
    /// reads it); with `certificateChain.inlineDocument` the signature must verify over the
    /// file with that certificate's key; `targetSelection` must be SNAPSHOT and `protocols`
    /// MQTT (the only ones implemented); anything else is a 400 naming the field. On any
    /// failure the files of the request that no OTA update's stream uses are deleted, so a
    /// failed create leaves no orphan upload (the store is content-addressed: a file another
    /// update streams is kept).
    ///
    /// A firmware `files[0]` is also streamed as a packed file and as a delta from each of its
    /// `deltaFrom` bases (issue #19, [`Admin::alternatives`]); the job document lists them
    /// after the request's files. Those files are deleted too when the create fails.
    pub async fn create_ota(&self, req: &CreateOtaUpdate) -> R<OtaDescription> {
        let mut generated = Vec::new();
        let r = self.create_ota_checked(req, &mut generated).await;
        if r.is_err() {
            self.remove_unused_files(req, generated).await;
        }
        r
    }

    /// Deletes the request's files (its bases included) and the packed files made for it
    /// (`generated`) that no stream refers to (best effort: a failure is logged).
    async fn remove_unused_files(&self, req: &CreateOtaUpdate, mut generated: Vec<String>) {
        let mut shas: Vec<String> = req
            .files
            .iter()
            .flat_map(|f| std::iter::once(&f.file_location).chain(&f.delta_from))
            .map(|l| l.sha256.clone())
            .collect();
        shas.append(&mut generated);
        self.remove_unused_uploads(&shas).await;
    }

    /// The packed files of a firmware `files[0]` (issue #19): the image packed
    /// ("FRPK", sparse and compressed), and a delta from each base of `deltaFrom`, stored in
    /// the blob store (their SHA-256s pushed to `generated`, so a failed create deletes them)
    /// with the stream file ids `first_id`, `first_id + 1`, …
    ///
    /// Each base must be an uploaded Ferrota bank image other than the new one, named once;
    /// at most [`ferrota_api::DELTA_BASES_MAX`]. Its version and board come from its version
    /// record: the server serves a delta only to devices that report that version
    /// ([`crate::device_doc`]). The encoding runs on a blocking thread with no store
    /// transaction open.
    async fn alternatives(
        &self,
        f: &OtaFile,
        new: Vec<u8>,
        first_id: usize,
        generated: &mut Vec<String>,
    ) -> R<Vec<Alternative>> {
        let b = &*self.services;
        if f.delta_from.len() > ferrota_api::DELTA_BASES_MAX {
            return Err(AdminError::Invalid(format!(
                "files[0].deltaFrom: {} bases; at most {} (each is a delta to make and to \
                 stream)",
                f.delta_from.len(),
                ferrota_api::DELTA_BASES_MAX
            )));
        }
        let mut bases = Vec::new();
        let mut infos = Vec::new();
        for (j, base) in f.delta_from.iter().enumerate() {
            let sha = base.sha256.to_ascii_lowercase();
            let at = format!("files[0].deltaFrom[{j}] ({sha})");
            if sha == f.file_location.sha256.to_ascii_lowercase() {
                return Err(AdminError::Invalid(format!(
                    "{at}: the base is the new image itself; name the images devices run now"
                )));
            }
            if f.delta_from[..j]
                .iter()
                .any(|o| o.sha256.eq_ignore_ascii_case(&sha))
            {
                return Err(AdminError::Invalid(format!("{at}: named twice")));
            }
            let blob = b
                .blobs
                .open(&sha)
                .await
                .map_err(|_| AdminError::NotFound(format!("{at}: file")))?;
            if blob.len() > OTA_FILE_MAX {
                return Err(AdminError::Invalid(format!("{at}: larger than 16 MB")));
            }
            let mut data = vec![0u8; blob.len() as usize];
            blob.read_at(0, &mut data)
                .await
                .map_err(|e| AdminError::Invalid(format!("{at}: cannot read the file: {e}")))?;
            let summary = ferrota_image::inspect::inspect(&data);
            if let Some((what, e)) = summary.not_a_bank_image() {
                return Err(AdminError::Invalid(format!(
                    "{at}: not a Ferrota bank image ({what}: {e}); a delta base is an earlier \
                     bank image that devices run"
                )));
            }
            let (version, hardware) = match &summary.record {
                Ok(r) => (r.version.to_string(), r.hardware.as_str().to_string()),
                Err(e) => return Err(AdminError::Invalid(format!("{at}: {e}"))),
            };
            infos.push((sha, data.len(), version, hardware));
            bases.push(Arc::new(data));
        }
        let image_len = new.len();
        let (full, deltas) = crate::packed::pack(Arc::new(new), bases)
            .await
            .map_err(AdminError::Invalid)?;
        let name = &f.file_name;
        let mut made = vec![(full, format!("{name}.frpk"), None)];
        for (d, (sha, size, version, hardware)) in deltas.into_iter().zip(infos) {
            let path = format!("{name}.from-{version}.frpk");
            let base = Base {
                sha256: sha,
                size: size as u32,
                version,
                hardware_id: (!hardware.is_empty()).then_some(hardware),
            };
            made.push((d, path, Some(base)));
        }
        // Decision: a packed file that is not smaller than the image (incompressible code, a
        // delta from an unrelated build) is not offered: the image itself is cheaper to fetch
        // and needs no decoding (the agent skips such an entry too).
        let before = made.len();
        made.retain(|(data, _, _)| data.len() < image_len);
        if made.len() < before {
            tracing::info!(
                file = %f.file_location.sha256,
                dropped = before - made.len(),
                "packed files not smaller than the image: not offered"
            );
        }
        let mut alternatives = Vec::new();
        for (i, (data, file_path, base)) in made.into_iter().enumerate() {
            let size = data.len() as u64;
            if data.is_empty() || size > OTA_FILE_MAX {
                return Err(AdminError::Invalid(format!(
                    "{file_path}: a packed file of {size} bytes cannot be streamed"
                )));
            }
            let file_id = u8::try_from(first_id + i)
                .map_err(|_| AdminError::Invalid("too many files for one stream".into()))?;
            let sha = b.blobs.put(&data).await?;
            generated.push(sha.clone());
            alternatives.push(Alternative {
                file: StreamFile {
                    file_id,
                    blob: sha,
                    size,
                },
                file_path,
                base,
            });
        }
        tracing::info!(
            file = %f.file_location.sha256,
            sizes = ?alternatives.iter().map(|a| a.file.size).collect::<Vec<_>>(),
            "packed files made"
        );
        Ok(alternatives)
    }

    /// Deletes those of `shas` (uploaded files) that no OTA update's stream uses: after a
    /// refused create, so a failed request leaves no orphan upload, including one refused
    /// before it could be read as a [`CreateOtaUpdate`] (an unknown field). Best effort: a
    /// failure is logged; a name that is not a stored file is skipped.
    pub async fn remove_unused_uploads(&self, shas: &[String]) {
        let b = &*self.services;
        let mut used = std::collections::HashSet::new();
        let Ok(otas) = b.store.list_ota().await else {
            return;
        };
        for o in otas {
            match b.store.stream(&o.stream_id).await {
                Ok(Some(s)) => used.extend(s.files.into_iter().map(|f| f.blob)),
                Ok(None) => {}
                Err(_) => return,
            }
        }
        for h in shas {
            // `remove` ignores a name that is not a SHA-256 or not stored.
            if !used.contains(h)
                && let Err(e) = b.blobs.remove(h).await
            {
                tracing::warn!(file = %h, error = %e, "could not delete an unused upload");
            }
        }
    }

    /// Issue #20: the metadata files (fileType [`ferrota_manifest::MANIFEST_FILE_TYPE`], a
    /// SUIT envelope) of a request. At most one, never `files[0]` (the image it describes),
    /// and at most one stream block (4 KB, what a device verifies in place). With trust set
    /// and `check_bundles` on, it must pass [`crate::trust::TrustService::check_bundle`]
    /// against `files[0]`'s SHA-256 and size; without trust, it must at least parse as the
    /// strict envelope (a server that signs no timestamps cannot check signatures). Refused
    /// with the rule broken; nothing is stored then.
    async fn check_metadata_files(&self, req: &CreateOtaUpdate, files: &[StreamFile]) -> R<()> {
        let manifest_type = ferrota_manifest::MANIFEST_FILE_TYPE;
        let idx: Vec<usize> = req
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.file_type == Some(manifest_type))
            .map(|(i, _)| i)
            .collect();
        if idx.is_empty() {
            return Ok(());
        }
        if idx.len() > 1 {
            return Err(AdminError::Invalid(format!(
                "files{idx:?}: {} files of fileType {manifest_type} (metadata); a device takes \
                 exactly one",
                idx.len()
            )));
        }
        let i = idx[0];
        if i == 0 {
            return Err(AdminError::Invalid(format!(
                "files[0]: fileType {manifest_type} is the metadata file of files[0]; put the \
                 image first and the metadata file after it"
            )));
        }
        let sha = &req.files[i].file_location.sha256;
        let size = files[i].size;
        if size > METADATA_FILE_MAX {
            return Err(AdminError::Invalid(format!(
                "files[{i}] ({sha}): a metadata file of {size} bytes; at most \
                 {METADATA_FILE_MAX} (one stream block, verified in place on the device)"
            )));
        }
        let blob = self
            .services
            .blobs
            .open(sha)
            .await
            .map_err(|_| AdminError::NotFound(format!("file {sha}")))?;
        let mut data = vec![0u8; blob.len() as usize];
        blob.read_at(0, &mut data)
            .await
            .map_err(|e| AdminError::Invalid(format!("files[{i}]: cannot read the file: {e}")))?;
        let image_sha: [u8; 32] = hex::decode(&req.files[0].file_location.sha256)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| {
                AdminError::Invalid("files[0].fileLocation.sha256: not a SHA-256".into())
            })?;
        let refused = |why: String| {
            AdminError::Invalid(format!(
                "files[{i}] ({sha}): fileType {manifest_type} metadata refused: {why}"
            ))
        };
        match self.services.trust() {
            Some(t) if t.check_bundles() => t
                .check_bundle(&data, &image_sha, files[0].size)
                .map_err(refused),
            _ => ferrota_manifest::parse_bundle(&data)
                .map(|_| ())
                .map_err(|e| refused(format!("not a Ferrota metadata file (SUIT envelope): {e}"))),
        }
    }

    async fn create_ota_checked(
        &self,
        req: &CreateOtaUpdate,
        generated: &mut Vec<String>,
    ) -> R<OtaDescription> {
        validate_name(&req.ota_update_id, NameKind::JobId, &NameLimits::AWS)
            .map_err(|e| AdminError::Invalid(format!("otaUpdateId: {e}")))?;
        if req.files.is_empty() || req.files.len() > 50 {
            return Err(AdminError::Invalid(
                "an OTA update has 1 to 50 files".into(),
            ));
        }
        let timeout = req
            .aws_job_timeout_config
            .as_ref()
            .map(|t| t.in_progress_timeout_in_minutes);
        if timeout.is_some_and(|m| !crate::timeouts::valid_minutes(m)) {
            return Err(AdminError::Invalid(
                "inProgressTimeoutInMinutes must be 1-10080".into(),
            ));
        }
        // The job's configuration (targetSelection, rollout, abort, retry, scheduling,
        // waves): AWS's validation, one place (`rollout::config`); nothing is stored on error.
        let cfg = JobConfig::from_request(req);
        let when = cfg
            .validate(self.services.clock.now())
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        if let Some(p) = &req.protocols
            && (p.is_empty() || p.iter().any(|p| p != "MQTT"))
        {
            return Err(AdminError::Invalid(format!(
                "protocols: {p:?} is not supported; only [\"MQTT\"] is implemented"
            )));
        }
        let b = &*self.services;
        if b.store.ota(&req.ota_update_id).await?.is_some() {
            return Err(AdminError::Exists(format!(
                "OTA update {}",
                req.ota_update_id
            )));
        }
        let things = self.resolve_targets(&req.targets, cfg.continuous).await?;
        let stream_id = format!("AFR_OTA-{}", random_uuid());
        let job_id = format!("AFR_OTA-{}", req.ota_update_id);
        let mut files = Vec::new();
        let mut firmware = None;
        for (i, f) in req.files.iter().enumerate() {
            if i > 0 && !f.delta_from.is_empty() {
                return Err(AdminError::Invalid(format!(
                    "files[{i}].deltaFrom: deltas are made for files[0] only (the file devices \
                     install)"
                )));
            }
            let blob =
                b.blobs.open(&f.file_location.sha256).await.map_err(|_| {
                    AdminError::NotFound(format!("file {}", f.file_location.sha256))
                })?;
            if blob.len() > OTA_FILE_MAX {
                return Err(AdminError::Invalid("file larger than 16 MB".into()));
            }
            let data = check_file(i, f, &*blob).await?;
            if i == 0 {
                firmware = data;
            }
            files.push(StreamFile {
                file_id: i as u8,
                blob: f.file_location.sha256.clone(),
                size: blob.len(),
            });
        }
        // Issue #20: a metadata file (fileType 142) is checked against files[0] before
        // anything is stored.
        self.check_metadata_files(req, &files).await?;
        // Issue #19: a firmware files[0] is also streamed packed, and as a delta from each
        // base; they are made before anything is stored (a refused base stores nothing).
        let alternatives = match firmware {
            Some(new) => {
                self.alternatives(&req.files[0], new, files.len(), generated)
                    .await?
            }
            None if !req.files[0].delta_from.is_empty() => {
                return Err(AdminError::Invalid(format!(
                    "files[0].deltaFrom: deltas are made for firmware only (fileType \
                     {FIRMWARE_FILE_TYPE}, a Ferrota bank image)"
                )));
            }
            None => Vec::new(),
        };
        let f0 = &req.files[0];
        let mut outs: Vec<FileOut<'_>> = req
            .files
            .iter()
            .zip(&files)
            .map(|(f, s)| file_out(f, s.file_id, s.size))
            .collect();
        for a in &alternatives {
            outs.push(FileOut {
                file_path: Some(&a.file_path),
                packed: Some(a.packed_out()),
                ..file_out(f0, a.file.file_id, a.file.size)
            });
        }
        files.extend(alternatives.iter().map(|a| a.file.clone()));
        let doc = OtaJobOut {
            protocols: Protocols::MQTT,
            stream_name: Some(&stream_id),
            files: &outs,
        };
        let document = jobs::encode_grow(|buf| doc.encode(buf).map(str::len)).ok_or_else(|| {
            AdminError::Invalid(
                "the job document breaks a device limit (names, signature length)".into(),
            )
        })?;
        let document =
            String::from_utf8(document).map_err(|_| AdminError::Invalid("document".into()))?;
        let now = b.clock.now();
        if rollout::wants_rollout(&cfg) {
            return self
                .create_rollout(
                    req, &cfg, &when, &things, stream_id, job_id, files, document,
                )
                .await;
        }
        let mut before = Vec::new();
        for t in &things {
            before.push(jobs::pending(b, t).await?);
        }
        // Stream, job and record in one transaction: a failure leaves none of them, so the id
        // can be created again (`Store::create_ota_update`).
        b.store
            .create_ota_update(
                &StreamRecord {
                    stream_id: stream_id.clone(),
                    description: req.description.clone(),
                    version: 1,
                    files,
                },
                &Job {
                    job_id: job_id.clone(),
                    document,
                    state: JobState::InProgress,
                    ota_update_id: Some(req.ota_update_id.clone()),
                    created_at: now,
                    in_progress_timeout_minutes: timeout,
                },
                &things,
                &OtaRecord {
                    ota_update_id: req.ota_update_id.clone(),
                    status: "CREATE_COMPLETE".into(),
                    request: serde_json::to_string(req).unwrap_or_default(),
                    job_id,
                    stream_id,
                    created_at: now,
                    error_info: None,
                },
            )
            .await?;
        for (t, before) in things.iter().zip(before) {
            jobs::notify_changes(b, t, &before).await?;
        }
        tracing::info!(ota = %req.ota_update_id, things = things.len(), "OTA update created");
        self.describe_ota(&req.ota_update_id).await
    }

    /// The rollout path of [`Admin::create_ota`]: stream, job (SCHEDULED before its
    /// `startTime`), record, rollout and targets in one transaction, then the first step
    /// (which notifies what the rate, window and first wave allow at once).
    #[allow(clippy::too_many_arguments)]
    async fn create_rollout(
        &self,
        req: &CreateOtaUpdate,
        cfg: &JobConfig,
        when: &rollout::config::Validated,
        things: &[String],
        stream_id: String,
        job_id: String,
        files: Vec<StreamFile>,
        document: String,
    ) -> R<OtaDescription> {
        let b = &*self.services;
        let now = b.clock.now();
        let (plan, targets) = rollout::plan(b, &job_id, cfg, &req.targets, things, when).await?;
        let record = rollout::new_record(&job_id, &plan, now);
        b.store
            .create_ota_rollout(
                &StreamRecord {
                    stream_id: stream_id.clone(),
                    description: req.description.clone(),
                    version: 1,
                    files,
                },
                &Job {
                    job_id: job_id.clone(),
                    document,
                    state: if record.status == RolloutStatus::Scheduled {
                        JobState::Scheduled
                    } else {
                        JobState::InProgress
                    },
                    ota_update_id: Some(req.ota_update_id.clone()),
                    created_at: now,
                    in_progress_timeout_minutes: cfg.in_progress_timeout_minutes,
                },
                &OtaRecord {
                    ota_update_id: req.ota_update_id.clone(),
                    status: "CREATE_COMPLETE".into(),
                    request: serde_json::to_string(req).unwrap_or_default(),
                    job_id: job_id.clone(),
                    stream_id,
                    created_at: now,
                    error_info: None,
                },
                &record,
                &targets,
            )
            .await?;
        rollout::tick(b, &job_id).await?;
        b.rollouts.notify_one();
        tracing::info!(ota = %req.ota_update_id, things = things.len(), waves = plan.waves.len(), "OTA update created with a rollout");
        self.describe_ota(&req.ota_update_id).await
    }

    /// AWS DescribeJob: a job's status, counters, cancel reason and configuration.
    pub async fn describe_job(&self, job_id: &str) -> R<ferrota_api::DescribeJobResponse> {
        rollout::step(&self.services).await?;
        let s = &self.services.store;
        let j = s
            .job(job_id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("job {job_id}")))?;
        let req: Option<CreateOtaUpdate> = match &j.ota_update_id {
            Some(id) => s
                .ota(id)
                .await?
                .and_then(|o| serde_json::from_str(&o.request).ok()),
            None => None,
        };
        let cancel = s.cancel_info(job_id).await?.unwrap_or_default();
        let req = req.unwrap_or_default();
        Ok(ferrota_api::DescribeJobResponse {
            job: ferrota_api::JobDescription {
                job_id: j.job_id.clone(),
                target_selection: req
                    .target_selection
                    .clone()
                    .unwrap_or_else(|| "SNAPSHOT".into()),
                status: j.state,
                force_canceled: cancel.force,
                reason_code: cancel.reason_code,
                comment: cancel.comment,
                targets: req.targets,
                description: req.description,
                created_at: j.created_at,
                job_process_details: JobProcessDetails::from_counts(
                    &s.job_status_counts(job_id).await?,
                ),
                timeout_config: j.in_progress_timeout_minutes.map(|m| TimeoutConfig {
                    in_progress_timeout_in_minutes: m,
                }),
                job_executions_rollout_config: req.aws_job_executions_rollout_config,
                abort_config: req.aws_job_abort_config,
                job_executions_retry_config: req.job_executions_retry_config,
                scheduling_config: req.scheduling_config,
                rollout_waves: req.rollout_waves,
            },
        })
    }

    /// AWS GetJobDocument: the job document as stored, every file entry included (what a
    /// device is served leaves out the deltas it cannot use, [`crate::device_doc`]).
    pub async fn job_document(&self, job_id: &str) -> R<ferrota_api::GetJobDocumentResponse> {
        let j = self
            .services
            .store
            .job(job_id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("job {job_id}")))?;
        Ok(ferrota_api::GetJobDocumentResponse {
            document: j.document,
        })
    }

    /// The rollout of OTA update `id`, wave by wave ([`rollout::describe`]).
    pub async fn describe_rollout(&self, id: &str) -> R<RolloutDescription> {
        // What finished is taken in first (the runner batches it every 100 ms), so an
        // operator who saw a device fail never reads a rollout that has not seen it.
        rollout::step(&self.services).await?;
        let o = self
            .services
            .store
            .ota(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("OTA update {id}")))?;
        Ok(rollout::describe(&self.services, id, &o.job_id).await?)
    }

    /// An operator's action on the rollout of OTA update `id` (pause, resume, approve,
    /// cancel); answers the rollout as it stands after.
    pub async fn rollout_action(&self, id: &str, action: RolloutAction) -> R<RolloutDescription> {
        let o = self
            .services
            .store
            .ota(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("OTA update {id}")))?;
        rollout::act(&self.services, &o.job_id, action).await?;
        self.describe_rollout(id).await
    }

    /// All OTA updates, newest first.
    pub async fn list_ota(&self) -> R<Vec<OtaSummary>> {
        Ok(self
            .services
            .store
            .list_ota()
            .await?
            .into_iter()
            .map(OtaSummary::from)
            .collect())
    }

    /// One OTA update with the first page of its executions (see [`Admin::describe_ota_page`]).
    pub async fn describe_ota(&self, id: &str) -> R<OtaDescription> {
        self.describe_ota_page(id, &PageRequest::default()).await
    }

    /// One OTA update with one page of its executions, AWS style: `maxResults` (1–250) and
    /// `nextToken`. An invalid page request is [`AdminError::Invalid`].
    pub async fn describe_ota_page(&self, id: &str, page: &PageRequest) -> R<OtaDescription> {
        rollout::step(&self.services).await?;
        let limit = page.max_results.unwrap_or(DESCRIBE_PAGE_DEFAULT);
        if !(1..=DESCRIBE_PAGE_MAX).contains(&limit) {
            return Err(AdminError::Invalid(format!(
                "maxResults must be 1-{DESCRIBE_PAGE_MAX}"
            )));
        }
        let after = match &page.next_token {
            None => None,
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| AdminError::Invalid(format!("invalid nextToken {t:?}")))?,
            ),
        };
        let s = &self.services.store;
        let o = s
            .ota(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("OTA update {id}")))?;
        // One more than asked tells whether another page follows.
        let mut execs = s
            .executions_of_job_page(&o.job_id, after, limit + 1)
            .await?;
        let next_token = if execs.len() > limit {
            execs.truncate(limit);
            execs.last().map(|e| e.seq.to_string())
        } else {
            None
        };
        let executions = execs
            .into_iter()
            .map(|e| ExecutionDescription {
                reason_text: reason_text(&e.status_details),
                thing_name: e.thing,
                status: e.status.as_str().into(),
                status_details: e.status_details,
                version_number: e.version_number,
                last_updated_at: e.last_updated_at,
            })
            .collect();
        let cancel = s.cancel_info(&o.job_id).await?;
        Ok(OtaDescription {
            job_process_details: JobProcessDetails::from_counts(
                &s.job_status_counts(&o.job_id).await?,
            ),
            job_state: s.job(&o.job_id).await?.map(|j| j.state),
            force_canceled: cancel.as_ref().is_some_and(|c| c.force),
            reason_code: cancel.as_ref().and_then(|c| c.reason_code.clone()),
            comment: cancel.and_then(|c| c.comment),
            request: serde_json::from_str(&o.request).unwrap_or(serde_json::Value::Null),
            ota_update_id: o.ota_update_id,
            status: o.status,
            job_id: o.job_id,
            stream_id: o.stream_id,
            created_at: o.created_at,
            error_info: o.error_info,
            executions,
            next_token,
        })
    }

    /// The history of one thing's execution of an OTA update, oldest first: at most
    /// [`crate::store::HISTORY_MAX`] entries, the newest.
    pub async fn execution_history(&self, id: &str, thing: &str) -> R<Vec<HistoryDescription>> {
        let s = &self.services.store;
        let o = s
            .ota(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("OTA update {id}")))?;
        if s.execution(&o.job_id, thing).await?.is_none() {
            return Err(AdminError::NotFound(format!(
                "execution of OTA update {id} on {thing}"
            )));
        }
        Ok(s.history(&o.job_id, thing)
            .await?
            .into_iter()
            .map(|h: HistoryEntry| HistoryDescription {
                status: h.status.as_str().into(),
                reason_text: reason_text(&h.status_details),
                status_details: h.status_details,
                version_number: h.version_number,
                last_updated_at: h.at,
            })
            .collect())
    }

    /// Cancels an OTA update: QUEUED executions become CANCELED (and IN_PROGRESS ones too with
    /// `force`, as AWS's `CancelJob --force`), its rollout (if any) stops. Targets whose next
    /// job changes are notified.
    pub async fn cancel_ota(&self, id: &str, force: bool) -> R<OtaDescription> {
        let o = self
            .services
            .store
            .ota(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("OTA update {id}")))?;
        rollout::cancel_job(&self.services, &o.job_id, force).await?;
        self.describe_ota(id).await
    }
}

fn c_string(pem: &str) -> String {
    let mut s = String::new();
    for line in pem.lines() {
        s.push_str(&format!("\"{line}\\n\"\n"));
    }
    s
}

/// The seed's `credentials_config.h` for a thing.
pub fn credentials_h(
    thing: &str,
    endpoint: &str,
    port: u16,
    root_ca: &str,
    cert: &str,
    key: &str,
) -> String {
    format!(
        "/* credentials_config.h for thing {thing}, written by ferrota thing create */\n\
#ifndef CREDENTIALS_CONFIG_H_\n#define CREDENTIALS_CONFIG_H_\n\n\
#define CLIENT_IDENTIFIER \"{thing}\"\n\
#define AWS_IOT_ENDPOINT \"{endpoint}\"\n\
#define AWS_MQTT_PORT {port}\n\n\
static const char aws_root_ca_certificate[] =\n{}; \n\n\
static const char aws_client_cert[] =\n{};\n\n\
static const char aws_client_key[] =\n{};\n\n#endif\n",
        c_string(root_ca),
        c_string(cert),
        c_string(key)
    )
}

/// The seed's `ota_config.h` values (spec t2g §; aws-iot-ota §6.1).
pub fn ota_config_h() -> String {
    "/* ota_config.h, written by ferrota thing create */\n\
#ifndef OTA_CONFIG_H_\n#define OTA_CONFIG_H_\n\n\
#define otaconfigLOG2_FILE_BLOCK_SIZE 12UL\n\
#define otaconfigFILE_BLOCK_SIZE (1UL << otaconfigLOG2_FILE_BLOCK_SIZE)\n\
#define otaconfigSELF_TEST_RESPONSE_WAIT_MS 16000U\n\
#define otaconfigFILE_REQUEST_WAIT_MS 10000U\n\
#define otaconfigMAX_THINGNAME_LEN 64U\n\
#define otaconfigMAX_NUM_BLOCKS_REQUEST 8U\n\
#define otaconfigMAX_NUM_REQUEST_MOMENTUM 32U\n\
#define otaconfigOTA_UPDATE_STATUS_FREQUENCY 64U\n\
#define otaconfigMAX_NUM_OTA_DATA_BUFFERS 10U\n\
#define otaconfigAllowDowngrade 0U\n\
#define configOTA_FIRMWARE_UPDATE_FILE_TYPE_ID 141U\n\
#define configENABLED_CONTROL_PROTOCOL (OTA_CONTROL_OVER_MQTT)\n\
#define configENABLED_DATA_PROTOCOLS (OTA_DATA_OVER_MQTT)\n\
#define configOTA_PRIMARY_DATA_PROTOCOL (OTA_DATA_OVER_MQTT)\n\n#endif\n"
        .to_string()
}

/// The OTA verifying key of a code-signing certificate: [`ferrota_keys::material::code_signing_key`]
/// (kept here too, where the server's callers look for it).
pub use ferrota_keys::material::code_signing_key;

/// Checks file `i` of a create request: hash and signature algorithms are the ones devices
/// use (SHA256, ECDSA), the signature decodes, it verifies over the file with the public key
/// of `certificateChain.inlineDocument` when given, and a firmware file is a bank image the
/// agent can check (CM0+ region header and version record).
///
/// The bank-image check applies to `fileType` [`FIRMWARE_FILE_TYPE`] only. A file without
/// `fileType` goes to devices as type 0, which stock AWS devices take as *their* firmware, in
/// whatever format their PAL writes: Ferrota cannot know that format, so it checks only the
/// signature (and the certificate when given) there.
async fn check_file(
    i: usize,
    f: &OtaFile,
    blob: &dyn crate::store::BlobReader,
) -> R<Option<Vec<u8>>> {
    use ferrota_image::ota::OtaSignature;
    let cs = &f.code_signing.custom_code_signing;
    let field = |name: &str| format!("files[{i}].codeSigning.customCodeSigning.{name}");
    if !cs.hash_algorithm.eq_ignore_ascii_case("SHA256") {
        return Err(AdminError::Invalid(format!(
            "{}: {:?} is not supported (devices check SHA256)",
            field("hashAlgorithm"),
            cs.hash_algorithm
        )));
    }
    if !cs.signature_algorithm.eq_ignore_ascii_case("ECDSA") {
        return Err(AdminError::Invalid(format!(
            "{}: {:?} is not supported (devices check ECDSA P-256)",
            field("signatureAlgorithm"),
            cs.signature_algorithm
        )));
    }
    let sig = OtaSignature::from_base64(&cs.signature.inline_document).map_err(|e| {
        AdminError::Invalid(format!(
            "{}: {e} (expected base64 of a DER ECDSA P-256 signature)",
            field("signature.inlineDocument")
        ))
    })?;
    if let Some(cert) = &cs.certificate_chain.inline_document {
        let at = field("certificateChain.inlineDocument");
        let key = code_signing_key(cert.as_bytes())
            .map_err(|e| AdminError::Invalid(format!("{at}: {e}")))?;
        let digest: [u8; 32] = hex::decode(&f.file_location.sha256)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| {
                AdminError::Invalid(format!("files[{i}].fileLocation.sha256: not a SHA-256"))
            })?;
        sig.verify_digest(&key, &digest).map_err(|_| {
            AdminError::Invalid(format!(
                "{}: the signature does not verify over file {} with the public key of {at} \
                 (signed with another key, e.g. the boot key, or a signature of another file); \
                 every device holding this certificate would reject the file",
                field("signature.inlineDocument"),
                f.file_location.sha256
            ))
        })?;
    }
    if f.file_type != Some(FIRMWARE_FILE_TYPE) {
        return Ok(None);
    }
    let mut data = vec![0u8; blob.len() as usize];
    blob.read_at(0, &mut data)
        .await
        .map_err(|e| AdminError::Invalid(format!("files[{i}]: cannot read the file: {e}")))?;
    let s = ferrota_image::inspect::inspect(&data);
    let bad = |why: String| {
        AdminError::Invalid(format!(
            "files[{i}] ({}): fileType {FIRMWARE_FILE_TYPE} is firmware, but the file is not \
             a Ferrota bank image: {why}",
            f.file_location.sha256
        ))
    };
    match s.not_a_bank_image() {
        Some((what, e)) => Err(bad(format!("{what}: {e}"))),
        None => Ok(Some(data)),
    }
}

/// One entry of a request's file in the job document (the keys AWS writes).
fn file_out(f: &OtaFile, file_id: u8, size: u64) -> FileOut<'_> {
    FileOut {
        file_path: Some(&f.file_name),
        file_size: size as u32,
        file_id,
        cert_file: Some(
            &f.code_signing
                .custom_code_signing
                .certificate_chain
                .certificate_name,
        ),
        file_type: f.file_type,
        signature: Some((
            "sig-sha256-ecdsa",
            &f.code_signing.custom_code_signing.signature.inline_document,
        )),
        ..FileOut::default()
    }
}

/// The image a delta is made from, as the job document names it.
struct Base {
    sha256: String,
    size: u32,
    version: String,
    hardware_id: Option<String>,
}

/// A packed file made for `files[0]` ([`Admin::alternatives`]): its stream file, its
/// `filepath`, and for a delta its base.
struct Alternative {
    file: StreamFile,
    file_path: String,
    base: Option<Base>,
}

impl Alternative {
    /// The keys that mark the entry as an encoding of `files[0]`.
    fn packed_out(&self) -> PackedOut<'_> {
        PackedOut {
            encoding: crate::packed::ENCODING,
            block_size: crate::packed::block_size(),
            base: self.base.as_ref().map(|b| PackedBaseOut {
                sha256: &b.sha256,
                size: b.size,
                version: &b.version,
                hardware_id: b.hardware_id.as_deref(),
            }),
        }
    }
}
