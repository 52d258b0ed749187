//! Singular values of an upper bidiagonal matrix by the dqds algorithm
//! (differential quotient-difference with shifts).
//!
//! This is an independent implementation of the algorithm of Fernando and
//! Parlett \[FP94] in the form engineered by Parlett and Marques \[PM00] (the
//! scheme behind LAPACK's `dlasq1`–`dlasq6`): the squares of the bidiagonal's
//! entries form a qd array (q, e) whose tridiagonal L·U is similar to BᵀB;
//! each dqds transform with shift τ maps it to the qd array of BᵀB − τI
//! without forming BᵀB, using only additions of positive numbers,
//! multiplications and divisions, so no cancellation can occur. The shifts
//! are accumulated in σ, the bottom of the array converges to zero and is
//! deflated (σ + q is then an eigenvalue of BᵀB), and the array splits
//! where an e becomes negligible.
//!
//! Only `std` is used; the routine allocates one workspace of 4·k values
//! (or reuses the caller's, [`bidiagonal_singular_values_with_work`]).
//!
//! # Accuracy
//!
//! Let B be the k×k upper bidiagonal with diagonal `d` and superdiagonal `e`
//! (finite entries), σ₁ ≥ … ≥ σ_k its exact singular values and σ̂ᵢ the
//! computed ones (both sorted), u = 2⁻⁵³ the unit roundoff of f64 and
//! M = max |entry|.
//!
//! **Claim (proved part).** If the run reports
//! [`DqdsStats::range_limited`]` == false` (no stored qd quantity
//! underflowed while it could matter, see "Range"), then for **every** i
//! with σᵢ ≥ 2⁻⁹⁰⁰·M
//!
//! ```text
//!     |σ̂ᵢ − σᵢ| ≤ ( (4k − 1.5)·T + (k − 0.5) + T/2 + 3 ) · u · σᵢ  +  O(u²)
//! ```
//!
//! where T is the number of dqds/dqd transforms applied to the segment that
//! contained σᵢ (T ≤ [`DqdsStats::transforms`] ≤ [`max_transforms`]`(k)`).
//! The bound is *relative* to each σᵢ, independent of the condition of B
//! and of how small σᵢ is compared with σ₁. Its pieces:
//!
//! * The input is scaled by a power of two (exact) and squared: each q, e
//!   carries a relative error ≤ u, i.e. each entry of B a relative error
//!   ≤ u/2, which moves every σᵢ by a factor within (1 ± u/2)^(2k−1)
//!   (Demmel–Kahan \[DK90, Thm 2]: relative perturbations η_j of the 2k−1
//!   entries of a bidiagonal change every singular value by a factor in
//!   [1/α, α], α = Π_j max(1+η_j, 1/(1+η_j))).
//! * One transform in floating point is the exact transform (same shift) of
//!   the input with each q relatively perturbed by ≤ 3u and each e by ≤ u,
//!   followed by relative perturbations ≤ 2u of each output q and e (the
//!   mixed-stability property of dqds \[FP94]; derived here for the
//!   operation order used: with one factor (1+η), |η| ≤ u, per rounding of
//!   q̂ = d + e (α), t = q₊/q̂ (β), ê = e·t (γ), d·t (δ), d·t − τ (ζ):
//!   q̌_{i+1} = q_{i+1}(1+β)(1+δ)/(1+α), ě_i = e_i/(1+ζ_{i−1}),
//!   q̃_i = q̂_i/((1+ζ_{i−1})(1+α)), ẽ_i = ê_i(1+δ)/(1+γ)).
//!   By \[DK90, Thm 2] applied to the square roots, the eigenvalues λ = σ² of
//!   the current array move by a relative amount ≤ (8k − 3)u per transform.
//!   Since every accepted shift keeps the array positive (semi)definite,
//!   0 ≤ λᵢ − σ_acc ≤ λᵢ, so each transform adds at most (8k − 3)·u·λᵢ to
//!   the error in λᵢ, i.e. (4k − 1.5)·u·σᵢ to σᵢ.
//! * The nonnegative shifts are summed with a compensated sum (error ≤ T·u
//!   relative in the worst case, halved for σ), the final q + σ is a sum of
//!   nonnegative terms, the square root and the unscaling add ≤ 1.5u.
//! * The deflation and splitting tests ignore an e only when it is below
//!   tol²·(σ_acc + q) or tol²·q with tol = 100·ε (ε = 2u), the tests of
//!   \[PM00]; \[PM00] argues that the change in the affected eigenvalues is of
//!   relative order tol² ≈ 5·10⁻²⁸, far below the rounding terms above
//!   (this step is cited, not re-derived here).
//!
//! **Observed.** The bound is a worst case growing like k·T ≈ 3.5k²; the
//! errors measured by the tests against 45-digit references are much
//! smaller: ≤ 92 ulps for k ≤ 1000 (≤ max(3, 0.6·k) ulps, typically a few),
//! the same level as LAPACK's `dlasq1` on the same matrices (88.5 ulps for
//! both on the worst random case, k = 150; 52 for LAPACK and 92 here on the
//! worst k = 1000 case). LAPACK
//! documents `dlasq1` as "computed to high relative accuracy, in the absence
//! of denormalization, underflow and overflow".
//!
//! References:
//! * \[FP94] K. V. Fernando, B. N. Parlett, *Accurate singular values and
//!   differential qd algorithms*, Numer. Math. 67 (1994) 191–229.
//! * \[PM00] B. N. Parlett, O. A. Marques, *An implementation of the dqds
//!   algorithm (positive case)*, Linear Algebra Appl. 309 (2000) 217–259
//!   (LAPACK Working Note 155).
//! * \[DK90] J. Demmel, W. Kahan, *Accurate singular values of bidiagonal
//!   matrices*, SIAM J. Sci. Stat. Comput. 11 (1990) 873–912.
//!
//! # Range
//!
//! The largest entry is scaled to [2⁵⁰⁴, 2⁵⁰⁵) by a power of two (exact),
//! so the squares (≤ 2¹⁰¹⁰) and every intermediate quantity stay far below
//! overflow. Underflow is handled in three ways:
//!
//! * the one-division step t = q_{j+1}/q̂_j underflows when adjacent q's
//!   differ by more than the exponent range (adjacent entries of B by more
//!   than ~10¹⁶²): detected, and the transform is recomputed in a careful
//!   form (LAPACK's `dlasq5` accepts such a transform as it is);
//! * zero-shift transforms carry the pivot chain d as m·2ᵉ, since a pivot
//!   far below the range can grow back into it further down (LAPACK flushes
//!   it to zero: on two of the graded test matrices, with random entry
//!   exponents in ±150, LAPACK's `dlasq1` returns values ≥ 10⁻²⁷⁰·M with no
//!   correct digit, where this code stays within 5 ulps);
//! * a stored q̂ or ê that still underflows while the block's accumulated
//!   shift is below 2⁻⁹⁷⁰ (scaled units) sets
//!   [`DqdsStats::range_limited`]: the proof above then does not apply.
//!   In the tests (graded bidiagonals with entries spanning 10⁻¹⁵⁰…10¹⁵⁰,
//!   k up to 1000) every σᵢ ≥ 2⁻⁹⁰⁰·M still met the bound in such runs;
//!   values below ≈ 2⁻⁹⁰⁰·M ≈ 10⁻²⁷¹·M (whose squares, after scaling,
//!   lie within a factor tol⁻² of the underflow threshold) carry no
//!   guarantee, and some are returned as 0.
//!
//! Entries smaller than 2⁻¹⁰⁴¹·M square to zero after scaling (an absolute
//! change ≤ 2⁻¹⁰⁴¹·M of an entry). A singular value that exceeds
//! `f64::MAX` after unscaling (possible only when entries are within a
//! factor 2√k of `f64::MAX`) is reported as [`DqdsError::Overflow`].

