//! Thing groups as the fleet sees them: static groups (named in a thing's `groups`) and
//! dynamic groups (AWS `CreateDynamicThingGroup`: a stored fleet-index query, [`crate::query`]).
//!
//! A dynamic group's members are never stored: they are the things whose index document
//! ([`crate::query::index_document`]) matches its query *now*, computed at each call. So a
//! thing is a member as soon as it matches (a new attribute, a reported firmware version, a
//! connect) and stops being one as soon as it does not, with nothing to keep in step. The
//! rollout engine asks [`is_member`] when a thing changes, to give a CONTINUOUS rollout to a
//! dynamic group to a device the moment it matches.
//!
//! What is connected is the connection layer's knowledge; this module takes it as a function
//! ([`Connected`]) rather than `admin::Sessions`, so that `admin` (which resolves
//! `thinggroup/<dynamic>` targets through [`members`]) can import this module without a
//! circle.

use std::collections::BTreeMap;

use ferrota_api::ThingInventory;
use serde_json::Value;

use crate::context::{Services, Target, TargetCheck};
use crate::query::{Query, index_document};
use crate::store::{StoreError, StoreResult, Thing};

/// Whether a thing has a live MQTT session (`|t| sessions.is_connected(t)`).
pub type Connected<'a> = &'a (dyn Fn(&str) -> bool + Send + Sync);

/// One thing as the index sees it: the thing, its attributes and inventory, and its index
/// document.
#[derive(Debug, Clone)]
pub struct Indexed {
    /// The thing.
    pub thing: Thing,
    /// Its attributes.
    pub attributes: BTreeMap<String, String>,
    /// Its inventory.
    pub inventory: ThingInventory,
    /// Its index document ([`index_document`]).
    pub document: Value,
}

/// A stored query that no longer parses (the syntax is checked at create, so only a
/// database edited by hand or a narrower future parser gets here).
fn corrupt_query(group: &str, e: &crate::query::QueryError) -> StoreError {
    StoreError::Corrupt(format!("dynamic group {group}: stored query: {e}"))
}

/// Whether `thing` is a member of `group` now: named in the thing's static groups, or
/// matching the query of the dynamic group of that name. `false` for a thing or group that
/// does not exist.
pub async fn is_member(
    b: &Services,
    connected: Connected<'_>,
    group: &str,
    thing: &str,
) -> StoreResult<bool> {
    let Some(t) = b.store.thing(thing).await? else {
        return Ok(false);
    };
    if t.groups.iter().any(|g| g == group) {
        return Ok(true);
    }
    let Some(g) = b.store.dynamic_group(group).await? else {
        return Ok(false);
    };
    let q = Query::parse(&g.query_string).map_err(|e| corrupt_query(group, &e))?;
    let attributes = b.store.attributes(thing).await?;
    let inventory = thing_inventory(b, connected, thing).await?;
    Ok(q.matches(&index_document(&t, &attributes, &inventory)))
}

/// The members of `group` now, by name: a dynamic group's matching things, else the static
/// group's. `None` when no group of that name exists (no dynamic group, no thing naming it).
pub async fn members(
    b: &Services,
    connected: Connected<'_>,
    group: &str,
) -> StoreResult<Option<Vec<String>>> {
    if let Some(g) = b.store.dynamic_group(group).await? {
        let q = Query::parse(&g.query_string).map_err(|e| corrupt_query(group, &e))?;
        let found = search(b, connected, &q).await?;
        return Ok(Some(found.into_iter().map(|i| i.thing.name).collect()));
    }
    let m = b.store.group_members(group).await?;
    Ok(if m.is_empty() { None } else { Some(m) })
}

/// Every thing whose index document matches `q`, by name.
///
/// Cost: one read of all things and all attributes, then the inventory of each thing; linear
/// in the fleet, fine for a search or a group describe (a store-side index is for when a
/// fleet outgrows it).
pub async fn search(
    b: &Services,
    connected: Connected<'_>,
    q: &Query,
) -> StoreResult<Vec<Indexed>> {
    let things = b.store.list_things().await?;
    let mut attrs = b.store.all_attributes().await?;
    let mut out = Vec::new();
    for thing in things {
        let attributes = attrs.remove(&thing.name).unwrap_or_default();
        let inventory = thing_inventory(b, connected, &thing.name).await?;
        let document = index_document(&thing, &attributes, &inventory);
        if q.matches(&document) {
            out.push(Indexed {
                thing,
                attributes,
                inventory,
                document,
            });
        }
    }
    Ok(out)
}

/// A thing's inventory as the index sees it ([`crate::inventory::inventory`]: its shadow's
/// reported state, connection, last seen, last job).
async fn thing_inventory(
    b: &Services,
    connected: Connected<'_>,
    thing: &str,
) -> StoreResult<ThingInventory> {
    crate::inventory::inventory(b, connected(thing), thing).await
}

/// The [`TargetCheck`] of CONTINUOUS rollouts with dynamic groups: `thing/<name>`, and
/// `thinggroup/<group>` by [`is_member`] (static membership or the group's query now).
pub struct Targets {
    /// Whether a thing is connected now (the sessions').
    pub connected: Box<dyn Fn(&str) -> bool + Send + Sync>,
    /// The services (held weakly: they hold this check).
    pub services: std::sync::Weak<Services>,
}

#[async_trait::async_trait]
impl TargetCheck for Targets {
    async fn check(&self, target: &str, thing: &str) -> StoreResult<bool> {
        let Some(b) = self.services.upgrade() else {
            return Ok(false);
        };
        match Target::parse(target) {
            Some(Target::Thing(n)) => Ok(n == thing),
            Some(Target::Group(g)) => is_member(&b, &*self.connected, g, thing).await,
            None => Ok(false),
        }
    }
}
