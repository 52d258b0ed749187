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
//! same way). The result is an [`Svd`] of rank r = min(n, m, d); the
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
//! [`temperature_sweep`] computes A(t) = softmax(t·s·QKᵀ + M) for a list of
//! inverse temperatures t (s the [`Scale`], 1/√d by default): t = 0 gives
//! uniform rows (rank one without a mask, T13), t = 1 is the model's
//! attention, t → ∞ tends to one-hot rows.
//!
//! Every routine takes a [`LogitParams`]: the scale and the SVD backend.
//!
//! # Examples
//!
//! ```
//! use attention_svd::attention::Scale;
//! use attention_svd::logits::{factored_svd, LogitParams};
//! use attention_svd::nalgebra::DMatrix;
//! use attention_svd::svd::{singular_values, Backend};
//!
//! let q = DMatrix::<f64>::from_fn(40, 4, |i, j| ((i * 4 + j) as f64 * 0.3).sin());
//! let k = DMatrix::<f64>::from_fn(30, 4, |i, j| ((i * 4 + j) as f64 * 0.7).cos());
//! let z = factored_svd(&q, &k, LogitParams::default().scale(Scale::fixed(0.5))).unwrap();
//! assert_eq!(z.rank(), 4);
//! let dense = singular_values(&(&q * k.transpose() * 0.5), Backend::Auto).unwrap();
//! for (a, b) in z.singular_values().iter().zip(dense.iter()) {
//!     assert!((a - b).abs() < 1e-12 * dense[0]);
//! }
//! assert!(dense[4] < 1e-12 * dense[0]); // rank ≤ d
//! ```

use crate::attention::{Mask, QkAttention, Scale, scaled_dot_product};
use crate::metrics::{RankTolerance, SummaryParams, effective_rank, numerical_rank, summarize};
use crate::num::par::map_indices;
use crate::num::scale::scale_back;
use crate::stack::HeadSource;
use crate::svd::{Backend, Svd, svd};
use crate::view::AsMatrixRef;
use crate::{Error, Result, Scalar, check};

/// Parameters of the routines of this module: the logit [`Scale`] (default
/// 1/√d) and the SVD backend (default [`Backend::Auto`]).
///
/// # Examples
///
/// ```
/// use attention_svd::attention::Scale;
/// use attention_svd::logits::LogitParams;
/// use attention_svd::svd::Backend;
/// let p = LogitParams::default().scale(Scale::fixed(0.125_f32)).backend(Backend::jacobi());
/// # let _ = p;
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogitParams<T> {
    scale: Scale<T>,
    backend: Backend,
}

impl<T: Scalar> Default for LogitParams<T> {
    fn default() -> Self {
        LogitParams {
            scale: Scale::default(),
            backend: Backend::Auto,
        }
    }
}

impl<T: Scalar> LogitParams<T> {
    /// Sets the logit scale.
    pub fn scale(mut self, scale: Scale<T>) -> Self {
        self.scale = scale;
        self
    }

    /// Sets the SVD backend.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
}

/// The SVD of Z = s·QKᵀ from the thin factors, never forming the n×m
/// product; see the [module docs](self). Rank r = min(n, m, d), σ sorted
/// non-increasing and ≥ 0 (|s| is taken into the singular values, the sign
/// of s into U); [`Svd::method`] is that of the r×r core's SVD.
///
/// # Errors
///
/// [`Error::Empty`] / [`Error::NonFinite`] for Q or K;
/// [`Error::ShapeMismatch`] if their widths differ;
/// [`Error::InvalidParameter`] for a non-finite scale; [`Error::Overflow`]
/// if a singular value exceeds the type's range; the SVD errors of the core.
pub fn factored_svd<T: Scalar>(
    q: &impl AsMatrixRef<T>,
    k: &impl AsMatrixRef<T>,
    params: LogitParams<T>,
) -> Result<Svd<T>> {
    let (q, k) = (q.as_matrix_ref(), k.as_matrix_ref());
    check::queries_keys(&q, &k)?;
    let scale = params.scale.value(q.ncols())?;
    // Both factors scaled to max-abs 1 first: the QRs and the core then
    // cannot overflow; the factors are restored in the singular values.
    let nonzero = |x: T| if x == T::zero() { T::one() } else { x };
    let (aq, ak) = (nonzero(q.amax()), nonzero(k.amax()));
    let qr_q = q.map(|x| x / aq).qr();
    let qr_k = k.map(|x| x / ak).qr();
    let (q1, r1) = (qr_q.q(), qr_q.r());
    let (q2, r2) = (qr_k.q(), qr_k.r());
    let core = &r1 * r2.transpose();
    let f = svd(&core, params.backend)?;
    let method = f.method();
    let (uc, mut sigma, vct) = f.into_parts();
    scale_back(&mut sigma, &[aq, ak, scale.abs()])?;
    let mut u = q1 * uc;
    if scale < T::zero() {
        u.neg_mut();
    }
    let v_t = vct * q2.transpose();
    Ok(Svd::from_parts(u, sigma, v_t, method))
}