// Comparisons such as `!(x >= 0.0)` are written that way on purpose: they
// are also true for NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use std::fmt;

/// Why [`bidiagonal_singular_values`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DqdsError {
    /// `e.len()` must be `d.len() - 1` (or `d.len()`, last entry ignored).
    Length { d: usize, e: usize },
    /// An entry is NaN or infinite (`diagonal`: in `d`, else in `e`).
    NonFinite { diagonal: bool, index: usize },
    /// The transform budget ran out before every value converged.
    NoConvergence {
        /// transforms performed (= the budget)
        iterations: usize,
        /// the budget, [`max_transforms`]`(k)`
        max_iterations: usize,
        /// how many values had not been deflated
        unconverged: usize,
    },
    /// A singular value is larger than `f64::MAX`.
    Overflow,
}

impl fmt::Display for DqdsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DqdsError::Length { d, e } => write!(
                f,
                "bidiagonal with {d} diagonal entries needs {} superdiagonal entries, got {e}",
                d.saturating_sub(1)
            ),
            DqdsError::NonFinite { diagonal, index } => write!(
                f,
                "{} entry {index} is not finite",
                if *diagonal {
                    "diagonal"
                } else {
                    "superdiagonal"
                }
            ),
            DqdsError::NoConvergence {
                iterations,
                max_iterations,
                unconverged,
            } => write!(
                f,
                "dqds did not converge: {unconverged} values left after {iterations} of {max_iterations} transforms"
            ),
            DqdsError::Overflow => write!(f, "a singular value overflows f64"),
        }
    }
}

impl std::error::Error for DqdsError {}

/// What a successful run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DqdsStats {
    /// dqds/dqd transforms performed (accepted and rejected).
    pub(crate) transforms: usize,
    /// transforms rejected because the shift was too large.
    pub(crate) failed_shifts: usize,
    /// Some stored qd quantity underflowed in a block whose accumulated
    /// shift was below 2⁻⁹⁷⁰ (in the scaled units where σ₁² ≈ 2¹⁰⁰⁸): the
    /// relative-accuracy proof does not cover this run; the values
    /// σᵢ ≥ 2⁻⁹⁰⁰·max|entry| still met the bound in every test (module
    /// doc, "Range").
    pub(crate) range_limited: bool,
}

/// The transform budget for a k×k bidiagonal: 100·k + 10 (LAPACK allows
/// 100 per value and block; typical runs need 2–4 per value).
pub(crate) fn max_transforms(k: usize) -> usize {
    k.saturating_mul(100).saturating_add(10)
}

/// Singular values of the upper bidiagonal with diagonal `d` (length k) and
/// superdiagonal `e` (length k − 1; a slice of length k is accepted and its
/// last entry ignored). On success `d` holds σ₁ ≥ … ≥ σ_k ≥ 0; `e` is only
/// read. On error `d` is unspecified. Allocates a 4·k workspace.
#[cfg(test)]
pub(crate) fn bidiagonal_singular_values(d: &mut [f64], e: &[f64]) -> Result<(), DqdsError> {
    let mut work = Vec::new();
    bidiagonal_singular_values_with_work(d, e, &mut work).map(|_| ())
}

/// [`bidiagonal_singular_values`] with a caller-owned workspace (resized to
/// k entries of 4 values; reuse it across calls to avoid the allocation),
/// returning the transform counts.
pub(crate) fn bidiagonal_singular_values_with_work(
    d: &mut [f64],
    e: &[f64],
    work: &mut Vec<[f64; 4]>,
) -> Result<DqdsStats, DqdsError> {
    with_budget(d, e, work, max_transforms(d.len()))
}

/// [`bidiagonal_singular_values_with_work`] with another transform budget
/// (for testing the non-convergence report).
#[doc(hidden)]
pub(crate) fn with_budget(
    d: &mut [f64],
    e: &[f64],
    work: &mut Vec<[f64; 4]>,
    budget: usize,
) -> Result<DqdsStats, DqdsError> {
    let k = d.len();
    let ne = k.saturating_sub(1);
    if !(e.len() == ne || (k > 0 && e.len() == k)) {
        return Err(DqdsError::Length { d: k, e: e.len() });
    }
    let e = &e[..ne];
    if let Some(index) = d.iter().position(|x| !x.is_finite()) {
        return Err(DqdsError::NonFinite {
            diagonal: true,
            index,
        });
    }
    if let Some(index) = e.iter().position(|x| !x.is_finite()) {
        return Err(DqdsError::NonFinite {
            diagonal: false,
            index,
        });
    }
    let mut stats = DqdsStats::default();
    for x in d.iter_mut() {
        *x = x.abs();
    }
    if k <= 1 {
        return Ok(stats);
    }
    let emax = e.iter().fold(0.0f64, |m, &x| m.max(x.abs()));
    if emax == 0.0 {
        sort_descending(d);
        return Ok(stats);
    }
    let amax = d.iter().fold(emax, |m, &x| m.max(x));
    // 2^p · amax ∈ [2^504, 2^505)
    let p = SCALE_EXPONENT - exponent(amax);
    if k == 2 {
        let f = scale_pow2(d[0], p);
        let g = scale_pow2(e[0].abs(), p);
        let h = scale_pow2(d[1], p);
        let (big, small) = upper_2x2(f, g, h);
        d[0] = scale_pow2(big, -p);
        d[1] = scale_pow2(small, -p);
        return check_finite(d).map(|_| stats);
    }
    work.clear();
    work.resize(k, [0.0; 4]);
    for i in 0..k {
        let x = scale_pow2(d[i], p);
        work[i][0] = x * x;
        if i < ne {
            let y = scale_pow2(e[i].abs(), p);
            work[i][2] = y * y;
        }
    }
    let mut solver = Solver::new(work, d);
    solver.budget = budget;
    solver.run()?;
    stats.transforms = solver.transforms;
    stats.failed_shifts = solver.failures;
    stats.range_limited = solver.lost;
    for x in d.iter_mut() {
        *x = scale_pow2(x.max(0.0).sqrt(), -p);
    }
    sort_descending(d);
    check_finite(d).map(|_| stats)
}

// ---------------------------------------------------------------------------
// Constants and small helpers

const EPS: f64 = f64::EPSILON;
/// Convergence tolerance on singular values (as in \[PM00]): 100·ε.
const TOL: f64 = 100.0 * EPS;
/// Tolerance on the squared (qd) quantities.
const TOL2: f64 = TOL * TOL;
const SAFMIN: f64 = f64::MIN_POSITIVE;
/// Reverse an array when its top q is this much smaller than its bottom q.
const CBIAS: f64 = 1.5;
const SCALE_EXPONENT: i32 = 504;
/// Below this block scale σ + τ (in the scaled units, where the largest
/// eigenvalue is ~2¹⁰⁰⁸), an underflowed product is not negligible.
const LOW_SCALE: f64 = SAFMIN / EPS;
const QUARTER: f64 = 0.25;
const THIRD: f64 = 0.333;
const HALF: f64 = 0.5;
/// Constants of the shift strategy of \[PM00] (the bound on the
/// Rayleigh-quotient residual estimate, and two safety factors).
const CNST1: f64 = 0.563;
const CNST2: f64 = 1.01;
const CNST3: f64 = 1.05;

fn check_finite(d: &[f64]) -> Result<(), DqdsError> {
    if d.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(DqdsError::Overflow)
    }
}

