//! ECDSA P-256 verification in about 1.5 KB of Thumb-1: [`TinyKey`], the CM0+ DBM's verifier.
//!
//! Written for flash size first, then speed; every value is public (a signature check handles
//! no secret), so everything is variable time.
//!
//! * Numbers are eight 32-bit limbs, least significant first ([`W`]).
//! * One Montgomery multiplication ([`mont_mul`], R = 2^256) serves both moduli: the field prime
//!   p (`-p⁻¹ mod 2^32 = 1`) and the group order n. Field elements stay in Montgomery form
//!   (x·R mod p) from the key's decoding to the final comparison, always fully reduced, so
//!   equality is equality of words.
//! * Points are homogeneous projective (X:Y:Z), added by the complete formula for a = −3
//!   (Renes–Costello–Batina 2016, "Complete addition formulas for prime order elliptic curves",
//!   algorithm 4): no special case for doubling, the identity (0:1:0) or P + (−P), so one routine
//!   does both the doubling and the addition of the double-scalar loop.
//! * `u1·G + u2·Q` by Shamir's trick over the three points G, Q, G+Q: one doubling per bit and
//!   an addition when either bit is set. No precomputed tables.
//! * No field inversion: `x(R) mod n == r` is checked as `X == r·Z` or, when `r + n < p`,
//!   `X == (r+n)·Z` (mod p). The one inversion, `s⁻¹ mod n`, is Fermat's `s^(n−2)` with the same
//!   multiplication.
//!
//! It accepts what `ferrota_image::BootKey` (RustCrypto's `p256`) accepts: a key whose X and Y
//! are below p and on the curve, `r, s ∈ [1, n−1]`, the digest taken as a big-endian integer
//! reduced mod n, the point at infinity refused, and no low-s rule. `tests/equivalence.rs`
//! checks both verdicts against each other, and the unit tests below check the arithmetic
//! against RustCrypto's.

use ferrota_image::scheme::{BootVerifier, SLOT, Scheme, SignatureFault};

/// A 256-bit number, eight little-endian 32-bit limbs.
pub(crate) type W = [u32; 8];

/// A modulus for [`mont_mul`]: the value and `-m⁻¹ mod 2^32`.
pub(crate) struct Modulus {
    m: W,
    n0: u32,
    /// R² mod m, to enter Montgomery form.
    r2: W,
}

/// The field prime p = 2^256 − 2^224 + 2^192 + 2^96 − 1.
pub(crate) const P: Modulus = Modulus {
    m: [
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0,
        0,
        0,
        1,
        0xffff_ffff,
    ],
    n0: 1,
    r2: [
        0x0000_0003,
        0x0000_0000,
        0xffff_ffff,
        0xffff_fffb,
        0xffff_fffe,
        0xffff_ffff,
        0xffff_fffd,
        0x0000_0004,
    ],
};

/// The order n of the base point.
pub(crate) const N: Modulus = Modulus {
    m: [
        0xfc63_2551,
        0xf3b9_cac2,
        0xa717_9e84,
        0xbce6_faad,
        0xffff_ffff,
        0xffff_ffff,
        0,
        0xffff_ffff,
    ],
    n0: 0xee00_bc4f,
    r2: [
        0xbe79_eea2,
        0x8324_4c95,
        0x49bd_6fa6,
        0x4699_799c,
        0x2b6b_ec59,
        0x2845_b239,
        0xf3d9_5620,
        0x66e1_2d94,
    ],
};

/// The curve's b (y² = x³ − 3x + b).
const B: W = [
    0x27d2_604b,
    0x3bce_3c3e,
    0xcc53_b0f6,
    0x651d_06b0,
    0x7698_86bc,
    0xb3eb_bd55,
    0xaa3a_93e7,
    0x5ac6_35d8,
];