/// Numerical and effective ranks of the logits and of the attention.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LogitAttentionRanks {
    /// Head dimension d (the bound on the logit rank).
    pub head_dim: usize,
    /// Numerical rank of Z = s·QKᵀ (≤ min(n, m, d)).
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

/// The ranks of Z = s·QKᵀ (from [`factored_svd`]) and of
/// A = softmax(Z + M) (values-only SVD), with numpy's default rank
/// tolerance max(n, m)·ε·σ₁ for both.
///
/// # Errors
///
/// The errors of [`factored_svd`] and of
/// [`scaled_dot_product`].
///
/// # Examples
///
/// ```
/// use attention_svd::attention::Mask;
/// use attention_svd::logits::{logit_and_attention_ranks, LogitParams};
/// use attention_svd::nalgebra::DMatrix;
///
/// let q = DMatrix::<f64>::from_fn(32, 2, |i, j| ((3 * i + j) as f64).sin());
/// let r = logit_and_attention_ranks(&q, &q, &Mask::none(), LogitParams::default()).unwrap();
/// assert!(r.logit_numerical_rank <= 2);
/// assert!(r.attention_numerical_rank > r.logit_numerical_rank); // softmax raises the rank
/// ```
pub fn logit_and_attention_ranks<T: Scalar>(
    q: &impl AsMatrixRef<T>,
    k: &impl AsMatrixRef<T>,
    mask: &Mask<T>,
    params: LogitParams<T>,
) -> Result<LogitAttentionRanks> {
    let (q, k) = (q.as_matrix_ref(), k.as_matrix_ref());
    let z = factored_svd(&q, &k, params)?;
    // The r = min(n, m, d) singular values of Z; the others are exactly 0.
    let zs = z.singular_values();
    let shape = (q.nrows(), k.nrows());
    let a = scaled_dot_product(&q, &k, mask, params.scale)?;
    let asum = summarize(&a, SummaryParams::default().backend(params.backend))?;
    Ok(LogitAttentionRanks {
        head_dim: q.ncols(),
        logit_numerical_rank: numerical_rank(zs, shape, RankTolerance::default())?,
        logit_effective_rank: effective_rank(zs)?.to_f64(),
        attention_numerical_rank: asum.numerical_rank,
        attention_effective_rank: asum.effective_rank.to_f64(),
        attention_energy_rank_99: asum.energy_rank_99,
    })
}

/// One point of a temperature sweep.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct SweepPoint {
    /// The inverse temperature t multiplying the logits (1 = the model's
    /// attention).
    pub scale: f64,
    /// Effective rank of softmax(t·s·QKᵀ + M).
    pub effective_rank: f64,
    /// Stable rank.
    pub stable_rank: f64,
    /// Numerical rank.
    pub numerical_rank: usize,
    /// Smallest r keeping 99 % of ‖A‖²_F.
    pub energy_rank_99: usize,
}

