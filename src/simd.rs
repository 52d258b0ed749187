//! Vector kernels dispatched at run time: the exponential and the
//! per-block loops of the fused softmax, and the guard that every call into
//! faer goes through.
//!
//! This is a floor-0 module (`docs/ARCHITECTURE.md`): it depends on `pulp`
//! only, and [`Kernel`] is a supertrait of the crate's sealed
//! [`Scalar`](crate::Scalar).
//!
//! # The exponential
//!
//! [`Kernel::exp_nonpos`] evaluates eˣ for x ≤ 0 (the softmax only
//! exponentiates logits minus their row maximum) without branches, so that
//! LLVM vectorises the loops that call it:
//!
//! 1. x is clamped to L = ln(MIN_POSITIVE) (≈ −87.34 for `f32`, ≈ −708.4
//!    for `f64`) so that no intermediate is infinite or NaN;
//! 2. k = round(x·log₂e) by the "magic number" trick: adding 1.5·2^(p−1)
//!    (p = 24 or 53 significand bits) rounds to an integer, whose low bits
//!    hold k;
//! 3. Cody–Waite reduction r = (x − k·ln2_hi) − k·ln2_lo, |r| ≲ ln2/2,
//!    where ln2_hi has enough trailing zero bits that k·ln2_hi is exact;
//! 4. e^r by a polynomial: Cephes' `expf` minimax polynomial
//!    1 + r + r²·P₅(r) for `f32`, the Taylor polynomial of degree 13 for
//!    `f64` (truncation error < 2⁻⁵⁸ on |r| ≤ ln2/2);
//! 5. the product with 2ᵏ, built from the bits of the biased exponent
//!    (k ≥ 1 − bias after the clamp, so 2ᵏ is a normal number).
//!
//! Arguments x < L, including −∞ (masked entries), give exactly 0: their
//! true exponential is below the smallest normal number, so the absolute
//! error is < MIN_POSITIVE. eˣ for x = 0 is exactly 1. On [L, 0] the
//! relative error against the exact value is ≤ 1e-6 for `f32` (in practice
//! within one ulp) and ≤ 4ε for `f64` (in practice within ε, two half-ulps);
//! the unit tests below sweep the range against `f64::exp`.
//! Only additions, multiplications and integer bit operations are used (no
//! fused multiply-add), so the result is the same on every target.
//!
//! # Runtime dispatch
//!
//! The loops run through [`pulp::Arch::dispatch`], which selects AVX-512 or
//! AVX2+FMA when the CPU has them (and SSE2 otherwise) without `unsafe` in
//! this crate;
//! the plain loops below are inlined into the dispatched function and
//! auto-vectorised for its target.

/// Runs `f`, a call into faer, and then clears the upper halves of the
/// vector registers (`vzeroupper` on x86-64 with AVX; nothing elsewhere).
///
/// faer 0.24's AVX-512/AVX2 kernels return with that state dirty, and on
/// Intel CPUs the SSE code that follows (libm's `ln`, `exp`, `cos`, and all
/// code compiled for the x86-64 baseline) then runs many times slower until
/// the next `vzeroupper` (measured by `cargo run --release --example perf`,
/// `docs/PERFORMANCE.md`). Every call into faer in this crate goes through
/// this function, so the fix is in one place. The clearing itself needs no
/// `unsafe`: it is a vector operation dispatched through `pulp` to the
/// widest instruction set, which the compiler ends with `vzeroupper`.
#[cfg(feature = "faer")]
#[inline]
pub(crate) fn faer_call<R>(f: impl FnOnce() -> R) -> R {
    let out = f();
    clear_upper_state();
    out
}

#[cfg(feature = "faer")]
#[inline]
fn clear_upper_state() {
    struct Clear;
    impl pulp::WithSimd for Clear {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, simd: S) {
            std::hint::black_box(simd.splat_f64s(0.0));
        }
    }
    pulp::Arch::new().dispatch(Clear);
}

