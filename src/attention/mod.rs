//! Scaled dot-product softmax attention with masks.
//!
//! # Definition
//!
//! For queries Q (n×d), keys K (m×d), a scale s (by default 1/√d) and a
//! [`Mask`] with allowed set 𝓜 and additive bias B, the attention weights are
//! the n×m matrix
//!
//! ```text
//! z_ij = s·(QKᵀ)_ij + B_ij          for (i, j) ∈ 𝓜,    z_ij = −∞ otherwise
//! A_ij = exp(z_ij − μ_i) / Σ_l exp(z_il − μ_i),       μ_i = max_l z_il
//! ```
//!
//! # Guarantees
//!
//! - **Row-stochastic:** every entry is in [0, 1] and every row sums to 1 up
//!   to rounding (|Σ_j A_ij − 1| ≤ m·ε to first order, `docs/THEORY.md`, T1).
//! - **Masked entries are exactly 0**, and so are logits of −∞.
//! - **No overflow:** subtracting the row maximum μ_i makes every exponent
//!   ≤ 0, so every exponential is ≤ 1 and the row sum is ≥ 1 (the maximum
//!   contributes exp(0) = 1). Logits of ±1e30 give the correct limits.
//! - **A fully masked row is an error**, [`Error::FullyMaskedRow`], never a
//!   row of NaN (PyTorch's behaviour) nor a silent row of zeros.
//! - Non-finite input (NaN anywhere, +∞ in logits or bias) is
//!   [`Error::NonFinite`]; QKᵀ too large for the type is [`Error::Overflow`].
//!
//! # Algorithm
//!
//! The softmax is fused with the product, one block of b consecutive query
//! rows at a time (b·m entries sized to stay in the per-core cache, b a
//! multiple of 8 between 16 and 512):
//!
//! 1. the logits of the block, s·Q_blk·Kᵀ, are computed into a b×m buffer
//!    (faer's matrix product with the `faer` feature, nalgebra's otherwise),
//!    restricted to the keys that the causal or sliding-window part allows
//!    to some row of the block (the others are never computed and their
//!    weights stay exactly 0);
//! 2. while the block is in cache: the mask and bias are applied, then the
//!    row maxima, the exponentials relative to them with the row sums, and
//!    the division by the sums, written straight into the rows of the
//!    column-major n×m result. The buffer is column-major too, so each
//!    column holds b contiguous entries, one per row, and every pass
//!    vectorises across the rows of the block.
//!
//! The exponential is a branch-free polynomial evaluation (Cody–Waite range
//! reduction, a minimax polynomial for `f32`, a degree-13 Taylor polynomial
//! for `f64`, the power of two from the exponent bits) that the compiler
//! vectorises; the loops are dispatched at run time to AVX-512 or AVX2 + FMA
//! when the CPU has them. For arguments in [ln(MIN_POSITIVE), 0] its relative error is
//! ≤ 1e-6 for `f32` and ≤ 4ε for `f64`; arguments below, including the −∞
//! of masked entries, give exactly 0 (an absolute error < MIN_POSITIVE), and
//! exp(0) is exactly 1. The error of the exponential does not enter the row
//! sum bound (T1 normalises the computed exponentials by their own sum);
//! it adds at most 1e-6 (`f32`) or 4ε (`f64`) to each entry's relative
//! error.
//!
//! If the product overflows, it is recomputed from Q and K scaled to
//! max-abs 1, with the combined factor applied afterwards.
//!
//! # Complexity
//!
//! O(n·m·d) for QKᵀ (about half of it under a causal mask, whose blocks
//! skip the keys above their last row) plus O(n·m) for the masked softmax;
//! memory: the n×m result plus a buffer of b·m entries.
//!
//! # Examples
//!
//! ```
//! use attention_svd::attention::{scaled_dot_product, Mask};
//! use nalgebra::DMatrix;
//!
//! let q = DMatrix::from_fn(4, 8, |i, j| ((i * 8 + j) as f64 * 0.37).sin());
//! let k = DMatrix::from_fn(4, 8, |i, j| ((i * 8 + j) as f64 * 0.11).cos());
//! let a = scaled_dot_product(&q, &k, &Mask::causal()).unwrap();
//! for i in 0..4 {
//!     assert!((a.row(i).sum() - 1.0).abs() < 1e-15);
//!     for j in i + 1..4 {
//!         assert_eq!(a[(i, j)], 0.0); // masked entries are exactly zero
//!     }
//! }
//! ```

