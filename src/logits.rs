//! The bilinear logits Z = s·QKᵀ: their SVD without forming them, their
//! rank against the attention's, and temperature sweeps.
//!
//! # Factored SVD
//!
//! For queries Q (n×d) and keys K (m×d), Z = s·QKᵀ has rank at most d (the
//! low-rank bottleneck of Bhojanapalli et al. 2020). Its SVD follows from
//! thin QR factorisations Q = Q₁R₁, K = Q₂R₂ and the SVD of the small core:
//!
//! ```text
//! Z = s·Q₁ (R₁R₂ᵀ) Q₂ᵀ,   R₁R₂ᵀ = U_c Σ V_cᵀ   ⇒   Z = (Q₁U_c)·(s·Σ)·(Q₂V_c)ᵀ
//! ```
//!
//! at O((n + m)·d² + d³) cost instead of O(n·m·min(n, m)) for the dense SVD
//! of the formed n×m product (TransformerLens's `FactoredMatrix` works the
//! same way). The result is a [`LowRank`] of rank r = min(n, m, d); the
//! remaining singular values of Z are exactly zero. Q₁, Q₂ have orthonormal
//! columns to working precision (Householder QR); the singular values carry
//! an absolute error O(max(n, m)·d·ε·‖Q‖₂‖K‖₂), the same order as forming
//! the product would commit (`docs/THEORY.md`, T17).
//!
//! # Logit rank against attention rank
//!
//! Softmax is applied entrywise (then normalised per row), which can raise
//! the rank from ≤ d up to n: [`logit_and_attention_ranks`] reports the
//! numerical and effective rank of both Z = QKᵀ/√d and A = softmax(Z + M).
//!
//! # Temperature sweep
//!
//! [`temperature_sweep`] computes A(s) = softmax(s·QKᵀ/√d + M) for a list of
//! scales s: s = 0 gives uniform rows (rank one without a mask, T13), s = 1
//! is the model's attention, s → ∞ tends to one-hot rows.
//!
//! # Examples
//!
//! ```
//! use attention_svd::logits::factored_svd;
//! use attention_svd::svd::{singular_values, Backend};
//! use nalgebra::DMatrix;
//!
//! let q = DMatrix::<f64>::from_fn(40, 4, |i, j| ((i * 4 + j) as f64 * 0.3).sin());
//! let k = DMatrix::<f64>::from_fn(30, 4, |i, j| ((i * 4 + j) as f64 * 0.7).cos());
//! let z = factored_svd(&q, &k, 0.5).unwrap();
//! assert_eq!(z.rank(), 4);
//! let dense = singular_values(&(&q * k.transpose() * 0.5), Backend::Auto).unwrap();
//! for (a, b) in z.singular_values().iter().zip(&dense) {
//!     assert!((a - b).abs() < 1e-12 * dense[0]);
//! }
//! assert!(dense[4] < 1e-12 * dense[0]); // rank ≤ d
//! ```

use nalgebra::DMatrix;

use crate::attention::{scaled_dot_product_with_scale, Mask};
use crate::lowrank::LowRank;
use crate::metrics::Summary;
use crate::svd::{svd, Backend};
use crate::{check, Error, Result, Scalar};

/// The SVD of Z = s·QKᵀ from the thin factors, never forming the n×m
/// product; see the [module docs](self). Rank r = min(n, m, d), σ sorted
/// non-increasing and ≥ 0 (|s| is taken into the singular values, the sign
/// of s into U).
///
/// # Errors
///
/// [`Error::Empty`] / [`Error::NonFinite`] for Q or K;
/// [`Error::ShapeMismatch`] if their widths differ;
/// [`Error::InvalidParameter`] for a non-finite scale; the SVD errors of the
/// d×d core.
pub fn factored_svd<T: Scalar>(q: &DMatrix<T>, k: &DMatrix<T>, scale: T) -> Result<LowRank<T>> {
    check::queries_keys(q, k, scale)?;
    // Scale both factors to max-abs 1 first: the QR and the core then cannot
    // overflow; the factors are restored in the singular values.
    let (aq, ak) = (q.amax(), k.amax());
    let (n, m) = (q.nrows(), k.nrows());
    if aq == T::zero() || ak == T::zero() || scale == T::zero() {
        let r = n.min(m).min(q.ncols());
        return Ok(LowRank::from_parts(
            DMatrix::identity(n, r),
            vec![T::zero(); r],
            DMatrix::identity(r, m),
        ));
    }
    let qr_q = (q / aq).qr();
    let qr_k = (k / ak).qr();
    let (q1, r1) = (qr_q.q(), qr_q.r());
    let (q2, r2) = (qr_k.q(), qr_k.r());
    let core = &r1 * r2.transpose();
    let f = svd(&core, Backend::Auto)?;
    let (uc, sc, vct) = f.into_parts();
    let factors = [aq, ak, scale.abs()];
    let mut sigma = Vec::with_capacity(sc.len());
    for s in sc {
        let v = scale_by(s, factors);
        if !v.finite() {
            return Err(Error::Overflow {
                what: "singular value of s·QKᵀ",
            });
        }
        sigma.push(v);
    }
    let mut u = q1 * uc;
    if scale < T::zero() {
        u.neg_mut();
    }
    let v_t = vct * q2.transpose();
    Ok(LowRank::from_parts(u, sigma, v_t))
}