/// Per-type loops of the fused softmax on a block of b rows stored column by
/// column (entry (r, j) of the block at `buf[j·b + r]`).
pub trait Kernel: Copy + Sized {
    /// eˣ for x ≤ 0 (module docs: exactly 0 below ln(MIN_POSITIVE) and for
    /// −∞, exactly 1 at 0). Positive arguments are not supported.
    fn exp_nonpos(x: Self) -> Self;
    /// `true` if every entry is finite.
    fn all_finite(buf: &[Self]) -> bool;
    /// `max[r]` = maximum of row r of the block (−∞ for an empty block).
    fn row_max(buf: &[Self], max: &mut [Self]);
    /// Replaces every entry by exp(entry − `max[r]`) and sets `sum[r]` to the
    /// row's sum (recursive summation in column order).
    fn exp_sum(buf: &mut [Self], max: &[Self], sum: &mut [Self]);
    /// Writes entry (r, j) divided by `sum[r]` to `out[j·ld + r]`.
    fn normalise_into(buf: &[Self], sum: &[Self], out: &mut [Self], ld: usize);
    /// Multiplies every entry by `factor`.
    fn scale_block(buf: &mut [Self], factor: Self);
}

macro_rules! kernel {
    ($t:ident, $bits:ident, $int:ident, $bias:expr, $shift:expr, $low:expr, $ln2_hi:expr, $ln2_lo:expr, $poly:item) => {
        impl Kernel for $t {
            #[inline(always)]
            fn exp_nonpos(x: $t) -> $t {
                // 1.5·2^(p−1): adding it rounds to an integer kept in the low bits.
                const MAGIC: $t = 1.5 * (1u64 << ($t::MANTISSA_DIGITS - 1)) as $t;
                const LOW: $t = $low;
                const LN2_HI: $t = $ln2_hi;
                const LN2_LO: $t = $ln2_lo;
                $poly
                let xc = if x < LOW { LOW } else { x };
                let y = xc * std::$t::consts::LOG2_E + MAGIC;
                let kf = y - MAGIC;
                let k = y.to_bits().wrapping_sub(MAGIC.to_bits()) as $int;
                let r = (xc - kf * LN2_HI) - kf * LN2_LO;
                let two_k = $t::from_bits((k.wrapping_add($bias) as $bits) << $shift);
                let v = poly(r) * two_k;
                if x < LOW {
                    0.0
                } else {
                    v
                }
            }

            fn all_finite(buf: &[$t]) -> bool {
                struct Op<'a>(&'a [$t]);
                impl pulp::WithSimd for Op<'_> {
                    type Output = bool;
                    #[inline(always)]
                    fn with_simd<S: pulp::Simd>(self, _simd: S) -> bool {
                        const EXP: $bits = $t::INFINITY.to_bits();
                        let mut bad: $bits = 0;
                        for &x in self.0 {
                            bad |= $bits::from(x.to_bits() & EXP == EXP);
                        }
                        bad == 0
                    }
                }
                pulp::Arch::new().dispatch(Op(buf))
            }

            fn row_max(buf: &[$t], max: &mut [$t]) {
                struct Op<'a>(&'a [$t], &'a mut [$t]);
                impl pulp::WithSimd for Op<'_> {
                    type Output = ();
                    #[inline(always)]
                    fn with_simd<S: pulp::Simd>(self, _simd: S) {
                        let Op(buf, max) = self;
                        max.fill($t::NEG_INFINITY);
                        for col in buf.chunks_exact(max.len()) {
                            for (m, &x) in max.iter_mut().zip(col) {
                                *m = if x > *m { x } else { *m };
                            }
                        }
                    }
                }
                pulp::Arch::new().dispatch(Op(buf, max))
            }

            fn exp_sum(buf: &mut [$t], max: &[$t], sum: &mut [$t]) {
                struct Op<'a>(&'a mut [$t], &'a [$t], &'a mut [$t]);
                impl pulp::WithSimd for Op<'_> {
                    type Output = ();
                    #[inline(always)]
                    fn with_simd<S: pulp::Simd>(self, _simd: S) {
                        let Op(buf, max, sum) = self;
                        sum.fill(0.0);
                        for col in buf.chunks_exact_mut(max.len()) {
                            for ((z, &m), s) in col.iter_mut().zip(max).zip(sum.iter_mut()) {
                                let e = <$t as Kernel>::exp_nonpos(*z - m);
                                *z = e;
                                *s += e;
                            }
                        }
                    }
                }
                pulp::Arch::new().dispatch(Op(buf, max, sum))
            }

            fn normalise_into(buf: &[$t], sum: &[$t], out: &mut [$t], ld: usize) {
                struct Op<'a>(&'a [$t], &'a [$t], &'a mut [$t], usize);
                impl pulp::WithSimd for Op<'_> {
                    type Output = ();
                    #[inline(always)]
                    fn with_simd<S: pulp::Simd>(self, _simd: S) {
                        let Op(buf, sum, out, ld) = self;
                        let b = sum.len();
                        for (j, col) in buf.chunks_exact(b).enumerate() {
                            let dst = &mut out[j * ld..j * ld + b];
                            for ((d, &e), &s) in dst.iter_mut().zip(col).zip(sum) {
                                *d = e / s;
                            }
                        }
                    }
                }
                pulp::Arch::new().dispatch(Op(buf, sum, out, ld))
            }

            fn scale_block(buf: &mut [$t], factor: $t) {
                for x in buf {
                    *x *= factor;
                }
            }
        }
    };
}