pub(crate) mod exp;
mod mask;

pub use mask::Mask;

use nalgebra::DMatrix;

use std::borrow::Cow;

use crate::{check, Error, Result, Scalar};

use mask::Resolved;

/// Row-wise softmax of `logits` (n×m) under `mask`.
///
/// Logits may be −∞ (weight 0) but not NaN or +∞.
///
/// # Errors
///
/// [`Error::Empty`] for an empty matrix, [`Error::NonFinite`] for NaN or +∞
/// in the logits or the bias, [`Error::ShapeMismatch`] and
/// [`Error::InvalidParameter`] for a mask that does not fit,
/// [`Error::Overflow`] if a logit plus its bias overflows, and
/// [`Error::FullyMaskedRow`] for a row without any finite allowed logit.
///
/// # Examples
///
/// ```
/// use attention_svd::attention::{softmax_rows, Mask};
/// use nalgebra::dmatrix;
///
/// // Huge logits do not overflow: the row maximum is subtracted first.
/// let logits = dmatrix![1e30_f64, 0.0, f64::NEG_INFINITY];
/// let a = softmax_rows(&logits, &Mask::none()).unwrap();
/// assert_eq!(a, dmatrix![1.0, 0.0, 0.0]);
/// ```
pub fn softmax_rows<T: Scalar>(logits: &DMatrix<T>, mask: &Mask<T>) -> Result<DMatrix<T>> {
    check::non_empty(logits, "logits")?;
    // The first offending entry in row-major order, as everywhere else.
    for (i, row) in logits.row_iter().enumerate() {
        if let Some(j) = row
            .iter()
            .position(|&x| x.is_nan_value() || x == T::INFINITY)
        {
            return Err(Error::NonFinite {
                what: "logits",
                row: i,
                col: j,
            });
        }
    }
    let (n, m) = logits.shape();
    let resolved = mask.resolve(n, m)?;
    let copy = |i0: usize, b: usize, jlo: usize, z: &mut [T]| {
        let src = logits.as_slice();
        for (j, col) in z.chunks_exact_mut(b).enumerate() {
            let at = (jlo + j) * n + i0;
            col.copy_from_slice(&src[at..at + b]);
        }
        true
    };
    fused_softmax(n, m, &resolved, copy).map_err(|stop| match stop {
        Stop::Mask(e) => e,
        Stop::Overflow => unreachable!("copied logits are never reported as overflowing"),
    })
}

/// Attention weights softmax(QKᵀ/√d + mask) for queries `q` (n×d) and keys
/// `k` (m×d): the n×m row-stochastic matrix of the module docs.
///
/// # Errors
///
/// [`Error::Empty`] if Q or K is empty (including d = 0),
/// [`Error::ShapeMismatch`] if their widths differ, [`Error::NonFinite`] for
/// NaN/±∞ in Q or K, [`Error::Overflow`] if QKᵀ cannot be represented, and
/// the mask errors of [`softmax_rows`].
///
/// # Examples
///
/// ```
/// use attention_svd::attention::{scaled_dot_product, Mask};
/// use nalgebra::dmatrix;
///
/// let q = dmatrix![1.0_f64, 0.0; 0.0, 1.0];
/// let k = dmatrix![1.0, 0.0; 0.0, 1.0; 1.0, 1.0];
/// let a = scaled_dot_product(&q, &k, &Mask::none()).unwrap();
/// assert_eq!(a.shape(), (2, 3));
/// let e = (1.0 / 2f64.sqrt()).exp();
/// assert!((a[(0, 0)] - e / (2.0 * e + 1.0)).abs() < 1e-15);
/// ```
pub fn scaled_dot_product<T: Scalar>(
    q: &DMatrix<T>,
    k: &DMatrix<T>,
    mask: &Mask<T>,
) -> Result<DMatrix<T>> {
    check::non_empty(q, "queries")?;
    let d = T::from_count(q.ncols());
    scaled_dot_product_with_scale(q, k, mask, T::one() / d.sqrt())
}