/// The base point G, affine.
const G: [W; 2] = [
    [
        0xd898_c296,
        0xf4a1_3945,
        0x2deb_33a0,
        0x7703_7d81,
        0x63a4_40f2,
        0xf8bc_e6e5,
        0xe12c_4247,
        0x6b17_d1f2,
    ],
    [
        0x37bf_51f5,
        0xcbb6_4068,
        0x6b31_5ece,
        0x2bce_3357,
        0x7c0f_9e16,
        0x8ee7_eb4a,
        0xfe1a_7f9b,
        0x4fe3_42e2,
    ],
];

/// The big-endian bytes as a number.
pub(crate) fn from_be(b: &[u8]) -> W {
    let mut w = [0u32; 8];
    for (i, l) in w.iter_mut().enumerate() {
        let at = 28 - 4 * i;
        *l = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    }
    w
}

/// `a + b`, and the carry out.
fn add_words(a: &W, b: &W) -> (W, bool) {
    let mut out = [0u32; 8];
    let mut carry = false;
    for i in 0..8 {
        let (s, c1) = a[i].overflowing_add(b[i]);
        let (s, c2) = s.overflowing_add(u32::from(carry));
        out[i] = s;
        carry = c1 | c2;
    }
    (out, carry)
}

/// `a − b`, and the borrow out.
fn sub_words(a: &W, b: &W) -> (W, bool) {
    let mut out = [0u32; 8];
    let mut borrow = false;
    for i in 0..8 {
        let (d, b1) = a[i].overflowing_sub(b[i]);
        let (d, b2) = d.overflowing_sub(u32::from(borrow));
        out[i] = d;
        borrow = b1 | b2;
    }
    (out, borrow)
}

/// `a < b`.
pub(crate) fn lt(a: &W, b: &W) -> bool {
    sub_words(a, b).1
}

/// `a · b` as (low, high) words from four 16×16-bit products: ARMv6-M's `muls` keeps only the
/// low 32 bits of a product, and a `u64` product would call the 64×64-bit `__aeabi_lmul`
/// (twice as slow here).
#[inline(always)]
fn mul_wide(a: u32, b: u32) -> (u32, u32) {
    let (a0, a1) = (a & 0xffff, a >> 16);
    let (b0, b1) = (b & 0xffff, b >> 16);
    let (mid, c) = (a0 * b1).overflowing_add(a1 * b0);
    let (lo, c2) = (a0 * b0).overflowing_add(mid << 16);
    let hi = a1 * b1 + (u32::from(c) << 16) + (mid >> 16) + u32::from(c2);
    (lo, hi)
}

/// `t += x · y`, the carry running to the end of `t` (10 limbs in [`mont_mul`]).
fn add_mul(t: &mut [u32], x: &W, y: u32) {
    let mut carry = 0u32;
    for (i, ti) in t.iter_mut().enumerate() {
        let (lo, hi) = match x.get(i) {
            Some(&xi) => mul_wide(xi, y),
            None => (0, 0),
        };
        let (s, c1) = lo.overflowing_add(*ti);
        let (s, c2) = s.overflowing_add(carry);
        *ti = s;
        // t + x·y + carry < 2^64 per limb: the high word cannot overflow.
        carry = hi + u32::from(c1) + u32::from(c2);
    }
}

/// `a · b · R⁻¹ mod m` (R = 2^256), fully reduced, for `a < 2^256` and `b < m` (then
/// `a·b < m·R` and the result before the last subtraction is below 2m). Coarsely integrated
/// operand scanning: per limb of b, add `a·b[i]`, then the multiple of m that clears the low
/// limb; the ten-limb window slides up one limb instead of shifting the words down.
#[inline(never)]
pub(crate) fn mont_mul(a: &W, b: &W, md: &Modulus) -> W {
    let mut t = [0u32; 18];
    for (i, &bi) in b.iter().enumerate() {
        let w = &mut t[i..i + 10];
        add_mul(w, a, bi);
        let q = w[0].wrapping_mul(md.n0);
        add_mul(w, &md.m, q);
    }
    let mut r = [0u32; 8];
    r.copy_from_slice(&t[8..16]);
    if t[16] != 0 || !lt(&r, &md.m) {
        r = sub_words(&r, &md.m).0;
    }
    r
}

