//! Scaled dot-product softmax attention with masks.
//!
//! # Definition
//!
//! For queries Q (n×d), keys K (m×d), a [`Scale`] s (by default 1/√d) and a
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
//! rows at a time (b·m entries of about 1 MB, b a multiple of 8 between 128
//! and 512):
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
//! [`scaled_dot_product_into`] writes into a caller's n×m matrix instead of
//! a fresh one, which saves the allocation and its first-touch page faults
//! when many heads of one shape are computed in turn.
//!
//! # Examples
//!
//! ```
//! use attention_svd::attention::{scaled_dot_product, Mask, Scale};
//! use attention_svd::nalgebra::DMatrix;
//!
//! let q = DMatrix::from_fn(4, 8, |i, j| ((i * 8 + j) as f64 * 0.37).sin());
//! let k = DMatrix::from_fn(4, 8, |i, j| ((i * 8 + j) as f64 * 0.11).cos());
//! let a = scaled_dot_product(&q, &k, &Mask::causal(), Scale::default()).unwrap();
//! for i in 0..4 {
//!     assert!((a.row(i).sum() - 1.0).abs() < 1e-15);
//!     for j in i + 1..4 {
//!         assert_eq!(a[(i, j)], 0.0); // masked entries are exactly zero
//!     }
//! }
//! ```

mod fused;
mod mask;

pub use mask::Mask;

use nalgebra::DMatrix;

use crate::num::par::map_indices;
use crate::stack::HeadSource;
use crate::view::{AsMatrixRef, MatrixRef};
use crate::{Error, Result, Scalar, Stack, check};

use fused::{Product, Stop, fused_softmax};

/// The factor s of the logits s·QKᵀ: 1/√d by default (d the head
/// dimension), a fixed value, or either times a temperature factor. The
/// crate's one way to give a logit scale, wherever one is taken.
///
/// # Examples
///
/// ```
/// use attention_svd::attention::Scale;
///
/// assert_eq!(Scale::<f64>::default().value(16).unwrap(), 0.25);
/// assert_eq!(Scale::fixed(0.5_f64).value(16).unwrap(), 0.5);
/// // Inverse temperature 2 on top of 1/√d.
/// assert_eq!(Scale::<f64>::inv_sqrt_dim().times(2.0).value(16).unwrap(), 0.5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale<T> {
    factor: T,
    inv_sqrt_dim: bool,
}

impl<T: Scalar> Default for Scale<T> {
    /// 1/√d.
    fn default() -> Self {
        Self::inv_sqrt_dim()
    }
}

impl<T: Scalar> Scale<T> {
    /// s = 1/√d, the scale of every standard transformer (the default).
    pub fn inv_sqrt_dim() -> Self {
        Scale {
            factor: T::one(),
            inv_sqrt_dim: true,
        }
    }

    /// s = `value`, whatever d (e.g. the model's own `scaling` attribute).
    pub fn fixed(value: T) -> Self {
        Scale {
            factor: value,
            inv_sqrt_dim: false,
        }
    }

    /// This scale times `t` (an inverse temperature: t → 0 tends to uniform
    /// weights over the allowed keys, t → ∞ to one-hot rows).
    pub fn times(self, t: T) -> Self {
        Scale {
            factor: self.factor * t,
            ..self
        }
    }

    /// The value of s for head dimension d.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if s is not finite (or d = 0 with
    /// 1/√d).
    pub fn value(self, d: usize) -> Result<T> {
        let s = if self.inv_sqrt_dim {
            self.factor / T::from_count(d).sqrt()
        } else {
            self.factor
        };
        if s.finite() {
            Ok(s)
        } else {
            Err(Error::InvalidParameter {
                name: "scale",
                reason: "the logit scale must be finite",
            })
        }
    }
}

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
/// use attention_svd::nalgebra::dmatrix;
///
/// // Huge logits do not overflow: the row maximum is subtracted first.
/// let logits = dmatrix![1e30_f64, 0.0, f64::NEG_INFINITY];
/// let a = softmax_rows(&logits, &Mask::none()).unwrap();
/// assert_eq!(a, dmatrix![1.0, 0.0, 0.0]);
/// ```
pub fn softmax_rows<T: Scalar>(logits: &impl AsMatrixRef<T>, mask: &Mask<T>) -> Result<DMatrix<T>> {
    let logits = logits.as_matrix_ref();
    check::non_empty(&logits, "logits")?;
    let (n, m) = logits.shape();
    // The first offending entry in row-major order, as everywhere else.
    for i in 0..n {
        if let Some(j) = (0..m).find(|&j| {
            let x = logits.get(i, j);
            x.is_nan_value() || x == T::INFINITY
        }) {
            return Err(Error::NonFinite {
                what: "logits",
                row: i,
                col: j,
            });
        }
    }
    let resolved = mask.resolve(n, m)?;
    let src = logits.column_major();
    let copy = |i0: usize, b: usize, jlo: usize, z: &mut [T]| {
        for (j, col) in z.chunks_exact_mut(b).enumerate() {
            let at = (jlo + j) * n + i0;
            col.copy_from_slice(&src[at..at + b]);
        }
        true
    };
    // Zero-initialised (a zeroed allocation): masked keys need no writes.
    let mut out = vec![T::zero(); n * m];
    fused_softmax(n, m, &resolved, copy, &mut out, true).map_err(|stop| match stop {
        Stop::Mask(e) => e,
        Stop::Overflow => unreachable!("copied logits are never reported as overflowing"),
    })?;
    Ok(DMatrix::from_vec(n, m, out))
}