/// Attention weights softmax(s·QKᵀ + mask) with an explicit scale `s`
/// (an inverse temperature): s = 1/√d is [`scaled_dot_product`]; s → 0 tends
/// to uniform weights over the allowed keys; s → ∞ to one-hot rows on the
/// row's largest logit.
///
/// # Errors
///
/// As [`scaled_dot_product`], and [`Error::InvalidParameter`] if `scale` is
/// not finite.
///
/// # Examples
///
/// ```
/// use attention_svd::attention::{scaled_dot_product_with_scale, Mask};
/// use nalgebra::dmatrix;
///
/// let q = dmatrix![1.0_f64, 2.0; -3.0, 0.5];
/// let k = dmatrix![0.5, 1.0; 2.0, -1.0; 0.0, 0.0];
/// // Zero scale: uniform attention.
/// let a = scaled_dot_product_with_scale(&q, &k, &Mask::none(), 0.0).unwrap();
/// assert!(a.iter().all(|&x| (x - 1.0 / 3.0).abs() < 1e-15));
/// ```
pub fn scaled_dot_product_with_scale<T: Scalar>(
    q: &DMatrix<T>,
    k: &DMatrix<T>,
    mask: &Mask<T>,
    scale: T,
) -> Result<DMatrix<T>> {
    check::queries_keys(q, k, scale)?;
    let (n, m) = (q.nrows(), k.nrows());
    // An overflowing QKᵀ is reported before any mask error, as if the
    // logits were formed first; that check runs only on error paths.
    let resolved = match mask.resolve(n, m) {
        Ok(r) => r,
        Err(e) => return Err(overflow_or(q, k, scale, e)),
    };
    let mut product = Product::direct(q, k, scale);
    loop {
        let fill = |i0: usize, b: usize, jlo: usize, z: &mut [T]| product.fill(i0, b, jlo, z);
        match fused_softmax(n, m, &resolved, fill) {
            Ok(a) => return Ok(a),
            Err(Stop::Mask(e)) => return Err(overflow_or(q, k, scale, e)),
            // The direct product overflowed: start again from inputs scaled
            // to max-abs 1, which succeeds whenever the scaled logits
            // themselves are representable.
            Err(Stop::Overflow) if !product.rescaled => product = Product::rescaled(q, k, scale),
            Err(Stop::Overflow) => {
                return Err(Error::Overflow {
                    what: "scaled logits QKᵀ",
                })
            }
        }
    }
}

/// Splits an n×(h·d) projection into its h heads of width d (columns
/// `[t·d, (t+1)·d)` for head t), the layout of PyTorch's
/// `x.view(n, h, d)`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if `heads` is 0 or does not divide the width;
/// [`Error::Empty`] for an empty matrix.
///
/// # Examples
///
/// ```
/// use attention_svd::attention::split_heads;
/// use nalgebra::DMatrix;
///
/// let x = DMatrix::from_fn(3, 6, |i, j| (10 * i + j) as f64);
/// let heads = split_heads(&x, 3).unwrap();
/// assert_eq!(heads.len(), 3);
/// assert_eq!(heads[1][(2, 0)], 22.0);
/// ```
pub fn split_heads<T: Scalar>(x: &DMatrix<T>, heads: usize) -> Result<Vec<DMatrix<T>>> {
    check::non_empty(x, "projection")?;
    if heads == 0 || !x.ncols().is_multiple_of(heads) {
        return Err(Error::InvalidParameter {
            name: "heads",
            reason: "the number of heads must be positive and divide the projection width",
        });
    }
    let d = x.ncols() / heads;
    Ok((0..heads)
        .map(|t| x.columns(t * d, d).into_owned())
        .collect())
}