fn sort_descending(d: &mut [f64]) {
    for x in d.iter_mut() {
        *x = x.abs();
    }
    d.sort_unstable_by(|a, b| b.total_cmp(a));
}

/// ⌊log₂ x⌋ for finite x > 0.
fn exponent(x: f64) -> i32 {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // subnormal: normalise first
        exponent(x * 2f64.powi(64)) - 64
    } else {
        biased - 1023
    }
}

/// 2^p for −1022 ≤ p ≤ 1023.
fn pow2(p: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&p));
    f64::from_bits(((p + 1023) as u64) << 52)
}

/// x·2^p, exact unless the result is subnormal or overflows.
fn scale_pow2(mut x: f64, mut p: i32) -> f64 {
    while p > 1000 {
        x *= pow2(1000);
        p -= 1000;
    }
    while p < -1000 {
        x *= pow2(-1000);
        p += 1000;
    }
    x * pow2(p)
}

#[inline(always)]
fn fmin(a: f64, b: f64) -> f64 {
    // a NaN b is ignored (a NaN a is kept): NaN is detected separately.
    if b < a { b } else { a }
}

/// Singular values (larger, smaller) of [[f, g], [0, h]] for f, g, h ≥ 0,
/// each to a few ulps: σ_max = (√((F+H)² + G²) + √((F−H)² + G²))/2 on the
/// scale of the largest entry, σ_min = f·h/σ_max.
fn upper_2x2(f: f64, g: f64, h: f64) -> (f64, f64) {
    let hi = f.max(h);
    let lo = f.min(h);
    let m = hi.max(g);
    if m == 0.0 {
        return (0.0, 0.0);
    }
    let (a, b, c) = (hi / m, lo / m, g / m);
    let s = ((a + b) * (a + b) + c * c).sqrt();
    let t = ((a - b) * (a - b) + c * c).sqrt();
    let big = m * (HALF * (s + t));
    let small = if lo == 0.0 { 0.0 } else { lo * (hi / big) };
    (big, small)
}

// ---------------------------------------------------------------------------
// The qd array
//
// `z[i]` holds [q_i, q_i', e_i, e_i']: two copies (ping-pong) of the qd
// array, so that a transform reads one copy and writes the other and a
// rejected transform can be retried from intact input. With `pp` the copy
// that holds the current array, q_i = z[i][pp], e_i = z[i][2 + pp]; the
// other copy holds the array before the last transform. A block [i0, n0] of
// the array is unreduced when its e's are positive; e = 0 or a negative e
// (−σ, the shift accumulated when the block split off) ends the block
// above it. Blocks waiting to be processed keep their data in copy 0.

struct Solver<'a> {
    z: &'a mut [[f64; 4]],
    /// λ = σ² of each deflated position (the caller's `d`).
    out: &'a mut [f64],
    k: usize,
    sigma: f64,
    desig: f64,
    dmin: f64,
    dmin1: f64,
    dmin2: f64,
    dn: f64,
    dn1: f64,
    dn2: f64,
    tau: f64,
    ttype: i32,
    g: f64,
    qmax: f64,
    emin_cur: f64,
    emin_prev: f64,
    transforms: usize,
    failures: usize,
    budget: usize,
    /// some quantity underflowed where it mattered
    lost: bool,
}

/// Outcome of one transform.
struct Sweep {
    dmin: f64,
    dmin1: f64,
    dmin2: f64,
    dn: f64,
    dn1: f64,
    dn2: f64,
    emin: f64,
    /// the fast transform lost accuracy to underflow: repeat it carefully
    underflow: bool,
    /// a product of positive quantities underflowed while the block's
    /// scale σ + τ is below [`LOW_SCALE`]: relative accuracy is not assured
    lost: bool,
}

enum Stop {
    Budget,
}

impl<'a> Solver<'a> {
    fn new(z: &'a mut [[f64; 4]], out: &'a mut [f64]) -> Self {
        let k = z.len();
        Solver {
            z,
            out,
            k,
            sigma: 0.0,
            desig: 0.0,
            dmin: 0.0,
            dmin1: 0.0,
            dmin2: 0.0,
            dn: 0.0,
            dn1: 0.0,
            dn2: 0.0,
            tau: 0.0,
            ttype: 0,
            g: 0.0,
            qmax: 0.0,
            emin_cur: 0.0,
            emin_prev: 0.0,
            transforms: 0,
            failures: 0,
            budget: max_transforms(k),
            lost: false,
        }
    }

    fn no_convergence(&self, unconverged: usize) -> DqdsError {
        DqdsError::NoConvergence {
            iterations: self.transforms,
            max_iterations: self.budget,
            unconverged,
        }
    }

    /// Reverses block [i0, n0] (all four slots; e's within the block).
    fn reverse(&mut self, i0: usize, n0: usize, slots: &[usize]) {
        let (mut a, mut b) = (i0, n0);
        while a < b {
            for &s in slots {
                let t = self.z[a][s];
                self.z[a][s] = self.z[b][s];
                self.z[b][s] = t;
            }
            a += 1;
            b -= 1;
        }
        // e_j pairs with e_{i0+n0-1-j}
        if n0 > i0 {
            let (mut a, mut b) = (i0, n0 - 1);
            while a < b {
                for &s in slots {
                    let t = self.z[a][2 + s];
                    self.z[a][2 + s] = self.z[b][2 + s];
                    self.z[b][2 + s] = t;
                }
                a += 1;
                b -= 1;
            }
        }
    }