/// `x` in Montgomery form: `x·R mod m` (any `x < 2^256`).
pub(crate) fn to_mont(x: &W, md: &Modulus) -> W {
    mont_mul(x, &md.r2, md)
}

/// Field multiplication (Montgomery form).
fn fmul(a: &W, b: &W) -> W {
    mont_mul(a, b, &P)
}

/// Field addition of reduced values.
#[inline(never)]
fn fadd(a: &W, b: &W) -> W {
    let (s, carry) = add_words(a, b);
    if carry || !lt(&s, &P.m) {
        sub_words(&s, &P.m).0
    } else {
        s
    }
}

/// Field subtraction of reduced values.
#[inline(never)]
fn fsub(a: &W, b: &W) -> W {
    let (d, borrow) = sub_words(a, b);
    if borrow { add_words(&d, &P.m).0 } else { d }
}

/// `b·R mod p`.
fn b_mont() -> W {
    to_mont(&B, &P)
}

/// A point (X:Y:Z), coordinates in Montgomery form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Point {
    x: W,
    y: W,
    z: W,
}

impl Point {
    /// The affine point (x, y) (plain, reduced) with Z = 1.
    fn affine(x: &W, y: &W) -> Point {
        Point {
            x: to_mont(x, &P),
            y: to_mont(y, &P),
            // 1·R mod p = 2^256 − p.
            z: sub_words(&[0; 8], &P.m).0,
        }
    }
}

// The registers of `point_add`'s program: its inputs, b, five temporaries, the result.
const X1: u16 = 0;
const Y1: u16 = 1;
const Z1: u16 = 2;
const X2: u16 = 3;
const Y2: u16 = 4;
const Z2: u16 = 5;
const BB: u16 = 6;
const T0: u16 = 7;
const T1: u16 = 8;
const T2: u16 = 9;
const T3: u16 = 10;
const T4: u16 = 11;
const X3: u16 = 12;
const Y3: u16 = 13;
const Z3: u16 = 14;

const MUL: u16 = 0;
const ADD: u16 = 1;
const SUB: u16 = 2;

/// One step `d ← a op b` of `point_add`'s program, four bits per field.
const fn op(kind: u16, d: u16, a: u16, b: u16) -> u16 {
    kind << 12 | d << 8 | a << 4 | b
}

/// The complete addition for a = −3 (Renes–Costello–Batina 2016, algorithm 4), step for step:
/// 12 multiplications, 2 by b, 29 additions and subtractions. As data (86 bytes) run by a
/// four-line interpreter instead of 43 calls (~670 bytes of Thumb-1).
const ADDITION: [u16; 43] = [
    op(MUL, T0, X1, X2),
    op(MUL, T1, Y1, Y2),
    op(MUL, T2, Z1, Z2),
    op(ADD, T3, X1, Y1),
    op(ADD, T4, X2, Y2),
    op(MUL, T3, T3, T4),
    op(ADD, T4, T0, T1),
    op(SUB, T3, T3, T4), // x1·y2 + x2·y1
    op(ADD, T4, Y1, Z1),
    op(ADD, X3, Y2, Z2),
    op(MUL, T4, T4, X3),
    op(ADD, X3, T1, T2),
    op(SUB, T4, T4, X3), // y1·z2 + y2·z1
    op(ADD, X3, X1, Z1),
    op(ADD, Y3, X2, Z2),
    op(MUL, X3, X3, Y3),
    op(ADD, Y3, T0, T2),
    op(SUB, Y3, X3, Y3), // x1·z2 + x2·z1
    op(MUL, Z3, BB, T2),
    op(SUB, X3, Y3, Z3),
    op(ADD, Z3, X3, X3),
    op(ADD, X3, X3, Z3),
    op(SUB, Z3, T1, X3),
    op(ADD, X3, T1, X3),
    op(MUL, Y3, BB, Y3),
    op(ADD, T1, T2, T2),
    op(ADD, T2, T1, T2), // 3·z1·z2
    op(SUB, Y3, Y3, T2),
    op(SUB, Y3, Y3, T0),
    op(ADD, T1, Y3, Y3),
    op(ADD, Y3, T1, Y3),
    op(ADD, T1, T0, T0),
    op(ADD, T0, T1, T0),
    op(SUB, T0, T0, T2),
    op(MUL, T1, T4, Y3),
    op(MUL, T2, T0, Y3),
    op(MUL, Y3, X3, Z3),
    op(ADD, Y3, Y3, T2),
    op(MUL, X3, T3, X3),
    op(SUB, X3, X3, T1),
    op(MUL, Z3, T4, Z3),
    op(MUL, T1, T3, T0),
    op(ADD, Z3, Z3, T1),
];

