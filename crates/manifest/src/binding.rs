//! Binding a verified manifest to the bank an update wrote (design §4.1 step 8): the last check
//! before activation, over the proof the image crate made from the bytes in flash.

use ferrota_image::verify::BankVerified;

use crate::class_id;
use crate::error::TrustError;
use crate::manifest::VerifiedManifest;

/// Proof that the bank an update wrote is the image a release key's manifest names: made only by
/// [`bind`], from a [`BankVerified`] (the bytes in flash, checked) and a [`VerifiedManifest`]
/// (the metadata, checked). The agent's activation takes it, so "the manifest was checked" and
/// "the bank was checked" cannot be about two different images.
///
/// Not `Clone`, and its field is private, so a caller cannot assemble or copy one:
///
/// ```compile_fail
/// let m = ferrota_manifest::ManifestMatched(());
/// ```
/// ```compile_fail
/// fn copy(m: &ferrota_manifest::ManifestMatched) -> ferrota_manifest::ManifestMatched {
///     m.clone()
/// }
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct ManifestMatched(());

/// Compares what the written bank's proof knows with what the manifest signs, and refuses any
/// difference as [`TrustError::ImageMismatch`] (FAILED sub 10, [`crate::SUB_MISMATCH`]):
///
/// - the file's length ([`BankVerified::file_len`]) with the manifest's image size;
/// - the file's SHA-256 as read back from flash ([`BankVerified::file_digest`]) with the
///   manifest's image digest: this one decides, the digest covers every byte streamed;
/// - the version record's version and security counter, its hardware id's [`class_id`] and the
///   CM0+ region's digest with the manifest's. They follow from the digest for a manifest that
///   `build::ManifestSpec::from_bank_image` made; comparing them as well refuses a manifest a
///   release key signed with facts that contradict its own image (the agent's rollback and
///   board checks ran on the manifest's facts, so they must be the image's).
///
/// Cost: 32-byte comparisons only; the digest was computed by the OTA signature check.
pub fn bind(bank: &BankVerified, m: &VerifiedManifest) -> Result<ManifestMatched, TrustError> {
    let rec = bank.record();
    let hw = rec.hardware.as_str();
    let same = bank.file_len() == m.image_size
        && bank.file_digest() == &m.image_digest
        && rec.version == m.version
        && bank.boot().security_counter() == m.security_counter
        && !hw.is_empty()
        && class_id(hw) == m.class_id
        && bank.boot().cm0p().digest() == &m.region_digests[0];
    if same {
        Ok(ManifestMatched(()))
    } else {
        Err(TrustError::ImageMismatch)
    }
}
