//! `alloc` feature: the encoders' output as a `Vec<u8>`, for the server (which does not know
//! the size of a message before it writes it). The devices keep the caller-buffer encoders; these
//! run the same code into a buffer that grows, so both write the same bytes.

use alloc::vec;
use alloc::vec::Vec;

use crate::job::EncodeError;

/// Largest output [`encode`] grows to: 16 MiB, more than any MQTT message the server sends (a
/// job document is ≤ 32 KB, a block ≤ 128 KB).
pub const OUTPUT_MAX: usize = 16 * 1024 * 1024;

/// Runs `f` (an encoder into a caller buffer returning the length written) into a buffer that
/// starts at 4 KiB and grows ×4 while `f` reports it too small, up to [`OUTPUT_MAX`].
pub fn encode<E: Into<EncodeError>>(
    f: impl FnMut(&mut [u8]) -> Result<usize, E>,
) -> Result<Vec<u8>, EncodeError> {
    encode_sized(4096, f)
}

/// [`encode`] starting from a buffer of `first` bytes: for a message whose size is known (or
/// bounded) before it is written, such as a stream block, so the hot path encodes once into
/// one allocation instead of failing at 4 KiB and encoding again.
pub fn encode_sized<E: Into<EncodeError>>(
    first: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, E>,
) -> Result<Vec<u8>, EncodeError> {
    let mut size = first.clamp(1, OUTPUT_MAX);
    loop {
        let mut buf = vec![0u8; size];
        match f(&mut buf).map_err(Into::into) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(EncodeError::BufferTooSmall) if size < OUTPUT_MAX => {
                size = (size * 4).min(OUTPUT_MAX)
            }
            Err(e) => return Err(e),
        }
    }
}