    fn run(&mut self) -> Result<(), DqdsError> {
        let n = self.k;
        let last = n - 1;
        // Put the larger q at the bottom? dqds converges fastest when the
        // small values are at the bottom: reverse if the top is small.
        if CBIAS * self.z[0][0] < self.z[last][0] {
            self.reverse(0, last, &[0]);
        }
        // Two zero-shift dqd passes, each preceded by a backward pass, with
        // the splitting tests of R.-C. Li (as in [PM00]): an e that is
        // negligible next to the pivot of the backward or forward
        // factorisation is set to zero.
        let mut pp = 0;
        for _ in 0..2 {
            let mut dd = self.z[last][pp];
            for j in (0..last).rev() {
                let ej = self.z[j][2 + pp];
                if dd >= SAFMIN && ej <= TOL2 * dd {
                    self.z[j][2 + pp] = -0.0;
                    dd = self.z[j][pp];
                } else {
                    dd = self.z[j][pp] * (dd / (dd + ej));
                }
            }
            let r = dqd_extended(self.z, 0, last, pp, 0.0, true);
            self.lost |= r.lost;
            pp = 1 - pp;
        }
        self.transforms = 2;

        // Blocks from the bottom up. `end` = one past the last unfinished
        // position.
        let mut end = n;
        let mut blocks = 0usize;
        while end > 0 {
            blocks += 1;
            if blocks > n + 1 {
                // each block finishes at least one position: cannot happen
                return Err(self.no_convergence(end));
            }
            let n0 = end - 1;
            self.desig = 0.0;
            self.sigma = if n0 == last { 0.0 } else { -self.z[n0][2] };
            if !(self.sigma >= 0.0) {
                self.sigma = 0.0;
            }
            // Find the block's top, its largest q + e, and a Gershgorin-type
            // lower bound on its smallest eigenvalue when the q's dominate.
            let mut emax = 0.0f64;
            let mut qmin = self.z[n0][0];
            let mut qmax = qmin;
            let mut i0 = 0;
            let mut j = n0;
            while j > 0 {
                let ej = self.z[j - 1][2];
                if ej <= 0.0 {
                    i0 = j;
                    break;
                }
                if qmin >= 4.0 * emax {
                    qmin = qmin.min(self.z[j][0]);
                    emax = emax.max(ej);
                }
                qmax = qmax.max(self.z[j - 1][0] + ej);
                j -= 1;
            }
            self.qmax = qmax;
            self.emin_cur = f64::INFINITY;
            self.emin_prev = f64::INFINITY;

            // If the smallest pivot of the zero-shift factorisation sits in
            // the upper third, work on the reversed block instead (first
            // step then skips the deflation tests, whose "previous" data no
            // longer match).
            let mut skip = false;
            if n0 > i0 + 1 {
                let mut dee = self.z[i0][0];
                let mut deemin = dee;
                let mut kmin = i0;
                for j in i0 + 1..=n0 {
                    dee = self.z[j][0] * (dee / (dee + self.z[j - 1][2]));
                    if dee <= deemin {
                        deemin = dee;
                        kmin = j;
                    }
                }
                if 2 * (kmin - i0) < n0 - kmin && deemin <= HALF * self.z[n0][0] {
                    self.reverse(i0, n0, &[0, 1]);
                    skip = true;
                }
            }
            // A negative dmin asks the shift rule for τ = −dmin.
            self.dmin = -(qmin - 2.0 * qmin.sqrt() * emax.sqrt()).max(0.0);

            let mut pp = 0usize;
            let mut bend = end; // one past the block's last position
            while bend > i0 {
                if self.step(i0, &mut bend, pp, skip).is_err() {
                    return Err(self.no_convergence(bend));
                }
                skip = false;
                pp = 1 - pp;
                // With copy 0 current and a tiny e somewhere, look for splits.
                if pp == 0 && bend >= i0 + 4 {
                    let n0 = bend - 1;
                    if self.emin_prev <= TOL2 * self.qmax || self.emin_cur <= TOL2 * self.sigma {
                        let mut split = None;
                        let mut qmax = self.z[i0][0];
                        let mut emin = self.z[i0][2];
                        let mut oldemn = self.z[i0][3];
                        for j in i0..=n0 - 3 {
                            let z = self.z[j];
                            if z[3] <= TOL2 * z[0] || z[2] <= TOL2 * self.sigma {
                                self.z[j][2] = -(self.sigma + self.desig);
                                split = Some(j);
                                qmax = 0.0;
                                emin = self.z[j + 1][2];
                                oldemn = self.z[j + 1][3];
                            } else {
                                qmax = qmax.max(self.z[j + 1][0]);
                                emin = emin.min(z[2]);
                                oldemn = oldemn.min(z[3]);
                            }
                        }
                        self.qmax = qmax;
                        self.emin_cur = emin;
                        self.emin_prev = oldemn;
                        if let Some(j) = split {
                            i0 = j + 1;
                        }
                    }
                }
            }
            end = i0;
        }
        Ok(())
    }

    #[inline(always)]
    fn deflated(&mut self, i: usize, q: f64) {
        self.out[i] = self.sigma + (self.desig + q);
    }

    /// One step on block [i0, bend): deflate what has converged at the
    /// bottom, choose a shift, transform (retrying with smaller shifts when
    /// the shift was too large).
    fn step(&mut self, i0: usize, bend: &mut usize, mut pp: usize, skip: bool) -> Result<(), Stop> {
        let n0in = *bend - 1;
        // Deflation at the bottom.
        loop {
            if *bend <= i0 {
                return Ok(());
            }
            let n0 = *bend - 1;
            let cq = |s: &Self, i: usize| s.z[i][pp];
            let ce = |s: &Self, i: usize| s.z[i][2 + pp];
            let pe = |s: &Self, i: usize| s.z[i][3 - pp];
            if n0 == i0 {
                let q = cq(self, n0);
                self.deflated(n0, q);
                *bend -= 1;
                continue;
            }
            if n0 > i0 + 1 {
                if skip {
                    break;
                }
                // e_{n0-1} negligible: one value.
                if !(ce(self, n0 - 1) > TOL2 * (self.sigma + cq(self, n0))
                    && pe(self, n0 - 1) > TOL2 * cq(self, n0 - 1))
                {
                    let q = cq(self, n0);
                    self.deflated(n0, q);
                    *bend -= 1;
                    continue;
                }
                // e_{n0-2} negligible: two values.
                if ce(self, n0 - 2) > TOL2 * self.sigma
                    && pe(self, n0 - 2) > TOL2 * cq(self, n0 - 2)
                {
                    break;
                }
            }
            // Eigenvalues of the trailing 2×2 qd array (a, b, c):
            // x² − (a+b+c)x + ac; with a ≥ c and t = ((a−c)+b)/2,
            // λ₊ = a + b + bc/(t + √(t² + bc)), λ₋ = c·a/λ₊.
            let (mut a, b, mut c) = (cq(self, n0 - 1), ce(self, n0 - 1), cq(self, n0));
            if c > a {
                std::mem::swap(&mut a, &mut c);
            }
            let t = HALF * ((a - c) + b);
            if b > c * TOL2 && t != 0.0 {
                let s0 = c * (b / t);
                let s = s0 / (1.0 + (1.0 + s0 / t).sqrt());
                let big = a + (s + b);
                c *= a / big;
                a = big;
            }
            self.deflated(n0 - 1, a);
            self.deflated(n0, c);
            *bend -= 2;
        }
        let n0 = *bend - 1;

        // Reverse the block if the top q is much smaller than the bottom one
        // (only at a fresh start or right after a deflation).
        if (self.dmin <= 0.0 || n0 < n0in) && CBIAS * self.z[i0][pp] < self.z[n0][pp] {
            self.reverse(i0, n0, &[0, 1]);
            if n0 - i0 <= 4 {
                self.emin_cur = self.z[i0][2 + pp];
                self.emin_prev = self.z[i0][3 - pp];
            }
            self.emin_cur = self
                .emin_cur
                .min(self.z[i0][2 + pp])
                .min(self.z[i0 + 1][2 + pp]);
            self.emin_prev = self
                .emin_prev
                .min(self.z[i0][3 - pp])
                .min(self.z[i0 + 1][3 - pp]);
            self.qmax = self.qmax.max(self.z[i0][pp]).max(self.z[i0 + 1][pp]);
            self.dmin = -0.0;
        }

        self.choose_shift(i0, n0, pp, n0in);

        // Transform until the result is positive.
        loop {
            if self.transforms >= self.budget {
                return Err(Stop::Budget);
            }
            self.transforms += 1;
            let mut r = if pp == 0 {
                dqds::<0, false>(self.z, i0, n0, self.tau, self.sigma)
            } else {
                dqds::<1, false>(self.z, i0, n0, self.tau, self.sigma)
            };
            if r.underflow {
                r = if pp == 0 {
                    dqds::<0, true>(self.z, i0, n0, self.tau, self.sigma)
                } else {
                    dqds::<1, true>(self.z, i0, n0, self.tau, self.sigma)
                };
            }
            self.set(&r);
            if r.dn.is_finite() && r.dmin >= 0.0 && r.dmin1 >= 0.0 {
                break;
            }
            let o = 1 - pp;
            if r.dn.is_finite()
                && r.dmin < 0.0
                && r.dmin1 > 0.0
                && self.z[n0 - 1][2 + o] < TOL * (self.sigma + r.dn1)
                && r.dn.abs() < TOL * self.sigma
            {
                // Convergence hidden by a negative dn.
                self.z[n0][o] = 0.0;
                self.dmin = 0.0;
                break;
            }
            if r.dmin < 0.0 {
                // Shift too large.
                self.failures += 1;
                if self.ttype < -22 {
                    self.tau = 0.0;
                } else if r.dmin1 > 0.0 {
                    // Only the last d went negative: τ + dmin is an
                    // excellent shift.
                    self.tau = (self.tau + r.dmin) * (1.0 - 2.0 * EPS);
                    self.ttype -= 11;
                } else {
                    self.tau *= QUARTER;
                    self.ttype -= 12;
                }
                continue;
            }
            if !r.dn.is_finite() && self.tau != 0.0 {
                self.tau = 0.0;
                continue;
            }
            // NaN with zero shift, or possible underflow: safe zero-shift dqd.
            if self.transforms >= self.budget {
                return Err(Stop::Budget);
            }
            self.transforms += 1;
            let r = dqd_extended(self.z, i0, n0, pp, self.sigma, false);
            self.set(&r);
            self.tau = 0.0;
            break;
        }
        pp = 1 - pp;
        let _ = pp;
        // σ += τ, compensated.
        let (s, err) = two_sum(self.sigma, self.tau);
        self.sigma = s;
        self.desig += err;
        Ok(())
    }