/// `p + q` by the complete formula for a = −3 ([`ADDITION`]), `b` in Montgomery form. Right
/// for `p == q`, the identity and `p == −q`.
#[inline(never)]
fn point_add(p: &Point, q: &Point, b: &W) -> Point {
    let mut r = [[0u32; 8]; 16];
    r[..7].copy_from_slice(&[p.x, p.y, p.z, q.x, q.y, q.z, *b]);
    for &step in &ADDITION {
        let reg = |shift: u16| usize::from(step >> shift & 15);
        let (x, y) = (&r[reg(4)], &r[reg(0)]);
        r[reg(8)] = match step >> 12 {
            MUL => fmul(x, y),
            ADD => fadd(x, y),
            _ => fsub(x, y),
        };
    }
    Point {
        x: r[usize::from(X3)],
        y: r[usize::from(Y3)],
        z: r[usize::from(Z3)],
    }
}

/// Bit `i` of `w`.
fn bit(w: &W, i: usize) -> bool {
    (w[i / 32] >> (i % 32)) & 1 != 0
}

/// `a·G + b·Q` by Shamir's trick.
#[inline(never)]
pub(crate) fn shamir(a: &W, b: &W, q: &Point) -> Point {
    let bm = b_mont();
    let g = Point::affine(&G[0], &G[1]);
    let gq = point_add(&g, q, &bm);
    let table = [g, *q, gq];
    let mut acc = Point {
        x: [0; 8],
        y: g.z, // 1 in Montgomery form
        z: [0; 8],
    };
    for i in (0..256).rev() {
        acc = point_add(&acc, &acc, &bm);
        let k = usize::from(bit(a, i)) | usize::from(bit(b, i)) << 1;
        if k != 0 {
            acc = point_add(&acc, &table[k - 1], &bm);
        }
    }
    acc
}

/// `x⁻¹ mod n` in Montgomery form, for `x_m = x·R mod n` non-zero: `x_m^(n−2)` (Fermat).
fn invert_mod_n(x_m: &W) -> W {
    let mut e = N.m;
    e[0] -= 2; // n − 2: no borrow (the low limb of n is 0xfc632551)
    let mut acc = *x_m; // bit 255 of n − 2 is set
    for i in (0..255).rev() {
        acc = mont_mul(&acc, &acc, &N);
        if bit(&e, i) {
            acc = mont_mul(&acc, x_m, &N);
        }
    }
    acc
}

/// A P-256 public key, checked on the curve, for [`verify`](TinyKey::verify).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TinyKey {
    q: Point,
}

impl TinyKey {
    /// The key from its big-endian affine coordinates `X ‖ Y`: `None` unless both are below p
    /// and `y² = x³ − 3x + b` (as RustCrypto's `AffinePoint::from_coordinates`; the point at
    /// infinity has no affine coordinates).
    pub fn from_coordinates(xy: &[u8; 64]) -> Option<TinyKey> {
        let (x, y) = (from_be(&xy[..32]), from_be(&xy[32..]));
        if !lt(&x, &P.m) || !lt(&y, &P.m) {
            return None;
        }
        let q = Point::affine(&x, &y);
        let y2 = fmul(&q.y, &q.y);
        let mut rhs = fmul(&fmul(&q.x, &q.x), &q.x);
        for _ in 0..3 {
            rhs = fsub(&rhs, &q.x);
        }
        rhs = fadd(&rhs, &b_mont());
        (y2 == rhs).then_some(TinyKey { q })
    }