/// x·f₁·f₂·f₃ with the factors applied in the order that keeps the partial
/// products closest to 1, so that no intermediate overflows or underflows
/// when the result itself is representable.
fn scale_by<T: Scalar>(x: T, factors: [T; 3]) -> T {
    if x == T::zero() {
        return x;
    }
    let mut v = x;
    let mut left: Vec<T> = factors.to_vec();
    while !left.is_empty() {
        // Growing values take the smallest factor next, shrinking ones the largest.
        let pick = if v.abs() >= T::one() {
            (0..left.len()).min_by(|&i, &j| left[i].partial_cmp(&left[j]).expect("finite"))
        } else {
            (0..left.len()).max_by(|&i, &j| left[i].partial_cmp(&left[j]).expect("finite"))
        }
        .expect("non-empty");
        v *= left.swap_remove(pick);
    }
    v
}

/// Numerical and effective ranks of the logits and of the attention.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct LogitAttentionRanks {
    /// Head dimension d (the bound on the logit rank).
    pub head_dim: usize,
    /// Numerical rank of Z = QKᵀ/√d (≤ min(n, m, d)).
    pub logit_numerical_rank: usize,
    /// Effective rank of Z.
    pub logit_effective_rank: f64,
    /// Numerical rank of A = softmax(Z + M).
    pub attention_numerical_rank: usize,
    /// Effective rank of A.
    pub attention_effective_rank: f64,
    /// Smallest r keeping 99 % of ‖A‖²_F.
    pub attention_energy_rank_99: usize,
}

/// The ranks of Z = QKᵀ/√d (from [`factored_svd`]) and of
/// A = softmax(Z + M) (values-only SVD with `backend`), with numpy's default
/// rank tolerance max(n, m)·ε·σ₁ for both.
///
/// # Errors
///
/// The errors of [`factored_svd`] and of
/// [`scaled_dot_product_with_scale`].
///
/// # Examples
///
/// ```
/// use attention_svd::attention::Mask;
/// use attention_svd::logits::logit_and_attention_ranks;
/// use attention_svd::svd::Backend;
/// use nalgebra::DMatrix;
///
/// let q = DMatrix::<f64>::from_fn(32, 2, |i, j| ((3 * i + j) as f64).sin());
/// let r = logit_and_attention_ranks(&q, &q, &Mask::none(), Backend::Auto).unwrap();
/// assert!(r.logit_numerical_rank <= 2);
/// assert!(r.attention_numerical_rank > r.logit_numerical_rank); // softmax raises the rank
/// ```
pub fn logit_and_attention_ranks<T: Scalar>(
    q: &DMatrix<T>,
    k: &DMatrix<T>,
    mask: &Mask<T>,
    backend: Backend,
) -> Result<LogitAttentionRanks> {
    check::non_empty(q, "queries")?;
    let d = q.ncols();
    let scale = T::one() / T::from_count(d).sqrt();
    let (n, m) = (q.nrows(), k.nrows());
    let z = factored_svd(q, k, scale)?;
    let mut zs = z.singular_values().to_vec();
    zs.resize(n.min(m), T::zero());
    let zsum = Summary::from_singular_values(zs, n, m)?;
    let a = scaled_dot_product_with_scale(q, k, mask, scale)?;
    let asum = crate::metrics::summarize(&a, backend)?;
    Ok(LogitAttentionRanks {
        head_dim: d,
        logit_numerical_rank: zsum.numerical_rank,
        logit_effective_rank: zsum.effective_rank.to_f64(),
        attention_numerical_rank: asum.numerical_rank,
        attention_effective_rank: asum.effective_rank.to_f64(),
        attention_energy_rank_99: asum.energy_rank_99,
    })
}

/// One point of a temperature sweep.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SweepPoint {
    /// The scale s multiplying QKᵀ/√d (1 = the model's attention).
    pub scale: f64,
    /// Effective rank of softmax(s·QKᵀ/√d + M).
    pub effective_rank: f64,
    /// Stable rank.
    pub stable_rank: f64,
    /// Numerical rank.
    pub numerical_rank: usize,
    /// Smallest r keeping 99 % of ‖A‖²_F.
    pub energy_rank_99: usize,
}

/// Ranks of softmax(s·QKᵀ/√d + M) for each scale s in `scales`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] for a non-finite scale; the errors of
/// [`scaled_dot_product_with_scale`] and of the SVD.
///
/// # Examples
///
/// ```
/// use attention_svd::attention::Mask;
/// use attention_svd::logits::temperature_sweep;
/// use attention_svd::svd::Backend;
/// use nalgebra::DMatrix;
///
/// let q = DMatrix::<f64>::from_fn(16, 4, |i, j| ((5 * i + j) as f64 * 0.9).sin());
/// let sweep = temperature_sweep(&q, &q, &Mask::none(), &[0.0, 1.0, 50.0], Backend::Auto).unwrap();
/// assert_eq!(sweep[0].numerical_rank, 1); // s = 0: uniform attention
/// assert!(sweep[2].effective_rank > sweep[0].effective_rank);
/// ```
pub fn temperature_sweep<T: Scalar>(
    q: &DMatrix<T>,
    k: &DMatrix<T>,
    mask: &Mask<T>,
    scales: &[T],
    backend: Backend,
) -> Result<Vec<SweepPoint>> {
    check::non_empty(q, "queries")?;
    let base = T::one() / T::from_count(q.ncols()).sqrt();
    scales
        .iter()
        .map(|&s| {
            if !s.finite() {
                return Err(Error::InvalidParameter {
                    name: "scale",
                    reason: "scales must be finite",
                });
            }
            let a = scaled_dot_product_with_scale(q, k, mask, s * base)?;
            let sum = crate::metrics::summarize(&a, backend)?;
            Ok(SweepPoint {
                scale: s.to_f64(),
                effective_rank: sum.effective_rank.to_f64(),
                stable_rank: sum.stable_rank.to_f64(),
                numerical_rank: sum.numerical_rank,
                energy_rank_99: sum.energy_rank_99,
            })
        })
        .collect()
}
