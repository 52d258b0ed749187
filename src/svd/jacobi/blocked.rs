//! Cache-blocked one-sided Jacobi sweeps on an r×c `f64` matrix X (r ≥ c).
//!
//! The columns are split into blocks of at most `block` consecutive
//! columns. Before each sweep the columns are sorted by decreasing norm
//! (de Rijk's pivoting, once per sweep). A sweep then visits every column
//! pair exactly once, grouped by pairs of blocks: for each block I, first
//! the pairs inside I, then for each J > I the pairs (p ∈ I, q ∈ J) — a
//! *pair step* works on 2·block columns that stay in cache while its
//! rotations are applied, instead of streaming the whole matrix through
//! the cache for every column p as the row-cyclic order does.
//!
//! Each rotation is the one of the unblocked kernel: a fresh inner product
//! γ = x_pᵀx_q, the carried squared norms α, β (exact at the start of each
//! sweep, recomputed from the column when a rotation shrinks one below 1/16
//! of its value), the cosine test |γ| ≤ tol·√(αβ), and Rutishauser's
//! rotation applied to the two columns (and to the same columns of V when
//! it is accumulated).
//!
//! All loops of a sweep run inside one [`pulp::Arch::dispatch`], so they are
//! compiled for AVX2 + FMA or AVX-512 when the CPU has them.

use nalgebra::DMatrix;

use super::RECOMPUTE;
use super::linalg::{View, gram_lower};

/// The Gram screening runs in sweeps after one that rotated fewer than
/// c²/SCREEN pairs.
const SCREEN: usize = 16;

/// What [`run`] needs besides the matrices.
#[derive(Clone, Copy)]
pub(super) struct Settings {
    pub max_sweeps: usize,
    /// Cosine threshold: pairs with |cos θ| ≤ tol are orthogonal enough.
    pub tol: f64,
    /// Squared column norms at or below this count as zero.
    pub tiny: f64,
    pub block: usize,
}

/// Ok(sweeps) once a sweep rotates nothing, Err((sweeps, largest cosine
/// of the last sweep)) after `max_sweeps`.
pub(super) fn run(
    x: &mut DMatrix<f64>,
    mut v: Option<&mut DMatrix<f64>>,
    s: Settings,
) -> Result<usize, (usize, f64)> {
    let (r, c) = x.shape();
    let b = s.block.clamp(1, c.max(1));
    let mut sq = vec![0.0f64; c];
    let mut last_max = 0.0;
    let mut last_rotations = usize::MAX;
    let mut h: Vec<f64> = Vec::new();
    let mut dirty = vec![false; c];
    for sweep in 1..=s.max_sweeps {
        for (j, q) in sq.iter_mut().enumerate() {
            let col = &x.as_slice()[j * r..(j + 1) * r];
            *q = dot(col, col);
        }
        sort_columns(x, v.as_deref_mut(), &mut sq);
        // Few rotations expected: take the inner products of the columns a
        // sweep has not yet changed from one Gram matrix product.
        let screen = last_rotations.saturating_mul(SCREEN) < c * c;
        if screen {
            h.resize(c * c, 0.0);
            gram_lower(&mut h, c, View::cols_of(x.as_slice(), r, r, 0, c));
            dirty.fill(false);
        }
        let out = pulp::Arch::new().dispatch(Sweep {
            h: screen.then_some((&h[..], &mut dirty[..])),
            x: x.as_mut_slice(),
            r,
            c,
            sq: &mut sq,
            v: v.as_deref_mut().map(|v| v.as_mut_slice()),
            b,
            s,
        });
        last_max = out.1;
        last_rotations = out.0;
        if out.0 == 0 {
            return Ok(sweep);
        }
    }
    Err((s.max_sweeps, last_max))
}