    fn set(&mut self, r: &Sweep) {
        self.dmin = r.dmin;
        self.dmin1 = r.dmin1;
        self.dmin2 = r.dmin2;
        self.dn = r.dn;
        self.dn1 = r.dn1;
        self.dn2 = r.dn2;
        self.emin_prev = self.emin_cur;
        self.emin_cur = r.emin;
        self.lost |= r.lost;
    }

    /// The shift strategy of \[PM00, §6] (cases 1–12): estimates of the
    /// smallest eigenvalue of the current array from the last transform's
    /// d's and the trailing entries. Leaves `tau` unchanged (the previous
    /// shift) where an estimate is unreliable.
    fn choose_shift(&mut self, i0: usize, n0: usize, pp: usize, n0in: usize) {
        if self.dmin <= 0.0 {
            self.tau = -self.dmin;
            self.ttype = -1;
            return;
        }
        let z = &*self.z;
        let cq = |i: usize| z[i][pp];
        let ce = |i: usize| z[i][2 + pp];
        let pq = |i: usize| z[i][1 - pp];
        let pe = |i: usize| z[i][3 - pp];
        let (dmin, dmin1, dmin2) = (self.dmin, self.dmin1, self.dmin2);
        let (dn, dn1, dn2) = (self.dn, self.dn1, self.dn2);
        // Sum of the ratios ce(j)/cq(j) products going up from `start`,
        // which estimates the squared norm contribution of the rest of the
        // block; None when a ratio exceeds one (no reliable estimate).
        let tail = |start: isize, mut a2: f64, mut b2: f64| -> Option<f64> {
            let mut j = start;
            while j >= i0 as isize {
                let ju = j as usize;
                if b2 == 0.0 {
                    break;
                }
                let b1 = b2;
                if ce(ju) > cq(ju) {
                    return None;
                }
                b2 *= ce(ju) / cq(ju);
                a2 += b2;
                if 100.0 * b2.max(b1) < a2 || CNST1 < a2 {
                    break;
                }
                j -= 1;
            }
            Some(a2)
        };
        let s;
        if n0in == n0 {
            // Nothing deflated.
            if dmin == dn || dmin == dn1 {
                let b1 = cq(n0).sqrt() * ce(n0 - 1).sqrt();
                let b2 = cq(n0 - 1).sqrt() * ce(n0 - 2).sqrt();
                let a2 = cq(n0 - 1) + ce(n0 - 1);
                if dmin == dn && dmin1 == dn1 {
                    // Cases 2 and 3: the last two d's are the smallest.
                    let gap2 = dmin2 - a2 - dmin2 * QUARTER;
                    let gap1 = if gap2 > 0.0 && gap2 > b2 {
                        a2 - dn - (b2 / gap2) * b2
                    } else {
                        a2 - dn - (b1 + b2)
                    };
                    if gap1 > 0.0 && gap1 > b1 {
                        s = (dn - (b1 / gap1) * b1).max(HALF * dmin);
                        self.ttype = -2;
                    } else {
                        let mut t = 0.0f64;
                        if dn > b1 {
                            t = dn - b1;
                        }
                        if a2 > b1 + b2 {
                            t = t.min(a2 - (b1 + b2));
                        }
                        s = t.max(THIRD * dmin);
                        self.ttype = -3;
                    }
                } else {
                    // Case 4.
                    self.ttype = -4;
                    let mut t = QUARTER * dmin;
                    let gam;
                    let sum;
                    if dmin == dn {
                        gam = dn;
                        if ce(n0 - 1) > cq(n0 - 1) {
                            return;
                        }
                        let b2 = ce(n0 - 1) / cq(n0 - 1);
                        sum = tail(n0 as isize - 2, b2, b2);
                    } else {
                        gam = dn1;
                        if pe(n0 - 1) > pq(n0) {
                            return;
                        }
                        let a2 = pe(n0 - 1) / pq(n0);
                        if ce(n0 - 2) > cq(n0 - 2) {
                            return;
                        }
                        let b2 = ce(n0 - 2) / cq(n0 - 2);
                        sum = tail(n0 as isize - 3, a2 + b2, b2);
                    }
                    let Some(a2) = sum else { return };
                    let a2 = CNST3 * a2;
                    if a2 < CNST1 {
                        // Rayleigh-quotient residual bound.
                        t = gam * (1.0 - a2.sqrt()) / (1.0 + a2);
                    }
                    s = t;
                }
            } else if dmin == dn2 {
                // Case 5.
                self.ttype = -5;
                let mut t = QUARTER * dmin;
                let b1 = pq(n0);
                let b2 = pq(n0 - 1);
                let gam = dn2;
                if pe(n0 - 2) > b2 || pe(n0 - 1) > b1 {
                    return;
                }
                let mut a2 = (pe(n0 - 2) / b2) * (1.0 + pe(n0 - 1) / b1);
                if n0 - i0 > 2 {
                    let b2 = ce(n0 - 3) / cq(n0 - 3);
                    let Some(sum) = tail(n0 as isize - 4, a2 + b2, b2) else {
                        return;
                    };
                    a2 = CNST3 * sum;
                }
                if a2 < CNST1 {
                    t = gam * (1.0 - a2.sqrt()) / (1.0 + a2);
                }
                s = t;
            } else {
                // Case 6: no information; grow the fraction of dmin used
                // while this case repeats.
                if self.ttype == -6 {
                    self.g += THIRD * (1.0 - self.g);
                } else if self.ttype == -18 {
                    self.g = QUARTER * THIRD;
                } else {
                    self.g = QUARTER;
                }
                s = self.g * dmin;
                self.ttype = -6;
            }
        } else if n0in == n0 + 1 {
            // One value just deflated: dmin1, dn1 play dmin, dn.
            if dmin1 == dn1 && dmin2 == dn2 {
                // Cases 7 and 8.
                self.ttype = -7;
                let mut t = THIRD * dmin1;
                if ce(n0 - 1) > cq(n0 - 1) {
                    return;
                }
                let mut b1 = ce(n0 - 1) / cq(n0 - 1);
                let mut b2 = b1;
                if b2 != 0.0 {
                    let mut j = n0 as isize - 2;
                    while j >= i0 as isize {
                        let ju = j as usize;
                        let a2 = b1;
                        if ce(ju) > cq(ju) {
                            return;
                        }
                        b1 *= ce(ju) / cq(ju);
                        b2 += b1;
                        if 100.0 * b1.max(a2) < b2 {
                            break;
                        }
                        j -= 1;
                    }
                }
                let b2 = (CNST3 * b2).sqrt();
                let a2 = dmin1 / (1.0 + b2 * b2);
                let gap2 = HALF * dmin2 - a2;
                if gap2 > 0.0 && gap2 > b2 * a2 {
                    t = t.max(a2 * (1.0 - CNST2 * a2 * (b2 / gap2) * b2));
                } else {
                    t = t.max(a2 * (1.0 - CNST2 * b2));
                    self.ttype = -8;
                }
                s = t;
            } else {
                // Case 9.
                s = if dmin1 == dn1 {
                    HALF * dmin1
                } else {
                    QUARTER * dmin1
                };
                self.ttype = -9;
            }
        } else if n0in == n0 + 2 {
            // Two values just deflated: dmin2, dn2 play dmin, dn.
            if dmin2 == dn2 && 2.0 * ce(n0 - 1) < cq(n0 - 1) {
                // Case 10.
                self.ttype = -10;
                let mut t = THIRD * dmin2;
                if ce(n0 - 1) > cq(n0 - 1) {
                    return;
                }
                let mut b1 = ce(n0 - 1) / cq(n0 - 1);
                let mut b2 = b1;
                if b2 != 0.0 {
                    let mut j = n0 as isize - 2;
                    while j >= i0 as isize {
                        let ju = j as usize;
                        if ce(ju) > cq(ju) {
                            return;
                        }
                        b1 *= ce(ju) / cq(ju);
                        b2 += b1;
                        if 100.0 * b1 < b2 {
                            break;
                        }
                        j -= 1;
                    }
                }
                let b2 = (CNST3 * b2).sqrt();
                let a2 = dmin2 / (1.0 + b2 * b2);
                let gap2 = cq(n0 - 1) + ce(n0 - 2) - cq(n0 - 2).sqrt() * ce(n0 - 2).sqrt() - a2;
                if gap2 > 0.0 && gap2 > b2 * a2 {
                    t = t.max(a2 * (1.0 - CNST2 * a2 * (b2 / gap2) * b2));
                } else {
                    t = t.max(a2 * (1.0 - CNST2 * b2));
                }
                s = t;
            } else {
                // Case 11.
                s = QUARTER * dmin2;
                self.ttype = -11;
            }
        } else {
            // Case 12: more than two deflated, no information.
            s = 0.0;
            self.ttype = -12;
        }
        self.tau = s;
    }
}

