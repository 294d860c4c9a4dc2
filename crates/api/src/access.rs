//! Who may do what through the API: operator roles and tokens, and the audit log's records with
//! the hash chain that makes a changed, removed or reordered record visible.
//!
//! Why here and not in the server: the CLI verifies an exported audit log on its own
//! (`ferrota audit verify --file`), with the same code the server used to chain it.
//!
//! ## Roles
//! Modelled on the seed system's IAM `user_policy.json`, which gives the person who releases
//! firmware `iot:CreateOTAUpdate`, `iot:CreateStream`, `iot:CreateJob`, the describe and list
//! actions and the S3 upload, and nothing on things or certificates:
//!
//! | role | may |
//! |---|---|
//! | `viewer` | read everything: things, groups, inventory, OTA updates, rollouts, the audit log, metrics |
//! | `release-manager` | a viewer's reads; upload firmware, create and cancel OTA updates, pause, resume, approve and cancel rollouts |
//! | `admin` | everything: things, thing groups, certificates and revocation, operator tokens |
//!
//! Each role includes the ones above it in the table.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An operator's role. Ordered: a higher role may do everything a lower one may.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    utoipa::ToSchema,
    Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads only.
    Viewer,
    /// Releases firmware and steers rollouts.
    ReleaseManager,
    /// Manages things, certificates and tokens too.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::ReleaseManager, Role::Admin];

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    /// The role's name as the API and the CLI spell it (`release-manager`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::ReleaseManager => "release-manager",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role '{s}': one of viewer, release-manager, admin"))
    }
}

/// `POST /api/tokens`: a new operator token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    /// Who holds it (a person or a system: `alice`, `ci-release`); 1–64 characters of
    /// letters, digits, `-`, `_`, `.`, `@`. Recorded in the audit log with every action.
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// A token as listed (never its secret: only its SHA-256 is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenDescription {
    /// Its id (the first 16 hex digits of the token's SHA-256), named in the audit log.
    pub token_id: String,
    /// Who holds it.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Creation time, epoch seconds.
    pub created_at: u64,
    /// Revocation time, epoch seconds; a revoked token is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

/// `POST /api/tokens`'s answer: the secret, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    /// The bearer token (`Authorization: Bearer <token>`).
    pub token: String,
    /// The token as it is listed.
    pub description: TokenDescription,
}

/// `GET /api/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenList {
    /// Every token, revoked ones included (oldest first).
    pub tokens: Vec<TokenDescription>,
}

/// The id of a token: the first 16 hex digits of its SHA-256 (enough to name it, not to find
/// it: the secret has 256 bits).
pub fn token_id(token: &str) -> String {
    token_hash(token)[..16].to_string()
}

/// SHA-256 of a token, hex: what the server stores and looks tokens up by.
pub fn token_hash(token: &str) -> String {
    hex_of(&Sha256::digest(token.as_bytes()))
}

fn hex_of(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What happened, before it is chained: the server fills these in and the store appends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// When, epoch seconds.
    pub at: u64,
    /// Who: the token's holder (`alice`), `device:<thing>` for a device's outcome, `server`
    /// for the server's own decisions (a timeout, a rollout stopped by its criteria).
    pub actor: String,
    /// The token used, for operator actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// What: AWS's operation name where AWS has one (`CreateOTAUpdate`, `CancelJob`,
    /// `UpdateJobExecution`), else Ferrota's (`PauseRollout`, `CreateToken`).
    pub action: String,
    /// On what: the resource (`ota/rel-1`, `thing/dev-1`, `token/3f2a…`, `job/x/thing/dev-1`).
    pub target: String,
    /// The result: the HTTP status and AWS error code of an operator action (`200`,
    /// `400 InvalidRequestException`), the status a device reached (`SUCCEEDED`,
    /// `FAILED rejected: 0x0000000f`).
    pub result: String,
}