/// Sorts the columns by decreasing squared norm (stable), permuting V and
/// the norms alike.
fn sort_columns(x: &mut DMatrix<f64>, v: Option<&mut DMatrix<f64>>, sq: &mut [f64]) {
    let c = sq.len();
    let mut order: Vec<usize> = (0..c).collect();
    order.sort_by(|&i, &j| sq[j].total_cmp(&sq[i]));
    if order.iter().enumerate().all(|(i, &j)| i == j) {
        return;
    }
    let permute = |m: &mut DMatrix<f64>| {
        let rows = m.nrows();
        let old = m.as_slice().to_vec();
        let dst = m.as_mut_slice();
        for (k, &j) in order.iter().enumerate() {
            dst[k * rows..(k + 1) * rows].copy_from_slice(&old[j * rows..(j + 1) * rows]);
        }
    };
    permute(x);
    if let Some(v) = v {
        permute(v);
    }
    let old = sq.to_vec();
    for (k, &j) in order.iter().enumerate() {
        sq[k] = old[j];
    }
}

/// One sweep; its output is (rotations, largest cosine seen).
struct Sweep<'a> {
    /// The Gram matrix XᵀX at the start of the sweep (lower triangle) and
    /// which columns have been rotated since.
    h: Option<(&'a [f64], &'a mut [bool])>,
    x: &'a mut [f64],
    r: usize,
    c: usize,
    sq: &'a mut [f64],
    v: Option<&'a mut [f64]>,
    b: usize,
    s: Settings,
}

impl pulp::WithSimd for Sweep<'_> {
    type Output = (usize, f64);
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> (usize, f64) {
        let Sweep {
            mut h,
            x,
            r,
            c,
            sq,
            mut v,
            b,
            s,
        } = self;
        let nb = c.div_ceil(b);
        let range = |k: usize| (k * b, ((k + 1) * b).min(c));
        let mut rotations = 0;
        let mut max_cos = 0.0f64;
        for bi in 0..nb {
            let (i0, i1) = range(bi);
            for bj in bi..nb {
                let (j0, j1) = range(bj);
                let mut step_rot = 0;
                for p in i0..i1 {
                    let q0 = if bi == bj { p + 1 } else { j0 };
                    for q in q0..j1 {
                        let (alpha, beta) = (sq[p], sq[q]);
                        if alpha <= s.tiny || beta <= s.tiny {
                            continue;
                        }
                        let (xp, xq) = two_columns(x, r, p, q);
                        let gamma = match h.as_mut() {
                            Some((g, dirty)) if !dirty[p] && !dirty[q] => g[p * c + q],
                            _ => dot_simd(simd, xp, xq),
                        };
                        let cos = gamma.abs() / (alpha.sqrt() * beta.sqrt());
                        if cos > max_cos {
                            max_cos = cos;
                        }
                        if cos <= s.tol {
                            continue;
                        }
                        step_rot += 1;
                        if let Some((_, dirty)) = h.as_mut() {
                            dirty[p] = true;
                            dirty[q] = true;
                        }
                        let (t, cs) = rotation(alpha, beta, gamma);
                        let sn = cs * t;
                        rotate_simd(simd, xp, xq, cs, sn);
                        let (alpha_new, beta_new) = (alpha - t * gamma, beta + t * gamma);
                        sq[p] = if alpha_new > alpha * RECOMPUTE {
                            alpha_new
                        } else {
                            dot_simd(simd, xp, xp)
                        };
                        sq[q] = if beta_new > beta * RECOMPUTE {
                            beta_new
                        } else {
                            dot_simd(simd, xq, xq)
                        };
                        if let Some(v) = v.as_deref_mut() {
                            let (vp, vq) = two_columns(v, c, p, q);
                            rotate_simd(simd, vp, vq, cs, sn);
                        }
                    }
                }
                rotations += step_rot;
            }
        }
        (rotations, max_cos)
    }
}

/// Mutable slices of columns p < q of a column-major buffer with `r` rows.
#[inline(always)]
fn two_columns(data: &mut [f64], r: usize, p: usize, q: usize) -> (&mut [f64], &mut [f64]) {
    debug_assert!(p < q);
    let (left, right) = data.split_at_mut(q * r);
    (&mut left[p * r..(p + 1) * r], &mut right[..r])
}