/// Ranks of softmax(t·s·QKᵀ + M) for each inverse temperature t in
/// `temperatures` (s the scale of `params`).
///
/// # Errors
///
/// [`Error::InvalidParameter`] for a non-finite t or scale; the errors of
/// [`scaled_dot_product`] and of the SVD.
///
/// # Examples
///
/// ```
/// use attention_svd::attention::Mask;
/// use attention_svd::logits::{temperature_sweep, LogitParams};
/// use attention_svd::nalgebra::DMatrix;
///
/// let q = DMatrix::<f64>::from_fn(16, 4, |i, j| ((5 * i + j) as f64 * 0.9).sin());
/// let sweep = temperature_sweep(&q, &q, &Mask::none(), &[0.0, 1.0, 50.0], LogitParams::default()).unwrap();
/// assert_eq!(sweep[0].numerical_rank, 1); // t = 0: uniform attention
/// assert!(sweep[2].effective_rank > sweep[0].effective_rank);
/// ```
pub fn temperature_sweep<T: Scalar>(
    q: &impl AsMatrixRef<T>,
    k: &impl AsMatrixRef<T>,
    mask: &Mask<T>,
    temperatures: &[T],
    params: LogitParams<T>,
) -> Result<Vec<SweepPoint>> {
    let (q, k) = (q.as_matrix_ref(), k.as_matrix_ref());
    temperatures
        .iter()
        .map(|&t| {
            if !t.finite() {
                return Err(Error::InvalidParameter {
                    name: "temperature",
                    reason: "inverse temperatures must be finite",
                });
            }
            let a = scaled_dot_product(&q, &k, mask, params.scale.times(t))?;
            let sum = summarize(&a, SummaryParams::default().backend(params.backend))?;
            Ok(SweepPoint {
                scale: t.to_f64(),
                effective_rank: sum.effective_rank.to_f64(),
                stable_rank: sum.stable_rank.to_f64(),
                numerical_rank: sum.numerical_rank,
                energy_rank_99: sum.energy_rank_99,
            })
        })
        .collect()
}

/// The logit ranks and the temperature sweep of one head of a model.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct HeadSweep {
    /// Layer index.
    pub layer: usize,
    /// Head index.
    pub head: usize,
    /// Logit rank against attention rank at the model's scale.
    pub ranks: LogitAttentionRanks,
    /// One point per inverse temperature.
    pub sweep: Vec<SweepPoint>,
}

/// [`logit_and_attention_ranks`] and [`temperature_sweep`] for every head
/// of a model given by its queries and keys ([`QkAttention`]: mask,
/// per-layer scales and grouped-query heads included), heads in parallel.
///
/// # Errors
///
/// The errors of the two routines and of the sources, wrapped in
/// [`Error::AtHead`].
///
/// # Examples
///
/// ```
/// use attention_svd::attention::{Mask, QkAttention, Scale};
/// use attention_svd::logits::model_sweep;
/// use attention_svd::svd::Backend;
/// use attention_svd::Stack;
///
/// let q = Stack::new([1, 2, 8, 2], (0..32).map(|x| (x as f64 * 0.37).sin()).collect()).unwrap();
/// let model = QkAttention::new(&q, &q, Mask::none(), Scale::default()).unwrap();
/// let s = model_sweep(&model, &[0.0, 1.0], Backend::Auto).unwrap();
/// assert_eq!(s.len(), 2);
/// assert_eq!(s[0].sweep[0].numerical_rank, 1); // t = 0: uniform
/// ```
pub fn model_sweep<T, Q, K>(
    model: &QkAttention<'_, T, Q, K>,
    temperatures: &[T],
    backend: Backend,
) -> Result<Vec<HeadSweep>>
where
    T: Scalar,
    Q: HeadSource<Elem = T>,
    K: HeadSource<Elem = T>,
{
    let [layers, heads, _, _] = model.shape();
    map_indices(layers * heads, |index| {
        let (layer, head) = (index / heads, index % heads);
        let one = || {
            let (q, k, mask, scale) = model.inputs(layer, head)?;
            let params = LogitParams::default().scale(scale).backend(backend);
            Ok(HeadSweep {
                layer,
                head,
                ranks: logit_and_attention_ranks(&q, &k, mask, params)?,
                sweep: temperature_sweep(&q, &k, mask, temperatures, params)?,
            })
        };
        one().map_err(|e: Error| e.at_head(layer, head))
    })
}