/// A record of the audit log: an entry, its place, and the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Its number: 1, 2, 3, … with no gap.
    pub seq: u64,
    /// What happened.
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// The previous record's hash ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// SHA-256 over this record's fields and `prev_hash` ([`record_hash`]).
    pub hash: String,
}

/// The `prev_hash` of record 1.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of a record: SHA-256, hex, of the JSON array `[seq, at, actor, tokenId, action,
/// target, result, prevHash]` (an array, so the bytes hashed do not depend on key order).
pub fn record_hash(seq: u64, e: &AuditEntry, prev_hash: &str) -> String {
    let fields = serde_json::json!([
        seq, e.at, e.actor, e.token_id, e.action, e.target, e.result, prev_hash
    ]);
    hex_of(&Sha256::digest(fields.to_string().as_bytes()))
}

/// Chains `entry` after the record `prev` (or starts the log).
pub fn chain(prev: Option<&AuditRecord>, entry: AuditEntry) -> AuditRecord {
    let (seq, prev_hash) = match prev {
        Some(p) => (p.seq + 1, p.hash.clone()),
        None => (1, GENESIS.to_string()),
    };
    let hash = record_hash(seq, &entry, &prev_hash);
    AuditRecord {
        seq,
        entry,
        prev_hash,
        hash,
    }
}

/// `GET /api/audit`: one page of the log, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// The records.
    pub records: Vec<AuditRecord>,
    /// Pass as `nextToken` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Where a chain of records stops being intact, named by record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The record's fields no longer give its hash: it was changed.
    #[error("record {seq} was changed: its fields no longer give its hash")]
    Changed {
        /// The record.
        seq: u64,
    },
    /// Records are missing before this one (`missing` is the first seq not found).
    #[error("records {first}..={last} were removed: record {seq} follows record {before}")]
    Removed {
        /// The record after the gap.
        seq: u64,
        /// The record before the gap (0: the start of the log).
        before: u64,
        /// First missing seq.
        first: u64,
        /// Last missing seq.
        last: u64,
    },
    /// A record stands after one with a higher number: the log was reordered.
    #[error("record {seq} stands after record {before}: the records were reordered")]
    Reordered {
        /// The record out of place.
        seq: u64,
        /// The record it follows.
        before: u64,
    },
    /// The record's `prevHash` is not the hash of the record before it (that one was
    /// replaced whole, with a hash recomputed to match its changed fields).
    #[error("record {seq} does not chain to record {before}: record {before} was replaced")]
    Unlinked {
        /// The record whose link is broken.
        seq: u64,
        /// The record before it.
        before: u64,
    },
}

/// The last record of an intact log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainHead {
    /// Records checked.
    pub records: u64,
    /// The last record's seq (0: empty).
    pub seq: u64,
    /// Its hash ([`GENESIS`] when empty). Keep it: removing the newest records leaves an
    /// intact shorter chain, which only a head noted earlier shows (`--head SEQ:HASH`).
    pub hash: String,
}