/// xᵀy with eight independent partial sums (so that it vectorises).
#[inline(always)]
pub(super) fn dot(x: &[f64], y: &[f64]) -> f64 {
    const L: usize = 8;
    let (xc, yc) = (x.chunks_exact(L), y.chunks_exact(L));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    let mut acc = [0.0f64; L];
    for (xs, ys) in xc.zip(yc) {
        for k in 0..L {
            acc[k] += xs[k] * ys[k];
        }
    }
    let mut tail = 0.0;
    for (&xi, &yi) in xr.iter().zip(yr) {
        tail += xi * yi;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// (t, cos θ) of the rotation that orthogonalises two columns with squared
/// norms α, β and inner product γ ≠ 0 (Rutishauser): ζ = (β − α)/(2γ),
/// t = sign(ζ)/(|ζ| + √(1 + ζ²)), cos θ = 1/√(1 + t²).
#[inline(always)]
pub(super) fn rotation(alpha: f64, beta: f64, gamma: f64) -> (f64, f64) {
    let zeta = (beta - alpha) / (2.0 * gamma);
    let az = zeta.abs();
    // √(1 + ζ²) = |ζ| to working precision once ζ² ≥ 1/ε (and before it overflows).
    let root = if az < 1e8 { (1.0 + az * az).sqrt() } else { az };
    let t = zeta.signum() / (az + root);
    // cos θ through `hypot`: with 1/√(1 + t²) instead (plainly rounded, or
    // with 1 + t² carried to twice the precision) the accumulated V of
    // attention matrices came out about 5× less orthogonal (measured).
    (t, 1.0 / 1f64.hypot(t))
}

/// xᵀy with four vector accumulators (explicit SIMD).
#[inline(always)]
fn dot_simd<S: pulp::Simd>(simd: S, x: &[f64], y: &[f64]) -> f64 {
    let (xh, xt) = S::as_simd_f64s(x);
    let (yh, yt) = S::as_simd_f64s(y);
    let mut acc = [simd.splat_f64s(0.0); 4];
    let (xc, yc) = (xh.chunks_exact(4), yh.chunks_exact(4));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (xs, ys) in xc.zip(yc) {
        for k in 0..4 {
            acc[k] = simd.mul_add_e_f64s(xs[k], ys[k], acc[k]);
        }
    }
    for (k, (&a, &b)) in xr.iter().zip(yr).enumerate() {
        acc[k] = simd.mul_add_e_f64s(a, b, acc[k]);
    }
    let sum = simd.add_f64s(simd.add_f64s(acc[0], acc[1]), simd.add_f64s(acc[2], acc[3]));
    let mut total = simd.reduce_sum_f64s(sum);
    for (&a, &b) in xt.iter().zip(yt) {
        total += a * b;
    }
    total
}

/// x ← c·x − s·y, y ← s·x + c·y (explicit SIMD).
#[inline(always)]
fn rotate_simd<S: pulp::Simd>(simd: S, x: &mut [f64], y: &mut [f64], c: f64, s: f64) {
    let (xh, xt) = S::as_mut_simd_f64s(x);
    let (yh, yt) = S::as_mut_simd_f64s(y);
    let (vc, vs) = (simd.splat_f64s(c), simd.splat_f64s(s));
    for (xi, yi) in xh.iter_mut().zip(yh.iter_mut()) {
        let (a, b) = (*xi, *yi);
        *xi = simd.sub_f64s(simd.mul_f64s(vc, a), simd.mul_f64s(vs, b));
        *yi = simd.add_f64s(simd.mul_f64s(vs, a), simd.mul_f64s(vc, b));
    }
    rotate_pair(xt, yt, c, s);
}

/// x ← c·x − s·y, y ← s·x + c·y.
#[inline(always)]
fn rotate_pair(x: &mut [f64], y: &mut [f64], c: f64, s: f64) {
    for (xi, yi) in x.iter_mut().zip(y.iter_mut()) {
        let (a, b) = (*xi, *yi);
        *xi = c * a - s * b;
        *yi = s * a + c * b;
    }
}