/// Error-free sum: a + b = s + err exactly (Knuth's TwoSum).
#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let err = (a - (s - bb)) + (b - bb);
    (s, err)
}

/// One dqds transform with shift τ of block [i0, n0] (n0 ≥ i0 + 2) from
/// copy PP into copy 1 − PP. Shifts below ε·(σ + τ)/2 are treated as zero,
/// and with a zero shift d's below ε·σ are set to zero.
///
/// The fast form (CAREFUL = false) uses one division per entry,
/// t = q_{j+1}/q̂_j, which underflows when adjacent q's differ by more than
/// the exponent range (adjacent entries of B by more than ~10¹⁶², as in
/// graded matrices spanning 10⁻¹⁵⁰…10¹⁵⁰); it reports that through
/// `Sweep::underflow` and the caller repeats the transform with
/// CAREFUL = true, which then computes d·q_{j+1}/q̂_j and e·q_{j+1}/q̂_j as
/// q_{j+1}·(d/q̂_j) and q_{j+1}·(e/q̂_j) (ratios ≤ 1) wherever t would leave
/// [SAFMIN, 1/SAFMIN].
#[inline(never)]
fn dqds<const PP: usize, const CAREFUL: bool>(
    z: &mut [[f64; 4]],
    i0: usize,
    n0: usize,
    tau: f64,
    sigma: f64,
) -> Sweep {
    let o = 1 - PP;
    let dthresh = EPS * (sigma + tau);
    let tau = if tau < HALF * dthresh { 0.0 } else { tau };
    let zero_shift = tau == 0.0;
    if CAREFUL && zero_shift {
        return dqd_extended(z, i0, n0, PP, sigma, false);
    }
    let mut emin = z[i0 + 1][PP];
    let mut d = z[i0][PP] - tau;
    let mut dmin = d;
    let body = &mut z[i0..=n0];
    let m = body.len() - 2; // the main loop covers i0..=n0-3
    let low = sigma + tau < LOW_SCALE;
    let (dd, dm, em, tmin, mut pmin, mut lost) = if zero_shift {
        sweep::<PP, CAREFUL, true>(&mut body[..m], d, 0.0, dthresh, low)
    } else {
        sweep::<PP, CAREFUL, false>(&mut body[..m], d, tau, dthresh, low)
    };
    d = dd;
    dmin = fmin(dmin, dm);
    emin = fmin(emin, em);
    // the two tail steps use q_{j+1}·(x/q̂_j), whose ratio is ≤ 1
    let mut tail = |e: f64, qn: f64, x: f64, ex: f64, dx: f64| {
        pmin = fmin(pmin, fmin(ex, dx));
        if low && qn > 0.0 && ((x > 0.0 && dx < SAFMIN) || (e > 0.0 && ex < SAFMIN)) {
            lost = true;
        }
    };
    // Last two steps apart, to record d_{n0-2}, d_{n0-1} and the minima
    // that exclude them.
    let dn2 = d;
    let dmin2 = dmin;
    let j = m - 1;
    let qh = dn2 + body[j][2 + PP];
    body[j][o] = qh;
    body[j][2 + o] = body[j + 1][PP] * (body[j][2 + PP] / qh);
    let p1 = body[j + 1][PP] * (dn2 / qh);
    tail(body[j][2 + PP], body[j + 1][PP], dn2, body[j][2 + o], p1);
    let dn1 = p1 - tau;
    dmin = fmin(dmin, dn1);
    let dmin1 = dmin;
    let j = m;
    let qh = dn1 + body[j][2 + PP];
    body[j][o] = qh;
    body[j][2 + o] = body[j + 1][PP] * (body[j][2 + PP] / qh);
    let p2 = body[j + 1][PP] * (dn1 / qh);
    tail(body[j][2 + PP], body[j + 1][PP], dn1, body[j][2 + o], p2);
    let dn = p2 - tau;
    dmin = fmin(dmin, dn);
    body[j + 1][o] = dn;
    if dn.is_nan() {
        dmin = f64::NAN;
    }
    Sweep {
        dmin,
        dmin1,
        dmin2,
        dn,
        dn1,
        dn2,
        emin,
        // t = q_{j+1}/q̂_j lost its relative accuracy (or was NaN), or a
        // product underflowed while the block's scale is tiny: repeat with
        // the careful form, which tells real losses apart
        underflow: !CAREFUL && (!(tmin >= SAFMIN) || (low && pmin < SAFMIN)),
        lost,
    }
}