/// Multi-head attention weights: splits the query projection (n×h·d) and
/// key projection (m×h·d) into `heads` heads and returns the h n×m weight
/// matrices softmax(Q_t K_tᵀ/√d + mask), one per head, in head order.
///
/// # Errors
///
/// As [`split_heads`] for either projection, [`Error::ShapeMismatch`] if the
/// widths differ, and as [`scaled_dot_product`] for each head.
///
/// # Examples
///
/// ```
/// use attention_svd::attention::{multi_head, Mask};
/// use nalgebra::DMatrix;
///
/// let q = DMatrix::from_fn(5, 8, |i, j| ((i + 2 * j) as f32).sin());
/// let k = DMatrix::from_fn(5, 8, |i, j| ((3 * i + j) as f32).cos());
/// let weights = multi_head(&q, &k, 2, &Mask::causal()).unwrap();
/// assert_eq!(weights.len(), 2);
/// assert_eq!(weights[0].shape(), (5, 5));
/// ```
pub fn multi_head<T: Scalar>(
    q: &DMatrix<T>,
    k: &DMatrix<T>,
    heads: usize,
    mask: &Mask<T>,
) -> Result<Vec<DMatrix<T>>> {
    if q.ncols() != k.ncols() {
        return Err(Error::ShapeMismatch {
            what: "key projection",
            expected: (k.nrows(), q.ncols()),
            found: k.shape(),
        });
    }
    let qs = split_heads(q, heads)?;
    let ks = split_heads(k, heads)?;
    qs.iter()
        .zip(&ks)
        .map(|(qh, kh)| scaled_dot_product(qh, kh, mask))
        .collect()
}

/// Why [`fused_softmax`] stopped early.
enum Stop {
    /// A block of the product s·QKᵀ is not finite.
    Overflow,
    /// A mask error (bias overflow or a fully masked row).
    Mask(Error),
}

/// Target size of the block buffer: b rows of the (allowed part of the)
/// logits stay in the per-core cache between the passes of the softmax.
const BLOCK_BYTES: usize = 1 << 20;

/// Rows per block: a multiple of 8 in [16, 512] (at most n) with
/// b·m·size_of::<T>() ≈ [`BLOCK_BYTES`].
fn block_rows<T>(n: usize, m: usize) -> usize {
    let b = BLOCK_BYTES / (m * std::mem::size_of::<T>()).max(1);
    (b.clamp(16, 512) / 8 * 8).min(n)
}