/// Attention weights softmax(s·QKᵀ + mask) for queries `q` (n×d) and keys
/// `k` (m×d): the n×m row-stochastic matrix of the module docs.
///
/// # Errors
///
/// [`Error::Empty`] if Q or K is empty (including d = 0),
/// [`Error::ShapeMismatch`] if their widths differ, [`Error::NonFinite`] for
/// NaN/±∞ in Q or K, [`Error::InvalidParameter`] for a non-finite scale,
/// [`Error::Overflow`] if s·QKᵀ cannot be represented, and the mask errors
/// of [`softmax_rows`].
///
/// # Examples
///
/// ```
/// use attention_svd::attention::{scaled_dot_product, Mask, Scale};
/// use attention_svd::nalgebra::dmatrix;
///
/// let q = dmatrix![1.0_f64, 0.0; 0.0, 1.0];
/// let k = dmatrix![1.0, 0.0; 0.0, 1.0; 1.0, 1.0];
/// let a = scaled_dot_product(&q, &k, &Mask::none(), Scale::default()).unwrap();
/// assert_eq!(a.shape(), (2, 3));
/// let e = (1.0 / 2f64.sqrt()).exp();
/// assert!((a[(0, 0)] - e / (2.0 * e + 1.0)).abs() < 1e-15);
/// // Zero scale: uniform attention.
/// let u = scaled_dot_product(&q, &k, &Mask::none(), Scale::fixed(0.0)).unwrap();
/// assert!(u.iter().all(|&x| (x - 1.0 / 3.0).abs() < 1e-15));
/// ```
pub fn scaled_dot_product<T: Scalar>(
    q: &impl AsMatrixRef<T>,
    k: &impl AsMatrixRef<T>,
    mask: &Mask<T>,
    scale: Scale<T>,
) -> Result<DMatrix<T>> {
    let (q, k) = (q.as_matrix_ref(), k.as_matrix_ref());
    let (n, m) = (q.nrows(), k.nrows());
    // Zero-initialised (a zeroed allocation): masked keys need no writes.
    let mut out = vec![T::zero(); n * m];
    attention_weights(&q, &k, mask, scale, &mut out, true)?;
    Ok(DMatrix::from_vec(n, m, out))
}

/// [`scaled_dot_product`] written into `out`, whose allocation is reused
/// when it is n×m already (it is replaced by a fresh n×m matrix
/// otherwise): for loops over many heads of one shape, this saves the
/// allocation and the first-touch page faults of a fresh result, which
/// for large n are a sizeable part of the time (`cargo bench --bench
/// attention -- into`). Every entry of `out` is written; on error its
/// contents are unspecified.
///
/// # Errors
///
/// Those of [`scaled_dot_product`].
///
/// # Examples
///
/// ```
/// use attention_svd::attention::{scaled_dot_product, scaled_dot_product_into, Mask, Scale};
/// use attention_svd::nalgebra::{dmatrix, DMatrix};
///
/// let q = dmatrix![1.0_f64, 0.0; 0.0, 1.0; 0.5, 0.5];
/// let k = dmatrix![1.0, 0.0; 0.0, 1.0; 1.0, 1.0];
/// let mut a = DMatrix::from_element(3, 3, f64::NAN); // stale contents
/// scaled_dot_product_into(&q, &k, &Mask::causal(), Scale::default(), &mut a).unwrap();
/// assert_eq!(a, scaled_dot_product(&q, &k, &Mask::causal(), Scale::default()).unwrap());
/// ```
pub fn scaled_dot_product_into<T: Scalar>(
    q: &impl AsMatrixRef<T>,
    k: &impl AsMatrixRef<T>,
    mask: &Mask<T>,
    scale: Scale<T>,
    out: &mut DMatrix<T>,
) -> Result<()> {
    let (q, k) = (q.as_matrix_ref(), k.as_matrix_ref());
    let shape = (q.nrows(), k.nrows());
    if out.shape() != shape {
        *out = DMatrix::zeros(shape.0, shape.1);
    }
    attention_weights(&q, &k, mask, scale, out.as_mut_slice(), false)
}

