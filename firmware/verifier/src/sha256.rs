//! SHA-256 (FIPS 180-4) with a compression function written for ARMv7-M (Cortex-M7), for the
//! instruction-count comparison with RustCrypto's `sha2` in `cm7-verify`.
//!
//! The compression is fully unrolled:
//! * the eight working variables are never moved: each round is a macro invocation whose
//!   arguments name them in rotated order, so round `i` updates `d` and `h` in place and round
//!   `i + 1` calls `h` "a";
//! * Σ0, Σ1, σ0, σ1 are written as `ror(x ^ ror(x, k1) ^ ror(x, k2), k0)` (one rotation factored
//!   out), so that each costs two `eor`s with a rotated operand and the outer rotation folds
//!   into the `add`/`eor` that consumes it;
//! * `Maj(a, b, c) = ((a ^ b) & (b ^ c)) ^ b`: round `i + 1`'s `b ^ c` is round `i`'s `a ^ b`
//!   (common-subexpression elimination sees it, the variables being the same values);
//! * `Ch(e, f, g) = ((f ^ g) & e) ^ g`;
//! * the message schedule is computed in place in a 16-word ring.
//!
//! The block's words are loaded with `ldr` + `rev` (ARMv7-M reads unaligned words).
//!
//! Measured on the M7 (`cm7-verify`, opt-level s, 1,020 blocks of the CM0+ region through the
//! same 1 KB scratch buffer): ~2,240 instructions per block against ~2,400 for `sha2`'s unrolled
//! backend (~4,280 for its compact one). What is left above the ~1,870 of an ideal Thumb-2
//! round sequence (all eight working variables in registers) is spills: LLVM interleaves the
//! `e` and `a` chains of consecutive rounds and runs out of the 13 free registers.
//!
//! Tested against `sha2` on the host (`tests/sha256.rs`).

/// The round constants.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The initial hash value.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

#[inline(always)]
fn big_sigma0(a: u32) -> u32 {
    (a ^ a.rotate_right(11) ^ a.rotate_right(20)).rotate_right(2)
}

#[inline(always)]
fn big_sigma1(e: u32) -> u32 {
    (e ^ e.rotate_right(5) ^ e.rotate_right(19)).rotate_right(6)
}

#[inline(always)]
fn small_sigma0(x: u32) -> u32 {
    (x ^ x.rotate_right(11)).rotate_right(7) ^ (x >> 3)
}

#[inline(always)]
fn small_sigma1(x: u32) -> u32 {
    (x ^ x.rotate_right(2)).rotate_right(17) ^ (x >> 10)
}

/// One round: `h` becomes the new `a`, `d` the new `e`; the caller rotates the names.
macro_rules! round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $kw:expr) => {
        $h = $h
            .wrapping_add(big_sigma1($e))
            .wrapping_add((($f ^ $g) & $e) ^ $g)
            .wrapping_add($kw);
        $d = $d.wrapping_add($h);
        $h = $h
            .wrapping_add(big_sigma0($a))
            .wrapping_add((($a ^ $b) & ($b ^ $c)) ^ $b);
    };
}

/// Eight rounds from `W[base..base+8]` (`$w` yields `K[i] + W[i]` for round `i`).
macro_rules! eight {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident,
     $base:expr, $w:ident) => {
        round!($a, $b, $c, $d, $e, $f, $g, $h, $w!($base));
        round!($h, $a, $b, $c, $d, $e, $f, $g, $w!($base + 1));
        round!($g, $h, $a, $b, $c, $d, $e, $f, $w!($base + 2));
        round!($f, $g, $h, $a, $b, $c, $d, $e, $w!($base + 3));
        round!($e, $f, $g, $h, $a, $b, $c, $d, $w!($base + 4));
        round!($d, $e, $f, $g, $h, $a, $b, $c, $w!($base + 5));
        round!($c, $d, $e, $f, $g, $h, $a, $b, $w!($base + 6));
        round!($b, $c, $d, $e, $f, $g, $h, $a, $w!($base + 7));
    };
}

/// Applies the compression function to `state` for each 64-byte block.
pub fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    // Through an opaque reference, so the constants are loaded (one `ldr` with an immediate
    // offset) rather than built in registers (`movw` + `movt`).
    let k: &[u32; 64] = core::hint::black_box(&K);
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for block in blocks {
        let mut w: [u32; 16] = core::array::from_fn(|i| {
            u32::from_be_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ])
        });
        // Rounds 0..16 read the block's words.
        macro_rules! w_load {
            ($i:expr) => {
                k[$i].wrapping_add(w[$i])
            };
        }
        // Rounds 16..64 extend the schedule in the 16-word ring.
        macro_rules! w_next {
            ($i:expr) => {{
                let j = $i % 16;
                w[j] = w[j]
                    .wrapping_add(small_sigma0(w[($i + 1) % 16]))
                    .wrapping_add(w[($i + 9) % 16])
                    .wrapping_add(small_sigma1(w[($i + 14) % 16]));
                k[$i].wrapping_add(w[j])
            }};
        }
        let (sa, sb, sc, sd, se, sf, sg, sh) = (a, b, c, d, e, f, g, h);
        eight!(a, b, c, d, e, f, g, h, 0, w_load);
        eight!(a, b, c, d, e, f, g, h, 8, w_load);
        eight!(a, b, c, d, e, f, g, h, 16, w_next);
        eight!(a, b, c, d, e, f, g, h, 24, w_next);
        eight!(a, b, c, d, e, f, g, h, 32, w_next);
        eight!(a, b, c, d, e, f, g, h, 40, w_next);
        eight!(a, b, c, d, e, f, g, h, 48, w_next);
        eight!(a, b, c, d, e, f, g, h, 56, w_next);
        a = a.wrapping_add(sa);
        b = b.wrapping_add(sb);
        c = c.wrapping_add(sc);
        d = d.wrapping_add(sd);
        e = e.wrapping_add(se);
        f = f.wrapping_add(sf);
        g = g.wrapping_add(sg);
        h = h.wrapping_add(sh);
    }
    *state = [a, b, c, d, e, f, g, h];
}

/// Incremental SHA-256.
#[derive(Clone, Debug)]
pub struct Sha256 {
    state: [u32; 8],
    buf: [u8; 64],
    buffered: usize,
    /// Bytes hashed so far.
    len: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256 {
    /// The empty message's state.
    pub const fn new() -> Self {
        Sha256 {
            state: H0,
            buf: [0; 64],
            buffered: 0,
            len: 0,
        }
    }

    /// Appends `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.buffered > 0 {
            let n = (64 - self.buffered).min(data.len());
            self.buf[self.buffered..self.buffered + n].copy_from_slice(&data[..n]);
            self.buffered += n;
            data = &data[n..];
            if self.buffered < 64 {
                return;
            }
            compress(&mut self.state, core::slice::from_ref(&self.buf));
            self.buffered = 0;
        }
        let (blocks, rest) = data.as_chunks::<64>();
        compress(&mut self.state, blocks);
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    /// The digest.
    pub fn finalize(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let n = self.buffered;
        self.buf[n] = 0x80;
        self.buf[n + 1..].fill(0);
        if n >= 56 {
            compress(&mut self.state, core::slice::from_ref(&self.buf));
            self.buf = [0; 64];
        }
        self.buf[56..].copy_from_slice(&bits.to_be_bytes());
        compress(&mut self.state, core::slice::from_ref(&self.buf));
        let mut out = [0u8; 32];
        for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&s.to_be_bytes());
        }
        out
    }
}

/// SHA-256 of `data`.
pub fn digest(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize()
}