/// The fused masked softmax of the module docs, by blocks of b consecutive
/// rows. `fill(i0, b, jlo, z)` writes the logits of rows i0..i0+b and
/// columns jlo..jlo+w, column by column (entry (r, j) at `z[j·b + r]`,
/// w = z.len()/b), and returns `false` if they overflowed. Keys outside the
/// causal/window range of every row of the block are never computed: their
/// weights stay exactly 0.
fn fused_softmax<T: Scalar>(
    n: usize,
    m: usize,
    mask: &Resolved<T>,
    mut fill: impl FnMut(usize, usize, usize, &mut [T]) -> bool,
) -> std::result::Result<DMatrix<T>, Stop> {
    let bmax = block_rows::<T>(n, m);
    // Zero-initialised (a zeroed allocation): masked keys are never written.
    let mut out = vec![T::zero(); n * m];
    let mut buf = vec![T::zero(); bmax * m];
    let mut max = vec![T::zero(); bmax];
    let mut sum = vec![T::zero(); bmax];
    let mut overflow = vec![false; bmax];
    let pointwise = mask.has_pointwise();
    for i0 in (0..n).step_by(bmax) {
        let b = bmax.min(n - i0);
        // The ends of the causal/window range grow with the row.
        let jlo = mask.key_range(i0).start;
        let jhi = mask.key_range(i0 + b - 1).end;
        if jhi <= jlo {
            return Err(Stop::Mask(Error::FullyMaskedRow { row: i0 }));
        }
        let z = &mut buf[..b * (jhi - jlo)];
        if !fill(i0, b, jlo, z) {
            return Err(Stop::Overflow);
        }
        // Pass 1a: −∞ outside each row's causal/window range (O(b²) entries).
        for r in 0..b {
            let range = mask.key_range(i0 + r);
            let s = range.start.clamp(jlo, jhi);
            let e = range.end.clamp(s, jhi);
            for j in (jlo..s).chain(e..jhi) {
                z[(j - jlo) * b + r] = T::NEG_INFINITY;
            }
        }
        // Pass 1b: boolean masks and bias, column by column.
        let overflow = &mut overflow[..b];
        overflow.fill(false);
        if pointwise || mask.bias.is_some() {
            for (j, col) in (jlo..).zip(z.chunks_exact_mut(b)) {
                for (r, zr) in col.iter_mut().enumerate() {
                    if *zr == T::NEG_INFINITY || overflow[r] {
                        continue;
                    }
                    let i = i0 + r;
                    if pointwise && !mask.allows(i, j) {
                        *zr = T::NEG_INFINITY;
                        continue;
                    }
                    if let Some(bias) = &mask.bias {
                        let (logit, bij) = (*zr, bias[(i, j)]);
                        *zr += bij;
                        // +∞, or −∞ from two finite terms, is an overflow, not a mask.
                        if *zr == T::INFINITY || (!zr.finite() && logit.finite() && bij.finite()) {
                            overflow[r] = true;
                        }
                    }
                }
            }
        }
        // Pass 1c: row maxima; errors in row order.
        let (max, sum) = (&mut max[..b], &mut sum[..b]);
        T::row_max(z, max);
        for r in 0..b {
            if overflow[r] {
                return Err(Stop::Mask(Error::Overflow {
                    what: "logit plus bias",
                }));
            }
            if max[r] == T::NEG_INFINITY {
                return Err(Stop::Mask(Error::FullyMaskedRow { row: i0 + r }));
            }
        }
        // Pass 2: exponentiate relative to the maximum (every term ≤ 1,
        // the maximum's exactly 1) and sum.
        T::exp_sum(z, max, sum);
        // Pass 3: normalise into the output rows; sum ≥ 1.
        T::normalise_into(z, sum, &mut out[jlo * n + i0..], n);
    }
    Ok(DMatrix::from_vec(n, m, out))
}

/// s·Q·Kᵀ by blocks of rows, from the inputs or from copies scaled to
/// max-abs 1 (with the combined factor applied afterwards).
struct Product<'a, T: Scalar> {
    q: Cow<'a, DMatrix<T>>,
    #[cfg(feature = "faer")]
    k: Cow<'a, DMatrix<T>>,
    /// Kᵀ for nalgebra's `gemm`, which takes no transposed operand.
    #[cfg(not(feature = "faer"))]
    kt: DMatrix<T>,
    alpha: T,
    post: [T; 2],
    rescaled: bool,
}

impl<'a, T: Scalar> Product<'a, T> {
    fn new(
        q: Cow<'a, DMatrix<T>>,
        k: Cow<'a, DMatrix<T>>,
        alpha: T,
        post: [T; 2],
        rescaled: bool,
    ) -> Self {
        Product {
            #[cfg(not(feature = "faer"))]
            kt: k.transpose(),
            q,
            #[cfg(feature = "faer")]
            k,
            alpha,
            post,
            rescaled,
        }
    }

    fn direct(q: &'a DMatrix<T>, k: &'a DMatrix<T>, scale: T) -> Self {
        Self::new(
            Cow::Borrowed(q),
            Cow::Borrowed(k),
            scale,
            [T::one(), T::one()],
            false,
        )
    }

    fn rescaled(q: &DMatrix<T>, k: &DMatrix<T>, scale: T) -> Self {
        let aq = q.amax();
        let ak = k.amax();
        let factor = scale * aq * ak;
        let (alpha, post) = if factor.finite() {
            (factor, [T::one(), T::one()])
        } else {
            (scale, [aq, ak])
        };
        Self::new(Cow::Owned(q / aq), Cow::Owned(k / ak), alpha, post, true)
    }