/// The attention weights into `out` (n·m entries, column-major; `zeroed`
/// if it holds zeros already).
fn attention_weights<T: Scalar>(
    q: &MatrixRef<'_, T>,
    k: &MatrixRef<'_, T>,
    mask: &Mask<T>,
    scale: Scale<T>,
    out: &mut [T],
    zeroed: bool,
) -> Result<()> {
    check::queries_keys(q, k)?;
    let scale = scale.value(q.ncols())?;
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
        match fused_softmax(n, m, &resolved, fill, out, zeroed) {
            Ok(()) => return Ok(()),
            Err(Stop::Mask(e)) => return Err(overflow_or(q, k, scale, e)),
            // The direct product overflowed: start again from inputs scaled
            // to max-abs 1, which succeeds whenever the scaled logits
            // themselves are representable.
            Err(Stop::Overflow) if !product.rescaled => product = Product::rescaled(q, k, scale),
            Err(Stop::Overflow) => {
                return Err(Error::Overflow {
                    what: "scaled logits QKᵀ",
                });
            }
        }
    }
}

/// Splits an n×(h·d) projection into its h heads of width d (columns
/// `[t·d, (t+1)·d)` for head t), the layout of PyTorch's
/// `x.view(n, h, d)`. The heads borrow `x`.
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
/// use attention_svd::nalgebra::DMatrix;
///
/// let x = DMatrix::from_fn(3, 6, |i, j| (10 * i + j) as f64);
/// let heads = split_heads(&x, 3).unwrap();
/// assert_eq!(heads.len(), 3);
/// assert_eq!(heads[1].get(2, 0), 22.0);
/// ```
pub fn split_heads<T: Scalar>(
    x: &impl AsMatrixRef<T>,
    heads: usize,
) -> Result<Vec<MatrixRef<'_, T>>> {
    let x = x.as_matrix_ref();
    check::non_empty(&x, "projection")?;
    if heads == 0 || !x.ncols().is_multiple_of(heads) {
        return Err(Error::InvalidParameter {
            name: "heads",
            reason: "the number of heads must be positive and divide the projection width",
        });
    }
    let (n, d) = (x.nrows(), x.ncols() / heads);
    Ok((0..heads)
        .map(|t| x.submatrix((0, t * d), (n, d)))
        .collect())
}

/// Multi-head attention weights: splits the query projection (n×h·d) and
/// key projection (m×h·d) into `heads` heads and returns the h n×m weight
/// matrices softmax(s·Q_t K_tᵀ + mask), one per head, in head order.
///
/// # Errors
///
/// As [`split_heads`] for either projection, [`Error::ShapeMismatch`] if the
/// widths differ, and as [`scaled_dot_product`] for each head.
///
/// # Examples
///
/// ```
/// use attention_svd::attention::{multi_head, Mask, Scale};
/// use attention_svd::nalgebra::DMatrix;
///
/// let q = DMatrix::from_fn(5, 8, |i, j| ((i + 2 * j) as f32).sin());
/// let k = DMatrix::from_fn(5, 8, |i, j| ((3 * i + j) as f32).cos());
/// let weights = multi_head(&q, &k, 2, &Mask::causal(), Scale::default()).unwrap();
/// assert_eq!(weights.len(), 2);
/// assert_eq!(weights[0].shape(), (5, 5));
/// ```
pub fn multi_head<T: Scalar>(
    q: &impl AsMatrixRef<T>,
    k: &impl AsMatrixRef<T>,
    heads: usize,
    mask: &Mask<T>,
    scale: Scale<T>,
) -> Result<Vec<DMatrix<T>>> {
    let (q, k) = (q.as_matrix_ref(), k.as_matrix_ref());
    if q.ncols() != k.ncols() {
        return Err(Error::ShapeMismatch {
            what: "key projection",
            expected: (k.nrows(), q.ncols()),
            found: k.shape(),
        });
    }
    let qs = split_heads(&q, heads)?;
    let ks = split_heads(&k, heads)?;
    qs.iter()
        .zip(&ks)
        .map(|(qh, kh)| scaled_dot_product(qh, kh, mask, scale))
        .collect()
}