    /// ECDSA verification (SEC 1 §4.1.4) of the signature `r ‖ s` (big-endian) over the 32-byte
    /// digest `z`: false unless `r, s ∈ [1, n−1]` and `x(u1·G + u2·Q) mod n == r`.
    #[inline(never)]
    pub fn verify(&self, z: &[u8; 32], rs: &[u8; 64]) -> bool {
        let Some((r, s)) = scalars(rs) else {
            return false;
        };
        let w = invert_mod_n(&to_mont(&s, &N));
        // z may be ≥ n: mont_mul reduces any a < 2^256 (here z·w·R·R⁻¹ = z·w mod n).
        let u1 = mont_mul(&from_be(z), &w, &N);
        let u2 = mont_mul(&r, &w, &N);
        let p = shamir(&u1, &u2, &self.q);
        if p.z == [0; 8] {
            return false; // the point at infinity
        }
        // x = X/Z ∈ [0, p) and x mod n == r: x is r, or r + n when that is below p.
        let (rn, carry) = add_words(&r, &N.m);
        [r, rn]
            .iter()
            .take(if carry || !lt(&rn, &P.m) { 1 } else { 2 })
            .any(|c| fmul(&to_mont(c, &P), &p.z) == p.x)
    }
}

/// `r` and `s` of `r ‖ s` if both are in `[1, n−1]`.
fn scalars(rs: &[u8; 64]) -> Option<(W, W)> {
    let (r, s) = (from_be(&rs[..32]), from_be(&rs[32..]));
    let ok = |v: &W| *v != [0; 8] && lt(v, &N.m);
    (ok(&r) && ok(&s)).then_some((r, s))
}

impl BootVerifier for TinyKey {
    fn scheme(&self) -> Scheme {
        Scheme::EcdsaP256
    }