kernel!(
    f32,
    u32,
    i32,
    127,
    23,
    // The largest f32 ≤ ln(f32::MIN_POSITIVE) = −87.336544750553…
    -87.336_55,
    // Cephes' split of ln 2: the literal rounds to 355/512 = 0.693359375
    // exactly (9 bits).
    0.693_359_4,
    -2.121_944_4e-4,
    #[inline(always)]
    fn poly(r: f32) -> f32 {
        // Cephes expf: e^r ≈ 1 + r + r²·P₅(r) on |r| ≤ ln2/2.
        let p = 1.987_569_1e-4_f32;
        let p = p * r + 1.398_199_9e-3;
        let p = p * r + 8.333_452e-3;
        let p = p * r + 4.166_579_6e-2;
        let p = p * r + 1.666_666_5e-1;
        let p = p * r + 0.5;
        (p * (r * r) + r) + 1.0
    }
);

kernel!(
    f64,
    u64,
    i64,
    1023,
    52,
    // The largest f64 ≤ ln(f64::MIN_POSITIVE) = −708.3964185322641…
    -708.396_418_532_264_2,
    // Cephes' split of ln 2: the high part has 23 significant bits.
    6.931_457_519_531_25e-1,
    1.428_606_820_309_417_2e-6,
    #[inline(always)]
    fn poly(r: f64) -> f64 {
        // Taylor polynomial of degree 13; the first terms are added last so
        // that their rounding dominates.
        const C: [f64; 12] = [
            1.0 / 6_227_020_800.0,
            1.0 / 479_001_600.0,
            1.0 / 39_916_800.0,
            1.0 / 3_628_800.0,
            1.0 / 362_880.0,
            1.0 / 40_320.0,
            1.0 / 5_040.0,
            1.0 / 720.0,
            1.0 / 120.0,
            1.0 / 24.0,
            1.0 / 6.0,
            0.5,
        ];
        let mut p = C[0];
        for c in &C[1..] {
            p = p * r + c;
        }
        (p * (r * r) + r) + 1.0
    }
);

#[cfg(test)]
mod tests {
    use super::Kernel;

    /// Maximum relative error against `f64::exp` over `xs`.
    fn max_rel<T: Kernel + Into<f64>>(xs: impl Iterator<Item = T>) -> (f64, f64) {
        let mut worst = (0.0, 0.0);
        for x in xs {
            let exact = x.into().exp();
            let got: f64 = T::exp_nonpos(x).into();
            let rel = (got - exact).abs() / exact;
            if rel > worst.0 {
                worst = (rel, x.into());
            }
        }
        worst
    }