    /// Writes rows i0..i0+b, columns jlo..jlo+w of the logits into `z`
    /// (b×w, column-major); `false` if any is not finite.
    fn fill(&self, i0: usize, b: usize, jlo: usize, z: &mut [T]) -> bool {
        let w = z.len() / b;
        #[cfg(feature = "faer")]
        {
            let (n, d) = self.q.shape();
            let m = self.k.nrows();
            let lhs = faer::MatRef::from_column_major_slice(self.q.as_slice(), n, d).subrows(i0, b);
            let rhs = faer::MatRef::from_column_major_slice(self.k.as_slice(), m, d)
                .subrows(jlo, w)
                .transpose();
            let dst = faer::MatMut::from_column_major_slice_mut(z, b, w);
            faer::linalg::matmul::matmul(
                dst,
                faer::Accum::Replace,
                lhs,
                rhs,
                self.alpha,
                faer::Par::Seq,
            );
            crate::dense::clear_upper_state();
        }
        #[cfg(not(feature = "faer"))]
        {
            let mut dst = nalgebra::DMatrixViewMut::from_slice(z, b, w);
            dst.gemm(
                self.alpha,
                &self.q.rows(i0, b),
                &self.kt.columns(jlo, w),
                T::zero(),
            );
        }
        for p in self.post {
            if p != T::one() {
                T::scale_block(z, p);
            }
        }
        T::all_finite(z)
    }
}

/// `e`, unless s·QKᵀ overflows even when rescaled: then that overflow, which
/// is reported first.
fn overflow_or<T: Scalar>(q: &DMatrix<T>, k: &DMatrix<T>, scale: T, e: Error) -> Error {
    match transposed_logits(q, k, scale) {
        Err(overflow) => overflow,
        Ok(_) => e,
    }
}

/// s·K·Qᵀ (m×n): column i holds the logits of query i. Falls back to a
/// rescaled product when the direct one overflows. Only used on error paths.
fn transposed_logits<T: Scalar>(q: &DMatrix<T>, k: &DMatrix<T>, scale: T) -> Result<DMatrix<T>> {
    let mut zt = k * q.transpose();
    zt *= scale;
    if zt.iter().all(|x| x.finite()) {
        return Ok(zt);
    }
    let aq = q.amax();
    let ak = k.amax();
    let mut g = (k / ak) * (q / aq).transpose();
    let factor = scale * aq * ak;
    if factor.finite() {
        g *= factor;
    } else {
        g *= scale;
        g *= aq;
        g *= ak;
    }
    if g.iter().all(|x| x.finite()) {
        Ok(g)
    } else {
        Err(Error::Overflow {
            what: "scaled logits QKᵀ",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product backend of the build (faer or nalgebra) against a naive
    /// softmax, over several blocks with a partial last one.
    #[test]
    fn fused_blocks_match_a_naive_softmax_with_either_backend() {
        let (n, m, d) = (300, 2100, 8);
        let q = DMatrix::from_fn(n, d, |i, j| ((i * d + j) as f64 * 0.37).sin());
        let k = DMatrix::from_fn(m, d, |i, j| ((i * d + j) as f64 * 0.23).cos());
        for mask in [Mask::none(), Mask::causal(), Mask::sliding_window(7)] {
            let allowed = mask.to_bool(n, m).unwrap();
            let a = scaled_dot_product_with_scale(&q, &k, &mask, 0.5).unwrap();
            let z = &q * k.transpose() * 0.5;
            for i in 0..n {
                let e: Vec<f64> = (0..m)
                    .map(|j| {
                        if allowed[(i, j)] {
                            z[(i, j)].exp()
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let s: f64 = e.iter().sum();
                for j in 0..m {
                    assert!((a[(i, j)] - e[j] / s).abs() <= 4.0 * m as f64 * f64::EPSILON);
                }
            }
            let a32 = scaled_dot_product_with_scale(
                &q.map(|x| x as f32),
                &k.map(|x| x as f32),
                &Mask::<f32>::from_bool(allowed),
                0.5,
            )
            .unwrap();
            let err = (a32.map(f64::from) - &a).amax();
            assert!(err <= 4.0 * m as f64 * f64::from(f32::EPSILON), "{err:e}");
        }
    }
}