    /// The slot rules of `BootKey`: all-zero is unsigned, bytes after `r ‖ s` must be zero,
    /// `r` and `s` in `[1, n−1]`, then the signature.
    fn verify_digest(&self, digest: &[u8; 32], slot: &[u8; SLOT]) -> Result<(), SignatureFault> {
        if slot.iter().all(|&b| b == 0) {
            return Err(SignatureFault::Unsigned);
        }
        let rs: &[u8; 64] = slot[..64]
            .try_into()
            .map_err(|_| SignatureFault::Malformed)?;
        if slot[64..].iter().any(|&b| b != 0) || scalars(rs).is_none() {
            return Err(SignatureFault::Malformed);
        }
        if self.verify(digest, rs) {
            Ok(())
        } else {
            Err(SignatureFault::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::point::AffineCoordinates;
    use p256::elliptic_curve::sec1::ToSec1Point;
    use p256::{AffinePoint, ProjectivePoint, Scalar};

    fn be(w: &W) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, l) in w.iter().enumerate() {
            b[28 - 4 * i..32 - 4 * i].copy_from_slice(&l.to_be_bytes());
        }
        b
    }

    fn scalar(k: u64) -> Scalar {
        Scalar::from(k)
    }

    /// The point's plain affine coordinates, or None at infinity.
    fn to_affine(p: &Point) -> Option<([u8; 32], [u8; 32])> {
        if p.z == [0; 8] {
            return None;
        }
        // z⁻¹ by Fermat in the field: z^(p−2).
        let mut e = P.m;
        e[0] -= 2;
        let mut inv = p.z;
        for i in (0..255).rev() {
            inv = fmul(&inv, &inv);
            if bit(&e, i) {
                inv = fmul(&inv, &p.z);
            }
        }
        let one = {
            let mut o = [0u32; 8];
            o[0] = 1;
            o
        };
        let x = mont_mul(&fmul(&p.x, &inv), &one, &P);
        let y = mont_mul(&fmul(&p.y, &inv), &one, &P);
        Some((be(&x), be(&y)))
    }

    fn rc(p: &ProjectivePoint) -> Option<([u8; 32], [u8; 32])> {
        let a = p.to_affine();
        if bool::from(a.is_identity()) {
            return None;
        }
        let enc = a.to_sec1_point(false);
        let b = enc.as_bytes();
        Some((b[1..33].try_into().unwrap(), b[33..65].try_into().unwrap()))
    }

    fn tiny(p: &AffinePoint) -> Point {
        let mut xy = [0u8; 64];
        xy[..32].copy_from_slice(&p.x());
        let enc = p.to_sec1_point(false);
        xy[32..].copy_from_slice(&enc.as_bytes()[33..]);
        TinyKey::from_coordinates(&xy).expect("on the curve").q
    }

    #[test]
    fn constants() {
        let mut one = [0u32; 8];
        one[0] = 1;
        for md in [&P, &N] {
            // R² mod m: to_mont(1) is R mod m = 2^256 − m (both moduli exceed 2^255).
            assert_eq!(to_mont(&one, md), sub_words(&[0; 8], &md.m).0);
            // -m⁻¹ mod 2^32.
            assert_eq!(md.m[0].wrapping_mul(md.n0), u32::MAX);
            // from Montgomery form and back.
            let x = [7, 0, 0, 0, 0, 0, 0, 0x8000_0000];
            assert_eq!(mont_mul(&to_mont(&x, md), &one, md), x);
        }
        let g = ProjectivePoint::GENERATOR.to_affine();
        assert_eq!(tiny(&g), Point::affine(&G[0], &G[1]));
        assert_eq!(
            be(&N.m),
            <p256::NistP256 as p256::elliptic_curve::Curve>::ORDER
                .to_be_bytes()
                .as_slice()
        );
    }

    #[test]
    fn points_as_rustcrypto() {
        let bm = b_mont();
        let g = ProjectivePoint::GENERATOR;
        let tg = tiny(&g.to_affine());
        let id = Point {
            x: [0; 8],
            y: tg.z,
            z: [0; 8],
        };
        assert_eq!(to_affine(&point_add(&tg, &tg, &bm)), rc(&(g + g)));
        assert_eq!(to_affine(&point_add(&id, &tg, &bm)), rc(&g));
        assert_eq!(to_affine(&point_add(&tg, &id, &bm)), rc(&g));
        assert_eq!(to_affine(&point_add(&id, &id, &bm)), None);
        let minus = tiny(&(-g).to_affine());
        assert_eq!(to_affine(&point_add(&tg, &minus, &bm)), None);
        let mut k = 0x1234_5678_9abc_def1u64;
        for _ in 0..8 {
            k = k
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let (a, b) = (k >> 1, k.rotate_left(17) >> 3);
            let q = g * scalar(b.wrapping_mul(3) | 1);
            let tq = tiny(&q.to_affine());
            let ta = point_add(&tiny(&(g * scalar(a)).to_affine()), &tq, &bm);
            assert_eq!(to_affine(&ta), rc(&(g * scalar(a) + q)));
            let mut wa = [0u32; 8];
            wa[0] = a as u32;
            wa[1] = (a >> 32) as u32;
            wa[7] = 0x8000_0001;
            let mut wb = [0u32; 8];
            wb[0] = b as u32;
            wb[3] = (b >> 32) as u32;
            let sa = <Scalar as p256::elliptic_curve::ops::Reduce<p256::FieldBytes>>::reduce(
                &p256::FieldBytes::from(be(&wa)),
            );
            let sb = <Scalar as p256::elliptic_curve::ops::Reduce<p256::FieldBytes>>::reduce(
                &p256::FieldBytes::from(be(&wb)),
            );
            assert_eq!(to_affine(&shamir(&wa, &wb, &tq)), rc(&(g * sa + q * sb)));
        }
    }

    #[test]
    fn inverse_mod_n() {
        let mut one = [0u32; 8];
        one[0] = 1;
        for x in [one, [3, 1, 4, 1, 5, 9, 2, 6], sub_words(&N.m, &one).0] {
            let w = invert_mod_n(&to_mont(&x, &N));
            assert_eq!(mont_mul(&x, &w, &N), one);
        }
    }
}