    #[test]
    fn f32_exp_is_within_1e6_relative_on_the_normal_range() {
        let low = f64::from(f32::MIN_POSITIVE).ln();
        // A dense uniform sweep plus every f32 in [−1, 0] with a stride.
        let n = 4_000_000;
        let sweep = (0..=n).map(|i| (low * i as f64 / n as f64) as f32);
        let near_zero = (0..1 << 20).map(|i| -f32::from_bits(0x3f80_0000 - i * 8));
        let (rel, at) = max_rel(sweep.chain(near_zero).filter(|&x| f64::from(x) >= low));
        eprintln!("f32 exp: max relative error {rel:.3e} at x = {at}");
        assert!(rel <= 1e-6, "max relative error {rel:e} at {at}");
    }

    #[test]
    fn f64_exp_is_within_4_eps_relative_on_the_normal_range() {
        let low = f64::MIN_POSITIVE.ln();
        let n = 4_000_000;
        let sweep = (0..=n).map(|i| low * i as f64 / n as f64);
        let near_zero = (0..1 << 20).map(|i| -(i as f64) * 2f64.powi(-20));
        let (rel, at) = max_rel(sweep.chain(near_zero).filter(|&x| x >= low));
        eprintln!("f64 exp: max relative error {rel:.3e} at x = {at}");
        assert!(
            rel <= 4.0 * f64::EPSILON,
            "max relative error {rel:e} at {at}"
        );
    }

    #[test]
    fn special_values() {
        assert_eq!(f32::exp_nonpos(0.0), 1.0);
        assert_eq!(f64::exp_nonpos(0.0), 1.0);
        assert_eq!(f32::exp_nonpos(-0.0), 1.0);
        assert_eq!(f64::exp_nonpos(-0.0), 1.0);
        assert_eq!(f32::exp_nonpos(f32::NEG_INFINITY).to_bits(), 0);
        assert_eq!(f64::exp_nonpos(f64::NEG_INFINITY).to_bits(), 0);
        assert_eq!(f32::exp_nonpos(-f32::MAX).to_bits(), 0);
        assert_eq!(f64::exp_nonpos(-f64::MAX).to_bits(), 0);
        // Below ln(MIN_POSITIVE): flushed to zero, absolute error < MIN_POSITIVE.
        assert_eq!(f32::exp_nonpos(-87.5), 0.0);
        assert_eq!(f64::exp_nonpos(-709.0), 0.0);
        // The clamp bound is at or below ln(MIN_POSITIVE); the value there
        // (just below MIN_POSITIVE, as a subnormal) is still accurate.
        let l32 = f64::from(f32::MIN_POSITIVE).ln();
        let low32 = -87.336_55_f32;
        assert!(f64::from(low32) <= l32);
        let exact = f64::from(low32).exp();
        assert!((f64::from(f32::exp_nonpos(low32)) / exact - 1.0).abs() < 1e-6);
        let low64 = -708.396_418_532_264_2_f64;
        assert!(low64 <= f64::MIN_POSITIVE.ln());
        assert!((f64::exp_nonpos(low64) / low64.exp() - 1.0).abs() < 1e-13);
        // exp(1e-30) rounds to 1 and never exceeds 1 for x ≤ 0.
        assert_eq!(f32::exp_nonpos(-1e-30), 1.0);
        assert_eq!(f64::exp_nonpos(-1e-300), 1.0);
    }

    #[test]
    fn block_loops_match_the_scalar_exponential() {
        // 3 rows × 5 columns, including −∞.
        let mut buf: Vec<f32> = (0..15).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
        buf[4] = f32::NEG_INFINITY;
        let src = buf.clone();
        let mut max = [0.0; 3];
        f32::row_max(&buf, &mut max);
        for r in 0..3 {
            let m = (0..5)
                .map(|j| src[j * 3 + r])
                .fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max[r], m);
        }
        let mut sum = [0.0; 3];
        f32::exp_sum(&mut buf, &max, &mut sum);
        assert_eq!(buf[4], 0.0);
        let mut out = [0.0; 4 * 5];
        f32::normalise_into(&buf, &sum, &mut out[1..], 4);
        for r in 0..3 {
            let s: f32 = (0..5).map(|j| out[j * 4 + 1 + r]).sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
        assert!((0..5).all(|j| out[j * 4] == 0.0));
    }
}
