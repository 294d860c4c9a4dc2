//! The server's one door to `ferrota-delta` (issue #19): packs a firmware bank image as a
//! sparse, compressed "FRPK" file and a delta from an earlier bank image, on a blocking thread
//! (4 MB take a while: the async runtime keeps serving devices meanwhile). Nothing else in the
//! server names `ferrota_delta`, so a change of its API is a change of this file.

use ferrota_delta::encode::{self, Params};

/// The `encoding` of a packed entry in the job document.
pub const ENCODING: &str = "frpk1";

/// The wire block size a packed file is made for: the stream block size the agent requests
/// (`otaconfigLOG2_FILE_BLOCK_SIZE` 12 of the written `ota_config.h`), the design's default.
pub fn block_size() -> u32 {
    Params::default().block_size
}

/// The packed files of one update: the full image packed, then one delta per base, in the
/// order of `bases`. Runs on the blocking pool; an encoder error is returned as its text.
pub async fn pack(
    new: std::sync::Arc<Vec<u8>>,
    bases: Vec<std::sync::Arc<Vec<u8>>>,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    tokio::task::spawn_blocking(move || {
        let p = Params::default();
        let full = encode::full(&new, &p).map_err(|e| format!("packing the image: {e}"))?;
        let deltas = bases
            .iter()
            .enumerate()
            .map(|(i, old)| {
                encode::delta(old, &new, &p)
                    .map_err(|e| format!("deltaFrom[{i}]: making the delta: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok((full, deltas))
    })
    .await
    .map_err(|e| format!("the packing thread failed: {e}"))?
}