/// One head's queries, keys, mask and scale.
pub(crate) type HeadInputs<'m, T> = (DMatrix<T>, DMatrix<T>, &'m Mask<T>, Scale<T>);

/// Attention computed head by head from per-head query and key stacks: a
/// [`HeadSource`] whose head (l, t) is
/// softmax(s_l·Q[l, t]·K[l, g(t)]ᵀ + mask), computed when read, in the
/// stacks' type. Q is [l, h, n, d], K is [l, h_kv, m, d].
///
/// Grouped-query attention: query head t reads key head g(t), by default
/// t / (h / h_kv) (Llama's `repeat_kv` layout; g(t) = t when h_kv = h), or
/// any map given with [`QkAttention::kv_group`]. The scale is one
/// [`Scale`] for every layer or one per layer
/// ([`QkAttention::layer_scales`], e.g. GPT-2's 1/(layer + 1) option). Its
/// [`precision`](HeadSource::precision) is the coarser of the queries' and
/// keys', the precision the logits inherit.
///
/// # Examples
///
/// ```
/// use attention_svd::attention::{Mask, QkAttention, Scale};
/// use attention_svd::{HeadSource, Stack};
///
/// let q = Stack::new([1, 4, 3, 2], (0..24).map(|x| (x as f32 * 0.3).sin()).collect()).unwrap();
/// let k = Stack::new([1, 2, 3, 2], (0..12).map(|x| (x as f32 * 0.7).cos()).collect()).unwrap();
/// let a = QkAttention::new(&q, &k, Mask::causal(), Scale::default()).unwrap();
/// assert_eq!(a.shape(), [1, 4, 3, 3]);
/// assert_eq!(a.head(0, 3).unwrap()[(0, 2)], 0.0);
/// ```
#[derive(Debug)]
pub struct QkAttention<'a, T, Q, K> {
    q: &'a Q,
    k: &'a K,
    mask: Mask<T>,
    scales: Vec<Scale<T>>,
    kv_group: Vec<usize>,
}

fn qk_shape_error(reason: &'static str) -> Error {
    Error::InvalidParameter {
        name: "queries/keys",
        reason,
    }
}

impl<'a, T, Q, K> QkAttention<'a, T, Q, K>
where
    T: Scalar,
    Q: HeadSource<Elem = T>,
    K: HeadSource<Elem = T>,
{
    /// Attention from queries `q` and keys `k` under `mask` with one scale.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if the layer counts or head dimensions
    /// differ, or h_kv does not divide h.
    pub fn new(q: &'a Q, k: &'a K, mask: Mask<T>, scale: Scale<T>) -> Result<Self> {
        let [l, h, _, d] = q.shape();
        let [kl, kh, _, kd] = k.shape();
        if kl != l || kd != d {
            return Err(qk_shape_error(
                "queries and keys must have the same layers and head dimension",
            ));
        }
        if kh == 0 || h % kh != 0 {
            return Err(qk_shape_error(
                "the number of key heads must divide the number of query heads",
            ));
        }
        Ok(QkAttention {
            q,
            k,
            mask,
            scales: vec![scale; l],
            kv_group: (0..h).map(|t| t / (h / kh)).collect(),
        })
    }

    /// One scale per layer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless there is one scale per layer.
    pub fn layer_scales(mut self, scales: Vec<Scale<T>>) -> Result<Self> {
        if scales.len() != self.q.shape()[0] {
            return Err(qk_shape_error("there must be one scale per layer"));
        }
        self.scales = scales;
        Ok(self)
    }

    /// Head (layer, head)'s queries, keys, mask and scale: the inputs of
    /// its attention, for routines that also need the logits.
    pub(crate) fn inputs(&self, layer: usize, head: usize) -> Result<HeadInputs<'_, T>> {
        let q = self.q.head(layer, head)?;
        let k = self.k.head(layer, self.kv_group[head])?;
        Ok((q, k, &self.mask, self.scales[layer]))
    }

    /// The key head of every query head.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless there is one entry per query
    /// head, each a key head.
    pub fn kv_group(mut self, group: Vec<usize>) -> Result<Self> {
        if group.len() != self.q.shape()[1] || group.iter().any(|&g| g >= self.k.shape()[1]) {
            return Err(qk_shape_error(
                "kv_group needs one key head (< the number of key heads) per query head",
            ));
        }
        self.kv_group = group;
        Ok(self)
    }
}