/// The main loop of [`dqds`] over `body` (entries i0..=n0−2; the last one
/// is read only): returns (d, min d, min ê, min t, min product, lost).
/// The products are d·t and ê = e·t before the shift; `lost` (careful form
/// only, and only when `low` says the block's scale σ + τ is below
/// [`LOW_SCALE`]) is set when a product of positive operands underflowed.
#[inline(always)]
fn sweep<const PP: usize, const CAREFUL: bool, const ZERO_SHIFT: bool>(
    body: &mut [[f64; 4]],
    mut d: f64,
    tau: f64,
    dthresh: f64,
    low: bool,
) -> (f64, f64, f64, f64, f64, bool) {
    let o = 1 - PP;
    let mut dmin = f64::INFINITY;
    let mut emin = f64::INFINITY;
    let mut tmin = f64::INFINITY;
    let mut pmin = f64::INFINITY;
    let mut lost = false;
    for j in 0..body.len() - 1 {
        let e = body[j][2 + PP];
        let qn = body[j + 1][PP];
        let qh = d + e;
        let eh;
        let dt;
        if CAREFUL {
            if SAFMIN * qn < qh && SAFMIN * qh < qn {
                let t = qn / qh;
                dt = d * t;
                eh = e * t;
            } else {
                eh = qn * (e / qh);
                dt = qn * (d / qh);
            }
            if low && qn > 0.0 && ((d > 0.0 && dt < SAFMIN) || (e > 0.0 && eh < SAFMIN)) {
                lost = true;
            }
        } else {
            let t = qn / qh;
            tmin = fmin(tmin, t);
            dt = d * t;
            eh = e * t;
            pmin = fmin(pmin, fmin(dt, eh));
        }
        d = dt - tau;
        if ZERO_SHIFT && d < dthresh {
            d = 0.0;
        }
        dmin = fmin(dmin, d);
        body[j][o] = qh;
        body[j][2 + o] = eh;
        emin = fmin(emin, eh);
    }
    (d, dmin, emin, tmin, pmin, lost)
}

/// m·2^e with m ∈ [1, 2) (x > 0 finite), or (0, 0) for x = 0.
fn split(x: f64) -> (f64, i32) {
    if x == 0.0 {
        return (0.0, 0);
    }
    let e = exponent(x);
    (scale_pow2(x, -e), e)
}