/// Checks records in the order they are stored, from record 1: each one's hash, its number
/// (one more than the previous) and its link to the previous one. The first break is named.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
) -> Result<ChainHead, ChainBreak> {
    let records: Vec<&AuditRecord> = records.into_iter().collect();
    let present: std::collections::HashSet<u64> = records.iter().map(|r| r.seq).collect();
    let mut prev: Option<&AuditRecord> = None;
    let mut count = 0;
    for r in records {
        let (before, before_hash) = prev.map_or((0, GENESIS), |p| (p.seq, p.hash.as_str()));
        // A gap whose missing record stands elsewhere is a reordering, not a removal.
        if r.seq <= before || (r.seq > before + 1 && present.contains(&(before + 1))) {
            return Err(ChainBreak::Reordered { seq: r.seq, before });
        }
        if r.seq > before + 1 {
            return Err(ChainBreak::Removed {
                seq: r.seq,
                before,
                first: before + 1,
                last: r.seq - 1,
            });
        }
        if record_hash(r.seq, &r.entry, &r.prev_hash) != r.hash {
            return Err(ChainBreak::Changed { seq: r.seq });
        }
        if r.prev_hash != before_hash {
            return Err(ChainBreak::Unlinked { seq: r.seq, before });
        }
        prev = Some(r);
        count += 1;
    }
    Ok(ChainHead {
        records: count,
        seq: prev.map_or(0, |p| p.seq),
        hash: prev.map_or(GENESIS.to_string(), |p| p.hash.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: u64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let e = AuditEntry {
                at: 1_700_000_000 + i,
                actor: "alice".into(),
                token_id: Some("0123456789abcdef".into()),
                action: "CreateOTAUpdate".into(),
                target: format!("ota/rel-{i}"),
                result: "200".into(),
            };
            let r = chain(out.last(), e);
            out.push(r);
        }
        out
    }

    #[test]
    fn an_intact_log_verifies_and_names_its_head() {
        let l = log(5);
        let head = verify_chain(&l).expect("intact");
        assert_eq!((head.records, head.seq), (5, 5));
        assert_eq!(head.hash, l[4].hash);
        assert_eq!(verify_chain(&[]).expect("empty").hash, GENESIS);
    }

    #[test]
    fn a_changed_field_is_named_by_its_record() {
        for field in 0..5 {
            let mut l = log(5);
            let e = &mut l[2].entry;
            match field {
                0 => e.at += 1,
                1 => e.actor = "mallory".into(),
                2 => e.token_id = None,
                3 => e.result = "400 InvalidRequestException".into(),
                _ => e.target = "ota/other".into(),
            }
            assert_eq!(verify_chain(&l), Err(ChainBreak::Changed { seq: 3 }));
        }
    }

    #[test]
    fn a_removed_record_is_named_with_the_gap() {
        let mut l = log(5);
        l.remove(1);
        assert_eq!(
            verify_chain(&l),
            Err(ChainBreak::Removed {
                seq: 3,
                before: 1,
                first: 2,
                last: 2
            })
        );
        let mut l = log(3);
        l.remove(0);
        assert!(matches!(
            verify_chain(&l),
            Err(ChainBreak::Removed {
                seq: 2,
                before: 0,
                ..
            })
        ));
    }

    #[test]
    fn reordered_records_are_named() {
        let mut l = log(5);
        l.swap(1, 3);
        assert_eq!(
            verify_chain(&l),
            Err(ChainBreak::Reordered { seq: 4, before: 1 })
        );
        let mut l = log(5);
        l.swap(2, 3);
        assert_eq!(
            verify_chain(&l),
            Err(ChainBreak::Reordered { seq: 4, before: 2 })
        );
        let mut l = log(3);
        let first = l.remove(0);
        l.push(first);
        assert_eq!(
            verify_chain(&l),
            Err(ChainBreak::Reordered { seq: 2, before: 0 })
        );
    }

    #[test]
    fn a_record_replaced_whole_with_a_fresh_hash_breaks_the_next_link() {
        let mut l = log(4);
        let mut forged = l[1].entry.clone();
        forged.actor = "mallory".into();
        l[1] = AuditRecord {
            seq: 2,
            hash: record_hash(2, &forged, &l[1].prev_hash),
            prev_hash: l[1].prev_hash.clone(),
            entry: forged,
        };
        assert_eq!(
            verify_chain(&l),
            Err(ChainBreak::Unlinked { seq: 3, before: 2 })
        );
    }

    #[test]
    fn roles_are_ordered_and_spelled_as_the_cli_takes_them() {
        assert!(Role::Admin.allows(Role::ReleaseManager));
        assert!(Role::ReleaseManager.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::ReleaseManager));
        assert!(!Role::ReleaseManager.allows(Role::Admin));
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert!("root".parse::<Role>().unwrap_err().contains("viewer"));
    }
}
