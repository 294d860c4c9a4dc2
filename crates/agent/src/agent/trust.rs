//! Signed update metadata on the device (issue #20, design §4): the signed timestamp of every
//! Jobs message, the fileType-142 manifest fetched and verified before any image block, the
//! trust store, the activation proof that names the manifest (or the plain AWS signature).

use super::*;

impl<'a, V: BootVerifier> Agent<'a, V> {
    /// The `trust` object of the shadow report (`None`: AWS bytes unchanged).
    pub(super) fn trust_out(&self) -> Option<ferrota_proto::shadow::TrustOut> {
        None
    }
}