/// Zero-shift dqd of block [i0, n0] from copy `pp` into copy 1 − pp, with
/// the pivot chain d carried as m·2^e so that it cannot underflow or
/// overflow on its way (a pivot far below the exponent range may grow back
/// into it further down), and every stored quantity formed as
/// q_{j+1}·(x/q̂_j) with x/q̂_j ≤ 1. With `li_test`, an e that is negligible
/// next to the pivot (e ≤ tol²·d) is set to zero and the array split there
/// (R.-C. Li's test, as in \[PM00]). Pivots below ε·σ are set to zero (σ the
/// accumulated shift). `lost` reports a stored q̂ or ê (other than the last
/// q̂) that underflowed from positive operands while σ < [`LOW_SCALE`]
/// (and, for ê, next to q's too small to make it negligible).
fn dqd_extended(
    z: &mut [[f64; 4]],
    i0: usize,
    n0: usize,
    pp: usize,
    sigma: f64,
    li_test: bool,
) -> Sweep {
    let o = 1 - pp;
    let low = sigma < LOW_SCALE;
    let dthresh = EPS * sigma;
    let mut lost = false;
    let mut emin = z[i0 + 1][pp];
    let (mut dm, mut de) = split(z[i0][pp]);
    let value = |dm: f64, de: i32| scale_pow2(dm, de);
    let mut dmin = value(dm, de);
    let (mut dn, mut dn1, mut dn2) = (0.0, 0.0, 0.0);
    let (mut dmin1, mut dmin2) = (0.0, 0.0);
    for j in i0..n0 {
        if j + 2 == n0 {
            dn2 = value(dm, de);
            dmin2 = dmin;
        }
        let e = z[j][2 + pp];
        let qn = z[j + 1][pp];
        let dv = value(dm, de);
        let qh = dv + e;
        if li_test && e <= TOL2 * dv {
            // negligible e: split, and the pivot restarts at q_{j+1}
            z[j][2 + pp] = -0.0;
            z[j][o] = dv;
            z[j][2 + o] = 0.0;
            (dm, de) = split(qn);
        } else if qh == 0.0 {
            z[j][o] = 0.0;
            z[j][2 + o] = 0.0;
            (dm, de) = split(qn);
            dmin = value(dm, de);
            emin = 0.0;
        } else {
            let eh = qn * (e / qh);
            z[j][o] = qh;
            z[j][2 + o] = eh;
            if low
                && ((qh < SAFMIN && j < n0)
                    || (eh < SAFMIN && e > 0.0 && qn > 0.0 && qh.min(qn) < SAFMIN / TOL2))
            {
                lost = true;
            }
            // d ← q_{j+1}·d/q̂_j on separate exponents
            let (qm, qe) = split(qh);
            let (nm, ne) = split(qn);
            if nm == 0.0 || dm == 0.0 {
                dm = 0.0;
                de = 0;
            } else {
                let (m, e2) = split(dm * nm / qm);
                dm = m;
                de = de + ne - qe + e2;
            }
            if j + 1 < n0 {
                emin = fmin(emin, eh);
            }
        }
        let dv = value(dm, de);
        if dv < dthresh {
            dm = 0.0;
            de = 0;
        }
        dmin = fmin(dmin, value(dm, de));
        if j + 2 == n0 {
            dn1 = value(dm, de);
            dmin1 = dmin;
        }
        if j + 1 == n0 {
            dn = value(dm, de);
        }
    }
    z[n0][o] = dn;
    if n0 < i0 + 2 {
        dn2 = dn;
        dmin2 = dmin;
    }
    if n0 < i0 + 1 {
        dn1 = dn;
        dmin1 = dmin;
    }
    Sweep {
        dmin,
        dmin1,
        dmin2,
        dn,
        dn1,
        dn2,
        emin,
        underflow: false,
        lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponent_and_scaling() {
        assert_eq!(exponent(1.0), 0);
        assert_eq!(exponent(3.0), 1);
        assert_eq!(exponent(0.5), -1);
        assert_eq!(exponent(f64::MIN_POSITIVE), -1022);
        assert_eq!(exponent(5e-324), -1074);
        assert_eq!(exponent(f64::MAX), 1023);
        assert_eq!(scale_pow2(5e-324, 1074), 1.0);
        assert_eq!(scale_pow2(1.0, -1074), 5e-324);
    }

    #[test]
    fn two_by_two() {
        let (a, b) = upper_2x2(3.0, 0.0, 4.0);
        assert_eq!((a, b), (4.0, 3.0));
        let (a, b) = upper_2x2(1.0, 1.0, 1.0);
        let gr = (1.0 + 5f64.sqrt()) / 2.0;
        assert!((a - gr).abs() < 4e-16 * gr && (b - 1.0 / gr).abs() < 4e-16);
    }
}

/// Accuracy against the high-precision references in `tests/data/dqds`
/// (written by `scripts/dqds_reference.py`: bisection on the Golub–Kahan
/// Sturm count in 45-digit decimal arithmetic). Every singular value must
/// satisfy the relative bound of the module docs; the observed worst errors
/// (in ulps, u = 2⁻⁵³) are printed per family (`--nocapture`) and held to a
/// much tighter regression bound, `practical`.
#[cfg(test)]
mod reference {
    use super::*;
    use std::path::Path;

    const U: f64 = f64::EPSILON / 2.0;

    struct Case {
        name: String,
        d: Vec<f64>,
        e: Vec<f64>,
        /// reference σ as hi + lo
        s: Vec<(f64, f64)>,
    }

    fn bits(t: &str) -> f64 {
        f64::from_bits(u64::from_str_radix(t, 16).expect("hex bits"))
    }

    fn load(family: &str) -> Vec<Case> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/dqds")
            .join(format!("{family}.txt"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut cases = Vec::new();
        let mut lines = text.lines();
        while let Some(head) = lines.next() {
            let mut h = head.split_whitespace();
            assert_eq!(h.next(), Some("case"));
            let name = h.next().unwrap().to_string();
            let k: usize = h.next().unwrap().parse().unwrap();
            let row = |l: Option<&str>, tag: &str| -> Vec<String> {
                let l = l.expect("line");
                let mut it = l.split_whitespace();
                assert_eq!(it.next(), Some(tag));
                it.map(|s| s.to_string()).collect()
            };
            let d: Vec<f64> = row(lines.next(), "d").iter().map(|t| bits(t)).collect();
            let e: Vec<f64> = row(lines.next(), "e").iter().map(|t| bits(t)).collect();
            let s: Vec<(f64, f64)> = row(lines.next(), "s")
                .iter()
                .map(|t| {
                    let (a, b) = t.split_once(':').unwrap();
                    (bits(a), bits(b))
                })
                .collect();
            assert_eq!(d.len(), k);
            assert_eq!(s.len(), k);
            cases.push(Case { name, d, e, s });
        }
        cases
    }

    /// The bound of the `dqds` module doc, in units of u.
    fn stated_bound(k: usize, transforms: usize) -> f64 {
        let k = k as f64;
        let t = transforms as f64;
        (4.0 * k - 1.5) * t + (k - 0.5) + t / 2.0 + 3.0
    }

    /// Regression bound on observed errors, in units of u: 16 + k (LAPACK's
    /// dlasq1 reaches 88 ulps on the k = 150 case `uniform_k150`).
    fn practical(k: usize) -> f64 {
        16.0 + k as f64
    }

    /// Runs a family; returns (worst error in ulps, worst error / (k·u),
    /// number of runs flagged `range_limited`).
    fn check_family(family: &str) -> (f64, f64, usize) {
        let cases = load(family);
        assert!(!cases.is_empty());
        let mut worst = 0.0f64;
        let mut worst_k = 0.0f64;
        let mut worst_name = String::new();
        let mut work = Vec::new();
        let mut refused = Vec::new();
        let mut skipped = 0usize;
        let mut skipped_worst = 0.0f64;
        for c in &cases {
            let k = c.d.len();
            let mut got = c.d.clone();
            if c.s.iter().any(|(hi, _)| !hi.is_finite()) {
                // σ₁ > f64::MAX: must be reported, not returned as ∞
                let r = bidiagonal_singular_values_with_work(&mut got, &c.e, &mut work);
                assert_eq!(r, Err(DqdsError::Overflow), "{family}/{}", c.name);
                continue;
            }
            let stats = bidiagonal_singular_values_with_work(&mut got, &c.e, &mut work)
                .unwrap_or_else(|err| panic!("{family}/{}: {err}", c.name));
            if stats.range_limited {
                refused.push(c.name.clone());
            }
            // the plain entry point agrees bit for bit
            let mut again = c.d.clone();
            bidiagonal_singular_values(&mut again, &c.e).unwrap();
            assert_eq!(again, got, "{family}/{}", c.name);
            for w in got.windows(2) {
                assert!(w[0] >= w[1], "{family}/{}: not sorted", c.name);
            }
            let amax = c.d.iter().chain(&c.e).fold(0.0f64, |m, x| m.max(x.abs()));
            let bound = stated_bound(k, stats.transforms);
            for (i, (&g, &(hi, lo))) in got.iter().zip(&c.s).enumerate() {
                assert!(g >= 0.0 && g.is_finite(), "{family}/{}: σ{i} = {g}", c.name);
                if hi == 0.0 {
                    assert_eq!(g, 0.0, "{family}/{}: σ{i} should be exactly 0", c.name);
                    continue;
                }
                let err = ((g - hi) - lo).abs() / hi / U;
                if hi < amax * 2f64.powi(-900) {
                    // outside the claimed range: recorded, not asserted
                    skipped += 1;
                    skipped_worst = skipped_worst.max(err);
                    continue;
                }
                assert!(
                    err <= bound,
                    "{family}/{}: σ{i}: error {err:.1} ulps exceeds the stated bound {bound:.0}",
                    c.name
                );
                assert!(
                    err <= practical(k),
                    "{family}/{}: σ{i} = {g:e} vs {hi:e}: error {err:.1} ulps (k = {k}, {} transforms)",
                    c.name,
                    stats.transforms
                );
                if err > worst {
                    worst = err;
                    worst_name = format!("{} σ{i}", c.name);
                }
                worst_k = worst_k.max(err / k as f64);
            }
        }
        println!(
            "family {family:10} cases {:3}  worst {worst:6.2} ulps ({worst_name})  worst/k {worst_k:.3}  range-limited runs {}: {refused:?}; values below 2^-900·max|entry| (not asserted): {skipped}, worst {skipped_worst:.3e} ulps",
            cases.len(),
            refused.len()
        );
        (worst, worst_k, refused.len())
    }

    #[test]
    fn small_k() {
        assert_eq!(
            check_family("small").2,
            0,
            "no run of this family may be range-limited"
        );
    }

    #[test]
    fn random() {
        assert_eq!(
            check_family("random").2,
            0,
            "no run of this family may be range-limited"
        );
    }

    #[test]
    fn graded() {
        check_family("graded");
    }

    #[test]
    fn zero_and_tiny_entries() {
        check_family("zero_tiny");
    }

    #[test]
    fn diagonal() {
        assert_eq!(
            check_family("diagonal").2,
            0,
            "no run of this family may be range-limited"
        );
    }

    #[test]
    fn repeated_values() {
        assert_eq!(
            check_family("repeated").2,
            0,
            "no run of this family may be range-limited"
        );
    }

    #[test]
    fn wilkinson_like() {
        assert_eq!(
            check_family("wilkinson").2,
            0,
            "no run of this family may be range-limited"
        );
    }

    #[test]
    fn k_1000() {
        check_family("big");
    }

    /// Closed form: the all-ones k×k upper bidiagonal has σ_j = 2cos(jπ/(2k+1)).
    #[test]
    fn ones_closed_form() {
        for k in [3usize, 10, 100, 1000, 2000] {
            let mut d = vec![1.0; k];
            let e = vec![1.0; k - 1];
            bidiagonal_singular_values(&mut d, &e).unwrap();
            let mut worst = 0.0f64;
            for (j, &s) in d.iter().enumerate() {
                let exact =
                    2.0 * ((j + 1) as f64 * std::f64::consts::PI / (2 * k + 1) as f64).cos();
                // cos near π/2 is ill-conditioned in its argument: allow the
                // argument's rounding, |Δσ| ≲ 2·u·(jπ/(2k+1))
                let arg = (j + 1) as f64 * std::f64::consts::PI / (2 * k + 1) as f64;
                let tol = (practical(k) * exact + 4.0 * arg) * U;
                assert!((s - exact).abs() <= tol, "k={k} j={j}: {s} vs {exact}");
                worst = worst.max((s - exact).abs() / exact / U);
            }
            println!("ones k={k}: worst {worst:.1} ulps");
        }
    }

    /// Scaling invariance: σ(2^p·B) = 2^p·σ(B) exactly (the scaling is by a
    /// power of two), for p across the whole exponent range.
    #[test]
    fn power_of_two_scaling_is_exact() {
        let d0 = [1.0, 0.7, 0.3, 2.0, 1e-3, 0.9];
        let e0 = [0.5, 0.2, 1.1, 0.01, 0.6];
        let mut base = d0.to_vec();
        bidiagonal_singular_values(&mut base, &e0).unwrap();
        for p in [-1060, -900, -500, -1, 1, 300, 1000] {
            let f = 2f64.powi(p);
            let mut d: Vec<f64> = d0.iter().map(|x| x * f).collect();
            let e: Vec<f64> = e0.iter().map(|x| x * f).collect();
            if d.iter().chain(&e).any(|x| *x == 0.0 || !x.is_finite()) {
                continue;
            }
            bidiagonal_singular_values(&mut d, &e).unwrap();
            for (a, b) in d.iter().zip(&base) {
                assert_eq!(*a, b * f, "p = {p}");
            }
        }
    }
}
