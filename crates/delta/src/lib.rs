//! # ferrota-delta: packed bank images — sparse, compressed, and deltas
//!
//! A T2G bank image is 4,161,536 bytes whatever the code size; most of it is the builder's zero
//! fill. A *packed* file ("FRPK", byte layout in `crates/delta/FORMAT.md`,
//! also below) carries the same image in a fraction of the bytes: chunks of one byte value
//! cost nothing, the rest is compressed, and a *delta* copies what is unchanged from the image
//! the device already runs (its active bank, read through
//! [`embedded_storage::nor_flash::ReadNorFlash`]).
//!
//! * `no_std`, no allocation (default build): [`Header::parse`] checks block 0,
//!   [`frames`] checks a block's frames and tells where each one's output goes, [`Applier`] decodes a frame into the
//!   new bank, [`fill_chunk`] writes a chunk that has no frame.
//! * Feature `std`: [`encode`] packs full images and deltas (bsdiff matching by `bidiff`,
//!   heatshrink compression) and rebuilds them in memory through the same [`Applier`];
//!   [`mem::MemFlash`] is the in-memory NOR flash (NOR rules enforced) it uses.
//!
//! ## Why this shape
//! * **Every block after the header holds whole, self-contained frames** (each with its own
//!   compressor state and output range). Blocks can arrive in any order, be lost and asked for
//!   again, and a reset loses nothing but unfinished chunks: the agent's received-block bitmap,
//!   re-requests and resume work unchanged. Because a packed file is an ordinary file of the
//!   stream, it also goes through real AWS IoT Streams, which serve byte ranges of files.
//! * **Frames never cross a 32 KB chunk** (the T2G's large erase sector) and are in chunk order;
//!   the table gives each chunk the blocks that hold its frames. After a reset the agent erases
//!   each unfinished chunk and asks for exactly its blocks; a finished chunk is never decoded
//!   again.
//! * **Small chunks share blocks**: a block may end one chunk and start the next. A chunk that
//!   is unchanged from the base costs a COPY frame of about 20 bytes, not a 4 KB block; a
//!   release that touches a few places of a bank full of code is a few blocks (the first
//!   layout gave every chunk a block of its own: 512 KB for the demo's full-bank images, now
//!   7.5 KB). The price is at the shared block: after a reset it comes again when one of its
//!   chunks is unfinished, and the frames of the finished ones in it are skipped.
//! * **A chunk of one byte value has no frame**: the zero-filled gaps of a bank cost 6 table
//!   bytes per 32 KB; 0xFF chunks are not even written (the erase left them).
//! * **Per-frame compression costs little**: on real Thumb-2 code (below) the frames' payloads
//!   are 1.4 % larger than the same op streams compressed as one stream (139,596 vs 137,690
//!   bytes).
//! * **The codec is a header byte** (0 stored, 1 heatshrink, with its two parameters): another
//!   codec can be added later without changing anything else.
//!
//! ## RAM and the device's reads and writes
//! [`Applier`] is all the state: **1,472 bytes** on a 64-bit host (`tests/errors.rs` asserts
//! the figure, and ≤ 16 KB; a 32-bit MCU has smaller `usize` fields): the heatshrink window
//! (1,024 bytes), its 32-byte input buffer, a 64-byte buffer of decompressed ops and one
//! 256-byte output page. [`Header`] is under 1 KB (asserted). Old bytes are read straight into the output
//! page and the diff is added in place, with no second buffer; the old flash must read byte
//! by byte (`READ_SIZE == 1`, checked at compile time). Writes are whole `WRITE_SIZE` words
//! (a divisor of 256, checked at compile time; 8 on the T2G) and an all-0xFF word is never
//! written.
//!
//! ## Codec choice (measured)
//! `heatshrink-lib` 1.0 (`no_std`, const-generic window and lookahead, no `unsafe`): its
//! decoder was read for panics on malformed input. Its arithmetic cannot overflow for any
//! input, and the one panic path (`sink` with an empty slice) is never taken; property tests
//! and the fuzz target feed it random payloads.
//!
//! Window and lookahead were chosen with `cargo run --release -p ferrota-delta --example
//! measure -- code_v1.bin code_v2.bin`, on banks built with `ferrota_image::build::BankBuilder`
//! (as `ferrota image pack` does) whose CM7_0 code is real Thumb-2 code: the `.text` and
//! `.rodata` of newlib's `libc_nano.a` for Cortex-M7 (169 KB; gzip -9 makes it 62 %), and as
//! v1.1.0 the same with three functions replaced by their full-libc builds and one added in
//! the middle. Frame payload bytes of the packed full image (the block padding hides the
//! differences):
//!
//! | window bits | L=4 | L=5 | L=6 | decoder window |
//! |---|---|---|---|---|
//! | 8  | 145,118 | 147,390 | 149,909 | 256 B |
//! | 9  | 140,966 | 143,243 | 147,663 | 512 B |
//! | **10** | **139,596** | 143,507 | 145,160 | 1 KB |
//! | 11 | 141,884 | 142,546 | 144,049 | 2 KB |
//! | 12 | 142,099 | 143,063 | 144,585 | 4 KB |
//! | 13 | 143,894 | 144,773 | 146,225 | 8 KB |
//!
//! W = 10, L = 4 is both the smallest payload and small RAM: a frame holds ~4–5 KB of output,
//! so a larger window finds little more and its longer back-references cost more bits. Delta
//! payloads differ by under 5 % across the grid (893–942 bytes). Stored (no compression) makes
//! that full image 225,280 bytes instead of 180,224. No other codec was measured in the time
//! this crate had (miniz_oxide's inflate core and lz4_flex were the candidates); a later codec
//! byte can add one.
//!
//! ## Sizes
//! The sizes of packed images and deltas of real firmware builds, beside detools and bsdiff,
//! are measured by `ferrota bench delta` (docs/PERFORMANCE.md). A delta's payload is small
//! (hundreds of bytes to a few KB for a release that changes a few functions); with frames
//! sharing blocks and the last block ending with its frames, its wire size is the header block
//! plus its frames' bytes. Random stand-in code does not compress: heatshrink makes it ~10 % larger than
//! stored, real code ~20 % smaller; the server does not offer a packed file that is not smaller
//! than the image. Host times (release, 2 cores): packing a full image 0.1–0.25 s, a delta
//! 0.1–0.2 s; applying both 30–55 ms.
//!
//! ## The format
#![doc = include_str!("../FORMAT.md")]
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub mod error;
pub mod format;

#[cfg(feature = "std")]
pub mod encode;
#[cfg(feature = "std")]
pub mod mem;

pub use apply::{Applier, fill_chunk};
pub use error::{ApplyError, Corrupt, FormatError};
pub use format::{
    ChunkEntry, Codec, Frame, FrameInfo, Frames, Header, Kind, MAGIC, MAX_CHUNKS, frames,
};