impl<T, Q, K> HeadSource for QkAttention<'_, T, Q, K>
where
    T: Scalar,
    Q: HeadSource<Elem = T>,
    K: HeadSource<Elem = T>,
{
    type Elem = T;

    fn shape(&self) -> [usize; 4] {
        let [l, h, n, _] = self.q.shape();
        [l, h, n, self.k.shape()[2]]
    }

    fn precision(&self) -> crate::Precision {
        self.q.precision().coarser(self.k.precision())
    }

    fn head(&self, layer: usize, head: usize) -> Result<DMatrix<T>> {
        let [l, h, _, _] = self.q.shape();
        if layer >= l || head >= h {
            return Err(Error::InvalidParameter {
                name: "layer/head",
                reason: "index out of range of the stack",
            });
        }
        let (q, k, mask, scale) = self.inputs(layer, head)?;
        scaled_dot_product(&q, &k, mask, scale)
    }
}

/// Attention weights for every (layer, head) of per-head query and key
/// stacks, materialised: the [`QkAttention`] of `q`, `k`, `mask` and
/// `scale` read into a [`Stack`], heads in parallel. For large models read
/// the [`QkAttention`] head by head instead.
///
/// # Errors
///
/// The errors of [`QkAttention::new`]; the errors of
/// [`scaled_dot_product`] and of the sources, wrapped in [`Error::AtHead`].
///
/// # Examples
///
/// ```
/// use attention_svd::attention::{scaled_dot_product_stack, Mask, Scale};
/// use attention_svd::Stack;
///
/// let q = Stack::new([1, 2, 3, 4], (0..24).map(|x| (x as f32 * 0.3).sin()).collect()).unwrap();
/// let k = Stack::new([1, 1, 3, 4], (0..12).map(|x| (x as f32 * 0.7).cos()).collect()).unwrap();
/// let a = scaled_dot_product_stack(&q, &k, &Mask::causal(), Scale::default()).unwrap();
/// assert_eq!(a.shape(), [1, 2, 3, 3]);
/// assert_eq!(a.head(0, 1).unwrap().get(0, 2), 0.0);
/// ```
pub fn scaled_dot_product_stack<T, Q, K>(
    q: &Q,
    k: &K,
    mask: &Mask<T>,
    scale: Scale<T>,
) -> Result<Stack<T>>
where
    T: Scalar,
    Q: HeadSource<Elem = T>,
    K: HeadSource<Elem = T>,
{
    let source = QkAttention::new(q, k, mask.clone(), scale)?;
    let [l, h, _, _] = source.shape();
    let mats = map_indices(l * h, |index| {
        let (layer, head) = (index / h, index % h);
        source.head(layer, head).map_err(|e| e.at_head(layer, head))
    })?;
    Stack::from_matrices(l, h, &mats)
}

/// `e`, unless s·QKᵀ overflows even when rescaled: then that overflow, which
/// is reported first. Only used on error paths.
fn overflow_or<T: Scalar>(q: &MatrixRef<'_, T>, k: &MatrixRef<'_, T>, scale: T, e: Error) -> Error {
    let (n, m) = (q.nrows(), k.nrows());
    let representable = |p: &Product<'_, T>| {
        let b = n.min(64);
        let mut z = vec![T::zero(); b * m];
        (0..n).step_by(b).all(|i0| {
            let rows = b.min(n - i0);
            p.fill(i0, rows, 0, &mut z[..rows * m])
        })
    };
    if representable(&Product::direct(q, k, scale))
        || representable(&Product::rescaled(q, k, scale))
    {
        e
    } else {
        Error::Overflow {
            what: "scaled logits QKᵀ",
        }
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
            let a = scaled_dot_product(&q, &k, &mask, Scale::fixed(0.5)).unwrap();
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
            let a32 = scaled_dot_product(
                &q.map(|x| x as f32),
                &k.map(|x| x as f32),
                &Mask::<f32>::from_bool(allowed),
                Scale::fixed(0.5),
            )
            .unwrap();
            let err = (a32.map(f64::from) - &a).amax();
            assert!(err <= 4.0 * m as f64 * f64::from(f32::EPSILON), "{err:e}");
        }
    }
}
