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
//! # Complexity
//!
//! O(n·m·d) for QKᵀ (a nalgebra matrix product) plus O(n·m) for the masked
//! softmax; memory O(n·m).
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

mod mask;

pub use mask::Mask;

use nalgebra::DMatrix;

use crate::{check, Error, Result, Scalar};

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
    // Work on the transpose so that each query's logits are contiguous.
    let mut zt = logits.transpose();
    softmax_columns_in_place(&mut zt, mask)?;
    Ok(zt.transpose())
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
    let mut zt = transposed_logits(q, k, scale)?;
    softmax_columns_in_place(&mut zt, mask)?;
    Ok(zt.transpose())
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

/// s·K·Qᵀ (m×n): column i holds the logits of query i. Falls back to a
/// rescaled product when the direct one overflows.
fn transposed_logits<T: Scalar>(q: &DMatrix<T>, k: &DMatrix<T>, scale: T) -> Result<DMatrix<T>> {
    let mut zt = k * q.transpose();
    zt *= scale;
    if zt.iter().all(|x| x.finite()) {
        return Ok(zt);
    }
    // The product (or the scaling) overflowed. Compute with inputs scaled to
    // max-abs 1, then apply the combined factor: this succeeds whenever the
    // scaled logits themselves are representable.
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

/// Masked stable softmax of each column of `zt` (m keys × n queries), in place.
fn softmax_columns_in_place<T: Scalar>(zt: &mut DMatrix<T>, mask: &Mask<T>) -> Result<()> {
    let (m, n) = zt.shape();
    let resolved = mask.resolve(n, m)?;
    let pointwise = resolved.has_pointwise();
    // Column-major storage: column i (query i's logits) is the i-th chunk.
    for (i, z) in zt.as_mut_slice().chunks_exact_mut(m).enumerate() {
        let range = resolved.key_range(i);
        // Pass 1: apply mask and bias, find the row maximum.
        let mut max = T::NEG_INFINITY;
        for (j, zj) in z.iter_mut().enumerate() {
            let allowed = range.contains(&j) && (!pointwise || resolved.allows(i, j));
            if !allowed {
                *zj = T::NEG_INFINITY;
                continue;
            }
            if let Some(b) = &resolved.bias {
                let (logit, bias) = (*zj, b[(i, j)]);
                *zj += bias;
                // +∞, or −∞ from two finite terms, is an overflow, not a mask.
                if *zj == T::INFINITY || (!zj.finite() && logit.finite() && bias.finite()) {
                    return Err(Error::Overflow {
                        what: "logit plus bias",
                    });
                }
            }
            if *zj > max {
                max = *zj;
            }
        }
        if max == T::NEG_INFINITY {
            return Err(Error::FullyMaskedRow { row: i });
        }
        // Pass 2: exponentiate relative to the maximum; every term is ≤ 1.
        let mut sum = T::zero();
        for zj in z.iter_mut() {
            *zj = if *zj == T::NEG_INFINITY {
                T::zero()
            } else {
                (*zj - max).exp()
            };
            sum += *zj;
        }
        // Pass 3: normalise; sum ≥ 1 because the maximum contributes exp(0).
        for zj in z.iter_mut() {
            *zj /= sum;
        }
    }
    Ok(())
}
