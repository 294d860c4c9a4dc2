//! Thing attributes and dynamic thing groups: the store side of the fleet index
//! ([`crate::query`], `crate::groups`).
//!
//! A sub-trait of [`Store`](super::Store) (its supertrait), so every [`SharedStore`](super::SharedStore)
//! reaches it; SQLite, memory and PostgreSQL implement it beside the rest.
//!
//! Attributes are AWS's `attributePayload.attributes`: a thing's name → value map, checked by
//! [`check_attributes`] before anything is stored. A dynamic group is a name and a query
//! string; its members are not stored but computed from the things' index documents each time
//! they are asked for, so a thing that starts matching is a member at once.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{CertRecord, StoreError, StoreResult, Thing};

/// The change of [`ThingIndexStore::update_attributes`]: the stored attributes in, the new
/// ones (or why not) out.
pub type AttributesUpdate<'a> =
    dyn Fn(BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> + Send + Sync + 'a;

/// Most attributes a thing may have. AWS allows 3 on a thing without a thing type and 50 on
/// one with a type; Ferrota has no thing types, so every thing gets the larger limit.
pub const ATTRIBUTES_MAX: usize = 50;

/// Longest attribute name (AWS: 128).
pub const ATTRIBUTE_NAME_MAX: usize = 128;

/// Longest attribute value (AWS: 800).
pub const ATTRIBUTE_VALUE_MAX: usize = 800;

/// Characters of an attribute name besides ASCII letters and digits (AWS's pattern
/// `[a-zA-Z0-9_.,@/:#-]+`).
const NAME_EXTRA: &str = "_.,@/:#-";

/// Characters of an attribute value besides ASCII letters and digits (AWS's pattern
/// `[a-zA-Z0-9_.,@/:#=\[\]-]*`).
const VALUE_EXTRA: &str = "_.,@/:#=[]-";

/// Checks attributes against AWS's limits: at most [`ATTRIBUTES_MAX`], names 1–128 of
/// `[a-zA-Z0-9_.,@/:#-]`, values up to 800 of `[a-zA-Z0-9_.,@/:#=\[\]-]`. The message names
/// the attribute.
pub fn check_attributes(attrs: &BTreeMap<String, String>) -> Result<(), String> {
    if attrs.len() > ATTRIBUTES_MAX {
        return Err(format!(
            "{} attributes; a thing has at most {ATTRIBUTES_MAX}",
            attrs.len()
        ));
    }
    for (k, v) in attrs {
        let name_ok = |c: char| c.is_ascii_alphanumeric() || NAME_EXTRA.contains(c);
        if k.is_empty() || k.len() > ATTRIBUTE_NAME_MAX || !k.chars().all(name_ok) {
            return Err(format!(
                "attribute name {k:?}: 1-{ATTRIBUTE_NAME_MAX} characters of [a-zA-Z0-9_.,@/:#-]"
            ));
        }
        let value_ok = |c: char| c.is_ascii_alphanumeric() || VALUE_EXTRA.contains(c);
        if v.len() > ATTRIBUTE_VALUE_MAX || !v.chars().all(value_ok) {
            return Err(format!(
                "attribute {k:?}: the value must be at most {ATTRIBUTE_VALUE_MAX} characters \
                 of [a-zA-Z0-9_.,@/:#=[]-]"
            ));
        }
    }
    Ok(())
}

/// A dynamic thing group as stored (AWS `CreateDynamicThingGroup`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicGroup {
    /// Group name (AWS's rules: `[a-zA-Z0-9:_-]`, 1–128).
    pub name: String,
    /// The fleet-index query that selects its members ([`crate::query`]).
    pub query_string: String,
    /// Creation time, epoch seconds.
    pub created_at: u64,
}

/// Thing attributes and dynamic thing groups (see the module docs).
#[async_trait]
pub trait ThingIndexStore: Send + Sync {
    /// Creates a thing, its first certificate and its attributes, all or none (one
    /// transaction: a crash leaves the thing with its attributes or no thing).
    async fn create_thing_with_attributes(
        &self,
        thing: &Thing,
        cert: &CertRecord,
        attributes: &BTreeMap<String, String>,
    ) -> StoreResult<()>;
    /// Replaces a thing's attributes with `attributes` (all of them; an empty map removes
    /// every one). [`StoreError::NotFound`] when there is no such thing.
    async fn set_attributes(
        &self,
        thing: &str,
        attributes: &BTreeMap<String, String>,
    ) -> StoreResult<()>;
    /// AWS `UpdateThing` as one change: `update` turns the stored attributes into the new ones
    /// (or refuses with a message, `Ok(Err(..))`, and nothing is stored) while no other change
    /// of the thing's attributes can interleave, so two merges never drop each other's keys
    /// (a read, then [`ThingIndexStore::set_attributes`], did). [`StoreError::NotFound`] when
    /// there is no such thing.
    async fn update_attributes(
        &self,
        thing: &str,
        update: &AttributesUpdate<'_>,
    ) -> StoreResult<Result<(), String>>;
    /// A thing's attributes (empty for a thing without any, or no such thing).
    async fn attributes(&self, thing: &str) -> StoreResult<BTreeMap<String, String>>;
    /// Every thing's attributes, by thing name (things without attributes left out): one
    /// read for a search over the fleet.
    async fn all_attributes(&self) -> StoreResult<BTreeMap<String, BTreeMap<String, String>>>;
    /// Stores a dynamic group; [`StoreError::Exists`] when the name is taken.
    async fn create_dynamic_group(&self, group: &DynamicGroup) -> StoreResult<()>;
    /// A dynamic group.
    async fn dynamic_group(&self, name: &str) -> StoreResult<Option<DynamicGroup>>;
    /// Every dynamic group, by name.
    async fn list_dynamic_groups(&self) -> StoreResult<Vec<DynamicGroup>>;
    /// Deletes a dynamic group; [`StoreError::NotFound`] when there is none.
    async fn delete_dynamic_group(&self, name: &str) -> StoreResult<()>;
}

/// The error of a missing dynamic group.
pub(crate) fn group_not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("thing group {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn aws_limits() {
        assert!(check_attributes(&attrs(&[("model", "KIT_T2G"), ("site", "")])).is_ok());
        assert!(check_attributes(&attrs(&[("a.b:c#d", "x=[1]")])).is_ok());
        assert!(check_attributes(&attrs(&[("", "x")])).is_err());
        assert!(check_attributes(&attrs(&[("a b", "x")])).is_err());
        assert!(check_attributes(&attrs(&[("a", "x y")])).is_err());
        assert!(check_attributes(&attrs(&[("a=", "x")])).is_err());
        let long = "n".repeat(ATTRIBUTE_NAME_MAX + 1);
        assert!(check_attributes(&attrs(&[(&long, "x")])).is_err());
        let long = "v".repeat(ATTRIBUTE_VALUE_MAX + 1);
        assert!(check_attributes(&attrs(&[("a", &long)])).is_err());
        let ok = "v".repeat(ATTRIBUTE_VALUE_MAX);
        assert!(check_attributes(&attrs(&[("a", &ok)])).is_ok());
        let many: BTreeMap<String, String> = (0..=ATTRIBUTES_MAX)
            .map(|i| (format!("a{i}"), "x".into()))
            .collect();
        assert!(check_attributes(&many).unwrap_err().contains("at most 50"));
    }
}
