//! KV-cache compression fidelity: what a rank-r projection of a head's keys
//! (or values, or of its attention) costs in logits, attention and output,
//! for every r at once, fitted on calibration data and judged both on that
//! data (in-sample) and on other data (held-out).
//!
//! # Methods
//!
//! For one head with logit scale s, queries Q (n×d), keys K (m×d), values
//! V (m×d_v), a mask with allowed set 𝓜 and bias B, the attention is
//! A = softmax(S + B) with S = s·QKᵀ on 𝓜, and the output is A·V. A
//! [`Method`] replaces it by an approximation, fitted on calibration data
//! Q_c, K_c, V_c (the rows of every calibration prompt stacked):
//!
//! ```text
//! KeyOnly        cache K·W_r, queries Q·W_r,  S̃ = s·Q W_r W_rᵀ Kᵀ
//!                W_r = top-r right singular vectors of K_c
//! KqSvd          cache K·B_r, queries Q·A_r,  S̃ = s·Q A_r B_rᵀ Kᵀ, with
//!                Q_c = U_q Σ_q V_qᵀ (its p numerically nonzero σ),
//!                K_c V_q Σ_q = U′ Σ′ Yᵀ,   A = V_q Σ_q⁻¹ Y,   B = V_q Σ_q Y
//!                (first r columns): Q_c A_r B_rᵀ K_cᵀ is the best rank-r
//!                approximation of Q_c K_cᵀ (docs/THEORY.md, T19)
//! Values         Ṽ = V·P_r P_rᵀ, P_r = top-r right singular vectors of V_c
//! KeysAndValues  KeyOnly at rank r and Values at rank r_v = ⌈r·d_v/d⌉
//!                (the same fraction of each half of the cache)
//! AttentionTruncation   Ã = A_r, the Eckart–Young truncation of A itself
//!                (the floor of every rank-r approximation of A, T21)
//! ```
//!
//! # What is reported, for every r
//!
//! With Ã = softmax(S̃ + B) on 𝓜 (exactly 0 off 𝓜):
//!
//! ```text
//! logit error      ‖S − S̃‖_F / ‖S‖_F over 𝓜            (None for truncation)
//! attention error  ‖A − Ã‖_F / ‖A‖_F
//! TV               ½‖aᵢ − ãᵢ‖₁ per row: mean and max     (≤ 1, T23)
//! KL               mean over rows of KL(aᵢ‖ãᵢ) = Σⱼ aᵢⱼ ln(aᵢⱼ/ãᵢⱼ)
//! output error     ‖AV − ÃṼ‖_F / ‖AV‖_F
//! cached fraction  r/d of the keys and r_v/d_v of the values per token
//! ```
//!
//! A relative error whose reference norm is 0 (all-zero logits or output)
//! is reported as the absolute error instead, so no figure is ever NaN.
//! For the softmax methods the KL divergence is computed from the logits,
//! KL(aᵢ‖ãᵢ) = Σⱼ aᵢⱼ(zᵢⱼ − z̃ᵢⱼ) + lse(z̃ᵢ) − lse(zᵢ) (lse the
//! log-sum-exp over 𝓜), which is finite for finite logits (clamped at 0
//! against rounding).
//!
//! **Attention truncation** does not produce distributions: A_r can have
//! negative entries, nonzero entries off 𝓜 and rows that do not sum to 1.
//! Its attention error and output error are those of the raw A_r (so the
//! attention error is exactly the Eckart–Young value √(Σ_{i>r}σᵢ²)/‖A‖_F,
//! T21, and the output error is that of A_r·V, what a rank-r factorisation
//! of A computes). For TV and KL each row is mapped back to a distribution:
//! entries off 𝓜 and negative entries are set to 0 and the row is
//! divided by its sum; a row whose sum is then 0 becomes uniform over its
//! allowed keys. A row with ãᵢⱼ = 0 where aᵢⱼ > 0 has KL = +∞: the mean
//! is then [`Divergence::Infinite`], which counts such rows.
//!
//! # Fitting and evaluation
//!
//! Projections are fitted once per head (per KV head under grouped-query
//! attention: on the stacked queries of every query head sharing it) with
//! one SVD each — of K_c (KeyOnly), of Q_c and of the m_c×p matrix
//! K_c V_q Σ_q (KqSvd), of V_c (Values), of A (AttentionTruncation) — and
//! reused for every r: S̃ grows by one rank-one term s·(Q a_r)(K b_r)ᵀ
//! per r, A_r by one term σ_r u_r v_rᵀ. Shorter inputs (fewer rows than
//! columns) are padded with zero rows so that every basis is complete and
//! r runs to d. In-sample figures are computed on each calibration prompt
//! and pooled (sums of squares, row means over all rows); held-out figures
//! likewise over the evaluation prompts.
//!
//! The projections minimise the *unmasked* calibration logit error (the
//! all-pairs objective ‖Q_c(I − M)K_cᵀ‖_F): KQ-SVD's in-sample optimality
//! (T19) holds for one calibration prompt without mask, not for the error
//! restricted to a causal 𝓜.
//!
//! # Complexity
//!
//! Fitting: O((n_c + m_c)·d² + d³). Evaluation on an n×m set, for each of
//! the two softmax methods, per r: three passes over n×m buffers (the
//! rank-one logit update with the mask and the row maxima; the
//! exponentials and row sums; the figures) and one product E·V of
//! O(n·m·d_v) (Ã·V from the unnormalised exponentials, rows divided after);
//! KeysAndValues reuses KeyOnly's Ã·V. So O(d·n·m·d_v) in all: exact
//! figures at every r need Ã_r·V at every r, d products of the size of A·V
//! per method and set, each as costly as the QKᵀ of one
//! [`scaled_dot_product`](crate::attention::scaled_dot_product) when
//! d_v = d (`docs/PERFORMANCE.md` measures the sweep at that floor). Values
//! is O(n·m·d_v + n·d_v²); truncation is one dense SVD of A,
//! O(n·m·min(n, m)), plus O(n·m) per r. The sweeps of different methods and
//! sets run in parallel (feature `parallel`). Memory: a few n×m buffers
//! per sweep.
//!
//! # Accuracy
//!
//! Every figure is computed from quantities accurate to O(max(n, m, d)·ε)
//! relative to the norms involved (backward-stable SVDs, T12); the errors
//! at r = d of the key methods are of that size, not exactly 0.
//!
//! # Examples
//!
//! ```
//! use attention_svd::attention::{Mask, Scale};
//! use attention_svd::compression::{head_fidelity, Method, Qkv, Target};
//! use attention_svd::nalgebra::DMatrix;
//! use attention_svd::svd::Backend;
//!
//! # fn main() -> Result<(), attention_svd::Error> {
//! let m = |rows: usize, cols: usize, f: f64| {
//!     DMatrix::from_fn(rows, cols, |i, j| ((i * cols + j) as f64 * f).sin())
//! };
//! let (qc, kc, vc) = (m(24, 4, 0.37), m(24, 4, 0.73), m(24, 3, 0.11));
//! let (q, k, v) = (m(16, 4, 0.41), m(16, 4, 0.67), m(16, 3, 0.13));
//! let curves = head_fidelity(
//!     &[Qkv::new(&qc, &kc, &vc)],
//!     &[Qkv::new(&q, &k, &v)],
//!     &Mask::causal(),
//!     Scale::default(),
//!     &Method::ALL,
//!     Backend::Auto,
//! )?;
//! let kq = &curves[1];
//! assert_eq!(kq.method, Method::KqSvd);
//! assert_eq!(kq.held_out.points.len(), 4); // r = 1..=d
//! assert!(kq.in_sample.at(4)?.tv_mean < 1e-12); // exact at r = d
//! let target = Target::output_error(0.05)?;
//! let r = kq.held_out.rank_for(target);
//! assert!(r.is_some_and(|r| r <= 4));
//! # Ok(())
//! # }
//! ```

use nalgebra::DMatrix;

use crate::attention::{Mask, Scale};
use crate::num::dense::product_into;
use crate::num::par::map_indices;
use crate::stack::HeadSource;
use crate::svd::{Backend, svd};
use crate::view::{AsMatrixRef, MatrixRef};
use crate::{Error, Result, Scalar, check};

/// A way to compress a head; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Method {
    /// Keys projected on the top-r right singular vectors of the
    /// calibration keys (queries on the same vectors).
    KeyOnly,
    /// The optimal rank-r factorisation of the calibration logits (KQ-SVD,
    /// Lesens, Rakhshan & Rabusseau 2026): keys times B_r, queries times A_r.
    KqSvd,
    /// Values projected on the top-r right singular vectors of the
    /// calibration values; logits and attention unchanged.
    Values,
    /// KeyOnly at rank r and Values at rank ⌈r·d_v/d⌉.
    KeysAndValues,
    /// The best rank-r approximation of the attention matrix itself
    /// (an oracle floor, not a cache method).
    AttentionTruncation,
}

impl Method {
    /// Every method, in the order of the module docs.
    pub const ALL: [Method; 5] = [
        Method::KeyOnly,
        Method::KqSvd,
        Method::Values,
        Method::KeysAndValues,
        Method::AttentionTruncation,
    ];

    /// A short name: `"key_only"`, `"kq_svd"`, `"values"`,
    /// `"keys_and_values"`, `"attention_truncation"`.
    pub fn name(self) -> &'static str {
        match self {
            Method::KeyOnly => "key_only",
            Method::KqSvd => "kq_svd",
            Method::Values => "values",
            Method::KeysAndValues => "keys_and_values",
            Method::AttentionTruncation => "attention_truncation",
        }
    }
}

/// One head's queries Q (n×d), keys K (m×d) and values V (m×d_v), borrowed.
#[derive(Clone, Debug)]
pub struct Qkv<'a, T: nalgebra::Scalar> {
    q: MatrixRef<'a, T>,
    k: MatrixRef<'a, T>,
    v: MatrixRef<'a, T>,
}

impl<'a, T: Scalar> Qkv<'a, T> {
    /// Borrows Q, K and V (checked when used).
    pub fn new(
        q: &'a impl AsMatrixRef<T>,
        k: &'a impl AsMatrixRef<T>,
        v: &'a impl AsMatrixRef<T>,
    ) -> Self {
        Qkv {
            q: q.as_matrix_ref(),
            k: k.as_matrix_ref(),
            v: v.as_matrix_ref(),
        }
    }
}

/// A mean KL divergence: finite, or +∞ because some rows have ãᵢⱼ = 0
/// where aᵢⱼ > 0 (possible only for attention truncation, or when a
/// weight underflows).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Divergence {
    /// The mean over rows, ≥ 0.
    Finite(f64),
    /// +∞: `rows` rows have an infinite divergence.
    Infinite {
        /// Number of rows with KL(aᵢ‖ãᵢ) = +∞.
        rows: usize,
    },
}

/// The fidelity of one method at one rank r.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Point {
    /// The rank r (of the keys, the values or the attention).
    pub rank: usize,
    /// Fraction of the keys cached per token (r/d; 1 for Values; `None`
    /// for attention truncation, which caches no keys).
    pub key_fraction: Option<f64>,
    /// Fraction of the values cached per token (r_v/d_v; 1 for the key
    /// methods; `None` for attention truncation).
    pub value_fraction: Option<f64>,
    /// ‖S − S̃‖_F/‖S‖_F over the allowed entries (`None` for attention
    /// truncation, which has no logits).
    pub logit_error: Option<f64>,
    /// ‖A − Ã‖_F/‖A‖_F (raw A_r for truncation).
    pub attention_error: f64,
    /// Mean over rows of ½‖aᵢ − ãᵢ‖₁.
    pub tv_mean: f64,
    /// Maximum over rows of ½‖aᵢ − ãᵢ‖₁.
    pub tv_max: f64,
    /// Mean over rows of KL(aᵢ‖ãᵢ).
    pub kl_mean: Divergence,
    /// ‖AV − ÃṼ‖_F/‖AV‖_F.
    pub output_error: f64,
}

impl Point {
    /// The fraction of this head's KV cache (keys and values, d + d_v
    /// numbers per token) still stored, or `None` for attention truncation.
    pub fn cache_fraction(&self, head_dim: usize, value_dim: usize) -> Option<f64> {
        let (k, v) = (self.key_fraction?, self.value_fraction?);
        let (d, dv) = (head_dim as f64, value_dim as f64);
        Some((k * d + v * dv) / (d + dv))
    }
}

/// A fidelity target: bounds on the mean TV and/or the output error, each
/// in (0, 1). A point meets it when it meets every bound given.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Target {
    /// Bound on [`Point::tv_mean`].
    pub mean_tv: Option<f64>,
    /// Bound on [`Point::output_error`].
    pub output_error: Option<f64>,
}

fn check_target(t: f64) -> Result<f64> {
    if t > 0.0 && t < 1.0 {
        Ok(t)
    } else {
        Err(Error::InvalidParameter {
            name: "target",
            reason: "a fidelity target must lie in (0, 1)",
        })
    }
}

impl Target {
    /// Mean TV ≤ `t`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless 0 < t < 1.
    pub fn mean_tv(t: f64) -> Result<Self> {
        Ok(Target {
            mean_tv: Some(check_target(t)?),
            output_error: None,
        })
    }

    /// Output error ≤ `t`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless 0 < t < 1.
    pub fn output_error(t: f64) -> Result<Self> {
        Ok(Target {
            mean_tv: None,
            output_error: Some(check_target(t)?),
        })
    }

    /// Mean TV ≤ `tv` and output error ≤ `output`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless both lie in (0, 1).
    pub fn both(tv: f64, output: f64) -> Result<Self> {
        Ok(Target {
            mean_tv: Some(check_target(tv)?),
            output_error: Some(check_target(output)?),
        })
    }

    /// Whether `p` meets every bound of this target.
    pub fn is_met(&self, p: &Point) -> bool {
        self.mean_tv.is_none_or(|t| p.tv_mean <= t)
            && self.output_error.is_none_or(|t| p.output_error <= t)
    }
}

/// The points of one method for r = 1, 2, …, in order.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Curve {
    /// `points[r − 1]` is rank r.
    pub points: Vec<Point>,
}

impl Curve {
    /// The point of rank r.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRank`] unless 1 ≤ r ≤ the curve's length.
    pub fn at(&self, r: usize) -> Result<&Point> {
        check::rank(r, 1, self.points.len())?;
        Ok(&self.points[r - 1])
    }

    /// The smallest r whose point meets `target`, or `None`.
    pub fn rank_for(&self, target: Target) -> Option<usize> {
        self.points
            .iter()
            .find(|p| target.is_met(p))
            .map(|p| p.rank)
    }
}

/// The curves of one method: in-sample (on the calibration data) and
/// held-out (on the evaluation data).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Fidelity {
    /// The method.
    pub method: Method,
    /// Evaluated on the calibration prompts.
    pub in_sample: Curve,
    /// Evaluated on the evaluation prompts.
    pub held_out: Curve,
}

// ---------------------------------------------------------------------------
// Fitting

/// The rows of `mats` stacked (all with `cols` columns), padded with zero
/// rows up to `cols` rows so that a thin SVD gives a complete basis.
fn stack_rows<T: Scalar>(mats: &[&MatrixRef<'_, T>], cols: usize) -> DMatrix<T> {
    let rows: usize = mats.iter().map(|a| a.nrows()).sum();
    let mut out = DMatrix::<T>::zeros(rows.max(cols), cols);
    let mut at = 0;
    for a in mats {
        for i in 0..a.nrows() {
            for j in 0..cols {
                out[(at + i, j)] = a.get(i, j);
            }
        }
        at += a.nrows();
    }
    out
}

/// σ (length c) and the c×c right singular vectors of an r×c matrix with
/// r ≥ c.
fn right_basis<T: Scalar>(x: &DMatrix<T>, backend: Backend) -> Result<(Vec<T>, DMatrix<T>)> {
    let f = svd(x, backend)?;
    let (_, sigma, v_t) = f.into_parts();
    Ok((sigma, v_t.transpose()))
}

/// What is fitted on the calibration data, per method.
#[derive(Debug)]
struct Fitted<T> {
    d: usize,
    dv: usize,
    /// KeyOnly: W (d×d), used for both sides.
    keys: Option<DMatrix<T>>,
    /// KqSvd: A (d×p) for the queries, B (d×p) for the keys.
    kq: Option<(DMatrix<T>, DMatrix<T>)>,
    /// Values (and KeysAndValues): P (d_v×d_v).
    values: Option<DMatrix<T>>,
}

fn needs(methods: &[Method], any: &[Method]) -> bool {
    methods.iter().any(|m| any.contains(m))
}

/// Fits the projections of `methods` on stacked calibration queries, keys
/// and values (already validated).
fn fit<T: Scalar>(
    queries: &[&MatrixRef<'_, T>],
    keys: &[&MatrixRef<'_, T>],
    values: &[&MatrixRef<'_, T>],
    methods: &[Method],
    backend: Backend,
) -> Result<Fitted<T>> {
    let d = keys[0].ncols();
    let dv = values[0].ncols();
    let kc = stack_rows(keys, d);
    let key_basis = if needs(methods, &[Method::KeyOnly, Method::KeysAndValues]) {
        Some(right_basis(&kc, backend)?.1)
    } else {
        None
    };
    let kq = if needs(methods, &[Method::KqSvd]) {
        let qc = stack_rows(queries, d);
        let (sq, vq) = right_basis(&qc, backend)?;
        // Numerical rank of Q_c (numpy's default tolerance).
        let tol = sq[0] * T::from_count(qc.nrows().max(d)) * T::EPSILON;
        let p = sq.iter().take_while(|&&s| s > tol && s > T::zero()).count();
        let vqp = vq.columns(0, p).into_owned();
        let mut vs = vqp.clone();
        let mut vsi = vqp;
        for (j, &sj) in sq.iter().take(p).enumerate() {
            vs.column_mut(j).scale_mut(sj);
            vsi.column_mut(j).scale_mut(T::one() / sj);
        }
        if p == 0 {
            Some((DMatrix::zeros(d, 0), DMatrix::zeros(d, 0)))
        } else {
            // X′ = K_c V_q Σ_q (m_c×p); its right singular vectors Y are
            // the left ones of X = Σ_q V_qᵀ K_cᵀ.
            let xp = &kc * &vs;
            let xp = if xp.nrows() < p {
                let mut padded = DMatrix::zeros(p, p);
                padded.rows_mut(0, xp.nrows()).copy_from(&xp);
                padded
            } else {
                xp
            };
            let (_, y) = right_basis(&xp, backend)?;
            Some((vsi * &y, vs * y))
        }
    } else {
        None
    };
    let values = if needs(methods, &[Method::Values, Method::KeysAndValues]) {
        Some(right_basis(&stack_rows(values, dv), backend)?.1)
    } else {
        None
    };
    Ok(Fitted {
        d,
        dv,
        keys: key_basis,
        kq,
        values,
    })
}

// ---------------------------------------------------------------------------
// Evaluation

/// Pooled sums of one method at one rank over one or more sets.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    logit_err2: f64,
    logit_norm2: f64,
    att_err2: f64,
    att_norm2: f64,
    tv_sum: f64,
    tv_max: f64,
    kl_sum: f64,
    kl_infinite: usize,
    rows: usize,
    out_err2: f64,
    out_norm2: f64,
}

impl Sums {
    fn add(&mut self, o: &Sums) {
        self.logit_err2 += o.logit_err2;
        self.logit_norm2 += o.logit_norm2;
        self.att_err2 += o.att_err2;
        self.att_norm2 += o.att_norm2;
        self.tv_sum += o.tv_sum;
        self.tv_max = self.tv_max.max(o.tv_max);
        self.kl_sum += o.kl_sum;
        self.kl_infinite += o.kl_infinite;
        self.rows += o.rows;
        self.out_err2 += o.out_err2;
        self.out_norm2 += o.out_norm2;
    }
}

fn relative(err2: f64, norm2: f64) -> f64 {
    if norm2 > 0.0 {
        (err2 / norm2).sqrt()
    } else {
        err2.sqrt()
    }
}

/// The per-rank description of a method's point, apart from its sums.
#[derive(Clone, Copy, Debug)]
struct Shape {
    rank: usize,
    key_fraction: Option<f64>,
    value_fraction: Option<f64>,
    logits: bool,
}

fn point(shape: Shape, s: &Sums) -> Point {
    let rows = s.rows.max(1) as f64;
    Point {
        rank: shape.rank,
        key_fraction: shape.key_fraction,
        value_fraction: shape.value_fraction,
        logit_error: shape.logits.then(|| relative(s.logit_err2, s.logit_norm2)),
        attention_error: relative(s.att_err2, s.att_norm2),
        tv_mean: s.tv_sum / rows,
        tv_max: s.tv_max,
        kl_mean: if s.kl_infinite > 0 {
            Divergence::Infinite {
                rows: s.kl_infinite,
            }
        } else {
            Divergence::Finite(s.kl_sum / rows)
        },
        output_error: relative(s.out_err2, s.out_norm2),
    }
}

/// One evaluation set with its exact logits, attention and output.
struct EvalSet<T> {
    n: usize,
    m: usize,
    q: DMatrix<T>,
    k: DMatrix<T>,
    v: DMatrix<T>,
    scale: T,
    /// Column-major n×m: allowed (query, key) pairs (bias −∞ counts as masked).
    allowed: Vec<bool>,
    /// Every entry allowed (no mask).
    all_allowed: bool,
    /// The 0/1 indicator of `allowed`, column-major.
    weight: Vec<T>,
    /// Column-major n×m bias on the allowed entries (0 elsewhere), if any.
    bias: Option<Vec<T>>,
    /// Exact logits s·QKᵀ (no bias), column-major.
    z: Vec<T>,
    /// Exact attention, column-major.
    a: Vec<T>,
    /// Row log-sum-exp of the exact biased logits over the allowed keys.
    lse: Vec<T>,
    /// A·V (n×d_v).
    av: DMatrix<T>,
    logit_norm2: f64,
    att_norm2: f64,
    out_norm2: f64,
}

fn frob2<T: Scalar>(x: &[T]) -> f64 {
    crate::num::sum::compensated_sum(x.iter().map(|&v| v.to_f64() * v.to_f64()))
}

/// Masked, biased logits `zt` softmaxed into `out`; returns the row
/// log-sum-exps.
fn softmax_into<T: Scalar>(set: &EvalSet<T>, zt: &[T], out: &mut [T]) -> Result<Vec<T>> {
    let n = set.n;
    for (idx, (o, &zv)) in out.iter_mut().zip(zt).enumerate() {
        *o = if set.allowed[idx] {
            match &set.bias {
                Some(b) => zv + b[idx],
                None => zv,
            }
        } else {
            T::NEG_INFINITY
        };
    }
    let mut max = vec![T::zero(); n];
    let mut sum = vec![T::zero(); n];
    T::row_max(out, &mut max);
    for (i, &mx) in max.iter().enumerate() {
        if mx == T::NEG_INFINITY {
            return Err(Error::FullyMaskedRow { row: i });
        }
        if !mx.finite() {
            return Err(Error::Overflow {
                what: "logit plus bias",
            });
        }
    }
    T::exp_sum(out, &max, &mut sum);
    for col in out.chunks_exact_mut(n) {
        for (x, &s) in col.iter_mut().zip(&sum) {
            *x /= s;
        }
    }
    Ok(max.iter().zip(&sum).map(|(&m, &s)| m + s.ln()).collect())
}

fn eval_set<T: Scalar>(x: &Qkv<'_, T>, mask: &Mask<T>, scale: Scale<T>) -> Result<EvalSet<T>> {
    check::queries_keys(&x.q, &x.k)?;
    check::matrix(&x.v, "values")?;
    let (n, d) = x.q.shape();
    let m = x.k.nrows();
    if x.v.nrows() != m {
        return Err(Error::ShapeMismatch {
            what: "values",
            expected: (m, x.v.ncols()),
            found: x.v.shape(),
        });
    }
    let s = scale.value(d)?;
    let allowed_m = mask.to_bool(n, m)?;
    let resolved = mask.resolve(n, m)?;
    let allowed: Vec<bool> = allowed_m.as_slice().to_vec();
    let bias = resolved.bias.map(|b| {
        b.as_slice()
            .iter()
            .zip(&allowed)
            .map(|(&v, &ok)| if ok { v } else { T::zero() })
            .collect::<Vec<T>>()
    });
    let (q, k, v) = (x.q.to_dmatrix(), x.k.to_dmatrix(), x.v.to_dmatrix());
    let kt = k.transpose();
    let mut z = vec![T::zero(); n * m];
    product_into(
        &mut z,
        (n, m),
        s,
        &q.as_matrix_ref(),
        false,
        &kt.as_matrix_ref(),
    );
    if !T::all_finite(&z) {
        return Err(Error::Overflow {
            what: "scaled logits QKᵀ",
        });
    }
    let mut set = EvalSet {
        n,
        m,
        q,
        k,
        v,
        scale: s,
        all_allowed: allowed.iter().all(|&ok| ok),
        weight: allowed
            .iter()
            .map(|&ok| if ok { T::one() } else { T::zero() })
            .collect(),
        allowed,
        bias,
        z: Vec::new(),
        a: Vec::new(),
        lse: Vec::new(),
        av: DMatrix::zeros(0, 0),
        logit_norm2: 0.0,
        att_norm2: 0.0,
        out_norm2: 0.0,
    };
    let mut a = vec![T::zero(); n * m];
    set.lse = softmax_into(&set, &z, &mut a)?;
    set.logit_norm2 = crate::num::sum::compensated_sum(
        z.iter()
            .zip(&set.allowed)
            .filter(|(_, ok)| **ok)
            .map(|(&v, _)| v.to_f64() * v.to_f64()),
    );
    set.att_norm2 = frob2(&a);
    let dv = set.v.ncols();
    let mut av = DMatrix::<T>::zeros(n, dv);
    product_into(
        av.as_mut_slice(),
        (n, dv),
        T::one(),
        &MatrixRef::from_column_major_slice(&a, n, m).expect("n×m buffer"),
        false,
        &set.v.as_matrix_ref(),
    );
    set.out_norm2 = frob2(av.as_slice());
    set.av = av;
    set.z = z;
    set.a = a;
    Ok(set)
}

/// Sums of the attention-side figures of a softmax approximation with
/// logits `zt`, unnormalised attention `e` (Ã = diag(`inv`)·E) and row
/// log-sum-exps `lse_t`. Branch-free over the entries: off 𝓜 both
/// attentions are exactly 0, and the logit difference is weighted by the
/// 0/1 indicator of 𝓜.
fn attention_sums<T: Scalar>(set: &EvalSet<T>, zt: &[T], e: &[T], inv: &[T], lse_t: &[T]) -> Sums {
    let n = set.n;
    let mut tv = vec![T::zero(); n];
    let mut kl = vec![T::zero(); n];
    let mut le2 = vec![T::zero(); n];
    let mut ae2 = vec![T::zero(); n];
    for c in 0..set.m {
        let r = c * n..(c + 1) * n;
        let (z, zt, a, e, w) = (
            &set.z[r.clone()],
            &zt[r.clone()],
            &set.a[r.clone()],
            &e[r.clone()],
            &set.weight[r],
        );
        for i in 0..n {
            let dz = z[i] - zt[i];
            let da = a[i] - e[i] * inv[i];
            le2[i] += w[i] * dz * dz;
            ae2[i] += da * da;
            tv[i] += da.abs();
            kl[i] += a[i] * dz;
        }
    }
    let mut s = Sums {
        rows: n,
        logit_norm2: set.logit_norm2,
        att_norm2: set.att_norm2,
        out_norm2: set.out_norm2,
        ..Sums::default()
    };
    let half = T::lit(0.5);
    for i in 0..n {
        let t = (tv[i] * half).to_f64();
        s.tv_sum += t;
        s.tv_max = s.tv_max.max(t);
        s.kl_sum += (kl[i] + lse_t[i] - set.lse[i]).max(T::zero()).to_f64();
        s.logit_err2 += le2[i].to_f64();
        s.att_err2 += ae2[i].to_f64();
    }
    s
}

fn diff2<T: Scalar>(x: &[T], y: &[T]) -> f64 {
    crate::num::sum::compensated_sum(x.iter().zip(y).map(|(&a, &b)| {
        let d = (a - b).to_f64();
        d * d
    }))
}

/// Buffers of one key sweep, reused for every r.
struct SweepBuffers<T: nalgebra::Scalar> {
    /// S̃_r = s·Q A_r B_rᵀ Kᵀ on every entry, column-major n×m.
    zt: Vec<T>,
    /// exp(S̃_r + B − max) on 𝓜 and 0 elsewhere: Ã_r before the division
    /// by the row sums.
    e: Vec<T>,
    max: Vec<T>,
    sum: Vec<T>,
    /// Ã_r·V (n×d_v).
    atv: DMatrix<T>,
}

impl<T: Scalar> SweepBuffers<T> {
    fn new(n: usize, m: usize, dv: usize) -> Self {
        SweepBuffers {
            zt: vec![T::zero(); n * m],
            e: vec![T::zero(); n * m],
            max: vec![T::zero(); n],
            sum: vec![T::zero(); n],
            atv: DMatrix::zeros(n, dv),
        }
    }
}

/// One rank of a key sweep: S̃ ← S̃ + s·(Q a)(K b)ᵀ for `term = (Q a, K b)`,
/// then Ã = softmax(S̃ + B) on 𝓜, its sums against the exact attention,
/// and Ã·V in `buf.atv`.
///
/// Three passes over the n×m buffers and one product: the update, the
/// masking and the row maxima in one pass; the exponentials and row sums
/// in the second; Ã·V as (E·V) with its rows divided by the sums, so that Ã
/// itself is never stored normalised; the figures in the third.
fn key_step<T: Scalar>(
    set: &EvalSet<T>,
    buf: &mut SweepBuffers<T>,
    term: Option<(&[T], &[T])>,
) -> Result<Sums> {
    let n = set.n;
    buf.max.fill(T::NEG_INFINITY);
    let mut finite = true;
    for c in 0..set.m {
        let cols = c * n..(c + 1) * n;
        let zt = &mut buf.zt[cols.clone()];
        if let Some((qa, kb)) = term {
            let f = set.scale * kb[c];
            for (x, &y) in zt.iter_mut().zip(qa) {
                *x += f * y;
            }
        }
        finite &= T::all_finite(zt);
        let e = &mut buf.e[cols.clone()];
        match &set.bias {
            None if set.all_allowed => e.copy_from_slice(zt),
            None => {
                for ((x, &z), &ok) in e.iter_mut().zip(zt.iter()).zip(&set.allowed[cols]) {
                    *x = if ok { z } else { T::NEG_INFINITY };
                }
            }
            Some(b) => {
                for (((x, &z), &ok), &bv) in e
                    .iter_mut()
                    .zip(zt.iter())
                    .zip(&set.allowed[cols.clone()])
                    .zip(&b[cols])
                {
                    *x = if ok { z + bv } else { T::NEG_INFINITY };
                }
            }
        }
        for (mx, &x) in buf.max.iter_mut().zip(e.iter()) {
            *mx = if x > *mx { x } else { *mx };
        }
    }
    if !finite {
        return Err(Error::Overflow {
            what: "compressed logits",
        });
    }
    for (i, &mx) in buf.max.iter().enumerate() {
        if mx == T::NEG_INFINITY {
            return Err(Error::FullyMaskedRow { row: i });
        }
        if !mx.finite() {
            return Err(Error::Overflow {
                what: "compressed logit plus bias",
            });
        }
    }
    T::exp_sum(&mut buf.e, &buf.max, &mut buf.sum);
    let dv = set.v.ncols();
    product_into(
        buf.atv.as_mut_slice(),
        (n, dv),
        T::one(),
        &MatrixRef::from_column_major_slice(&buf.e, n, set.m).expect("n×m buffer"),
        false,
        &set.v.as_matrix_ref(),
    );
    let inv: Vec<T> = buf.sum.iter().map(|&s| T::one() / s).collect();
    for col in buf.atv.as_mut_slice().chunks_exact_mut(n) {
        for (x, &w) in col.iter_mut().zip(&inv) {
            *x *= w;
        }
    }
    let lse_t: Vec<T> = buf
        .max
        .iter()
        .zip(&buf.sum)
        .map(|(&m, &s)| m + s.ln())
        .collect();
    let mut s = attention_sums(set, &buf.zt, &buf.e, &inv, &lse_t);
    s.out_err2 = diff2(set.av.as_slice(), buf.atv.as_slice());
    Ok(s)
}

/// Sweep of a key method (S̃_r = s·Σ_{j≤r} (Q a_j)(K b_j)ᵀ) over r = 1..=d
/// on one set: the key method's sums and, with a value basis P, those of
/// KeysAndValues.
fn key_sweep<T: Scalar>(
    set: &EvalSet<T>,
    a: &DMatrix<T>,
    b: &DMatrix<T>,
    d: usize,
    value_basis: Option<&DMatrix<T>>,
) -> Result<(Vec<Sums>, Vec<Sums>)> {
    let (n, m) = (set.n, set.m);
    let dv = set.v.ncols();
    let qa = &set.q * a;
    let kb = &set.k * b;
    let p = a.ncols();
    let mut buf = SweepBuffers::new(n, m, dv);
    let avp = value_basis.map(|w| &set.av * w);
    let mut keys: Vec<Sums> = Vec::with_capacity(d);
    let mut kv = Vec::new();
    for r in 1..=d {
        if r <= p {
            let (qa_r, kb_r) = (qa.column(r - 1), kb.column(r - 1));
            keys.push(key_step(
                set,
                &mut buf,
                Some((qa_r.as_slice(), kb_r.as_slice())),
            )?);
        } else if r == 1 {
            // Nothing fitted (all-zero calibration queries): S̃ = 0.
            keys.push(key_step(set, &mut buf, None)?);
        } else {
            // No direction left (r > rank of the fit): S̃ is unchanged.
            let last = keys[r - 2];
            keys.push(last);
        }
        if let (Some(w), Some(avp)) = (value_basis, &avp) {
            // Õ = Ã V P_{r_v} P_{r_v}ᵀ; in the orthonormal basis P the error
            // splits into the kept columns (AVP − ÃVP) and the dropped ones (AVP).
            let y = &buf.atv * w;
            let rv = (r * dv).div_ceil(d).min(dv);
            let (ys, ps) = (y.as_slice(), avp.as_slice());
            let mut s = keys[r - 1];
            s.out_err2 = diff2(&ps[..rv * n], &ys[..rv * n]) + frob2(&ps[rv * n..]);
            kv.push(s);
        }
    }
    Ok((keys, kv))
}

/// Values at every r_v = 1..=d_v on one set.
fn value_sweep<T: Scalar>(set: &EvalSet<T>, w: &DMatrix<T>) -> Vec<Sums> {
    let dv = set.v.ncols();
    let avp = &set.av * w;
    let n = set.n;
    let norms: Vec<f64> = (0..dv)
        .map(|j| frob2(&avp.as_slice()[j * n..(j + 1) * n]))
        .collect();
    (1..=dv)
        .map(|r| Sums {
            rows: set.n,
            logit_norm2: set.logit_norm2,
            att_norm2: set.att_norm2,
            out_norm2: set.out_norm2,
            out_err2: crate::num::sum::compensated_sum(norms[r..].iter().copied()),
            ..Sums::default()
        })
        .collect()
}

/// The rows of a rank-r approximation `ar` of A mapped back to
/// distributions (module docs): entries off 𝓜 and negative entries set to
/// 0, each row divided by its sum, a row of sum 0 uniform over its allowed
/// keys.
fn project_rows<T: Scalar>(set: &EvalSet<T>, ar: &[T]) -> Vec<T> {
    let n = set.n;
    let mut sum = vec![T::zero(); n];
    let mut count = vec![0usize; n];
    let mut x: Vec<T> = ar
        .iter()
        .zip(&set.allowed)
        .enumerate()
        .map(|(idx, (&v, &ok))| {
            if ok {
                let c = v.max(T::zero());
                sum[idx % n] += c;
                count[idx % n] += 1;
                c
            } else {
                T::zero()
            }
        })
        .collect();
    for (idx, xi) in x.iter_mut().enumerate() {
        let i = idx % n;
        if set.allowed[idx] {
            *xi = if sum[i] > T::zero() {
                *xi / sum[i]
            } else {
                T::one() / T::from_count(count[i])
            };
        }
    }
    x
}

/// Attention truncation at every r = 1..=min(d, n, m) on one set.
fn truncation_sweep<T: Scalar>(set: &EvalSet<T>, d: usize, backend: Backend) -> Result<Vec<Sums>> {
    let (n, m) = (set.n, set.m);
    let a = MatrixRef::from_column_major_slice(&set.a, n, m).expect("n×m buffer");
    let f = svd(&a, backend)?;
    let (u, sigma, v_t) = f.into_parts();
    let k = sigma.len();
    // ‖AV − A_rV‖² = Σ_{j>r} σⱼ²‖vⱼᵀV‖² (U orthonormal).
    let g = &v_t * &set.v;
    let tail: Vec<f64> = (0..k)
        .map(|j| {
            let sj = sigma[j].to_f64();
            sj * sj * frob2(&g.row(j).iter().copied().collect::<Vec<T>>())
        })
        .collect();
    let ranks = d.min(k);
    let mut ar = vec![T::zero(); n * m];
    let mut out = Vec::with_capacity(ranks);
    for r in 1..=ranks {
        let j = r - 1;
        for c in 0..m {
            let f = sigma[j] * v_t[(j, c)];
            for (x, &y) in ar[c * n..(c + 1) * n].iter_mut().zip(u.column(j).iter()) {
                *x += f * y;
            }
        }
        let x = project_rows(set, &ar);
        let mut tv = vec![T::zero(); n];
        let mut infinite = vec![false; n];
        for (idx, (&xi, &ai)) in x.iter().zip(&set.a).enumerate() {
            let i = idx % n;
            tv[i] += (ai - xi).abs();
            if xi == T::zero() && ai > T::zero() {
                infinite[i] = true;
            }
        }
        let inf_rows = infinite.iter().filter(|&&x| x).count();
        let mut kl_sum = 0.0;
        // One row at +∞ makes the mean +∞: the logarithms are needed only
        // when every row is finite.
        if inf_rows == 0 {
            let mut kl = vec![T::zero(); n];
            for (idx, (&xi, &ai)) in x.iter().zip(&set.a).enumerate() {
                if ai > T::zero() {
                    kl[idx % n] += ai * (ai / xi).ln();
                }
            }
            kl_sum = kl.iter().map(|x| x.max(T::zero()).to_f64()).sum();
        }
        let half = T::lit(0.5);
        let tvs: Vec<f64> = tv.iter().map(|&t| (t * half).to_f64()).collect();
        out.push(Sums {
            logit_err2: 0.0,
            logit_norm2: 0.0,
            att_err2: diff2(&set.a, &ar),
            att_norm2: set.att_norm2,
            tv_sum: tvs.iter().sum(),
            tv_max: tvs.iter().fold(0.0, |a, &b| a.max(b)),
            kl_sum,
            kl_infinite: inf_rows,
            rows: n,
            out_err2: crate::num::sum::compensated_sum(tail[r..].iter().copied()),
            out_norm2: set.out_norm2,
        });
    }
    Ok(out)
}

/// The pooled sums per rank of every method over `sets`.
fn evaluate<T: Scalar>(
    fitted: &Fitted<T>,
    sets: &[EvalSet<T>],
    methods: &[Method],
    backend: Backend,
) -> Result<Vec<Curve>> {
    let (d, dv) = (fitted.d, fitted.dv);
    let pool = |per_set: Vec<Vec<Sums>>| -> Vec<Sums> {
        let len = per_set.iter().map(Vec::len).min().unwrap_or(0);
        (0..len)
            .map(|r| {
                let mut s = Sums::default();
                for p in &per_set {
                    s.add(&p[r]);
                }
                s
            })
            .collect()
    };
    // The sweeps are independent: one job per (method, set), run in
    // parallel (`parallel` feature), pooled in set order afterwards.
    #[derive(Clone, Copy)]
    enum Job {
        Keys(usize),
        Kq(usize),
        Truncation(usize),
    }
    let value_basis = needs(methods, &[Method::KeysAndValues])
        .then_some(fitted.values.as_ref())
        .flatten();
    let mut jobs = Vec::new();
    for i in 0..sets.len() {
        if fitted.keys.is_some() {
            jobs.push(Job::Keys(i));
        }
        if fitted.kq.is_some() {
            jobs.push(Job::Kq(i));
        }
        if needs(methods, &[Method::AttentionTruncation]) {
            jobs.push(Job::Truncation(i));
        }
    }
    let done = map_indices(jobs.len(), |j| match jobs[j] {
        Job::Keys(i) => {
            let w = fitted.keys.as_ref().expect("fitted");
            key_sweep(&sets[i], w, w, d, value_basis)
        }
        Job::Kq(i) => {
            let (a, b) = fitted.kq.as_ref().expect("fitted");
            Ok((key_sweep(&sets[i], a, b, d, None)?.0, Vec::new()))
        }
        Job::Truncation(i) => Ok((truncation_sweep(&sets[i], d, backend)?, Vec::new())),
    })?;
    let (mut k_all, mut kv_all, mut kq_all, mut tr_all) = (vec![], vec![], vec![], vec![]);
    for (job, (first, second)) in jobs.iter().zip(done) {
        match job {
            Job::Keys(_) => {
                k_all.push(first);
                kv_all.push(second);
            }
            Job::Kq(_) => kq_all.push(first),
            Job::Truncation(_) => tr_all.push(first),
        }
    }
    let key_only = fitted.keys.is_some().then(|| pool(k_all));
    let kv = (fitted.keys.is_some() && value_basis.is_some()).then(|| pool(kv_all));
    let kq = fitted.kq.is_some().then(|| pool(kq_all));
    let values = fitted
        .values
        .as_ref()
        .map(|w| pool(sets.iter().map(|s| value_sweep(s, w)).collect()));
    let truncation = needs(methods, &[Method::AttentionTruncation]).then(|| pool(tr_all));
    let frac = |r: usize, of: usize| Some(r as f64 / of as f64);
    let curve = |sums: &[Sums], shape: &dyn Fn(usize) -> Shape| Curve {
        points: sums
            .iter()
            .enumerate()
            .map(|(i, s)| point(shape(i + 1), s))
            .collect(),
    };
    methods
        .iter()
        .map(|&method| {
            let c = match method {
                Method::KeyOnly | Method::KqSvd => {
                    let sums = if method == Method::KeyOnly {
                        key_only.as_ref()
                    } else {
                        kq.as_ref()
                    };
                    curve(sums.expect("fitted"), &|r| Shape {
                        rank: r,
                        key_fraction: frac(r, d),
                        value_fraction: Some(1.0),
                        logits: true,
                    })
                }
                Method::Values => curve(values.as_ref().expect("fitted"), &|r| Shape {
                    rank: r,
                    key_fraction: Some(1.0),
                    value_fraction: frac(r, dv),
                    logits: true,
                }),
                Method::KeysAndValues => curve(kv.as_ref().expect("fitted"), &|r| Shape {
                    rank: r,
                    key_fraction: frac(r, d),
                    value_fraction: frac((r * dv).div_ceil(d).min(dv), dv),
                    logits: true,
                }),
                Method::AttentionTruncation => {
                    curve(truncation.as_ref().expect("computed"), &|r| Shape {
                        rank: r,
                        key_fraction: None,
                        value_fraction: None,
                        logits: false,
                    })
                }
            };
            Ok(c)
        })
        .collect()
}

/// Checks the widths of every set against d and d_v.
fn check_widths<T: Scalar>(sets: &[Qkv<'_, T>], d: usize, dv: usize) -> Result<()> {
    for x in sets {
        if x.q.ncols() != d {
            return Err(Error::ShapeMismatch {
                what: "queries",
                expected: (x.q.nrows(), d),
                found: x.q.shape(),
            });
        }
        if x.k.ncols() != d {
            return Err(Error::ShapeMismatch {
                what: "keys",
                expected: (x.k.nrows(), d),
                found: x.k.shape(),
            });
        }
        if x.v.ncols() != dv {
            return Err(Error::ShapeMismatch {
                what: "values",
                expected: (x.v.nrows(), dv),
                found: x.v.shape(),
            });
        }
    }
    Ok(())
}

fn nonempty<T>(sets: &[T], what: &'static str) -> Result<()> {
    if sets.is_empty() {
        return Err(Error::Empty {
            what,
            rows: 0,
            cols: 0,
        });
    }
    Ok(())
}

/// Fits `methods` on queries, keys and values of `calibration` (one or
/// more prompts, concatenated by rows) and evaluates them for every rank
/// on the calibration prompts (in-sample) and on the `evaluation` prompts
/// (held-out); see the [module docs](self). Curves run over r = 1..=d for
/// the key methods, 1..=d_v for Values and 1..=min(d, n, m) for attention
/// truncation (per set: the shortest over the sets). One [`Fidelity`] per
/// entry of `methods`, in order.
///
/// # Errors
///
/// [`Error::Empty`] for an empty calibration or evaluation set or an empty
/// matrix; [`Error::ShapeMismatch`] if Q and K differ in width, if V has
/// not as many rows as K, or if the widths d, d_v differ between prompts;
/// [`Error::NonFinite`] for NaN/±∞ input; [`Error::FullyMaskedRow`] for a
/// row without allowed keys; the mask's shape errors; [`Error::Overflow`]
/// if logits are not representable; the SVD errors of the backend.
pub fn head_fidelity<T: Scalar>(
    calibration: &[Qkv<'_, T>],
    evaluation: &[Qkv<'_, T>],
    mask: &Mask<T>,
    scale: Scale<T>,
    methods: &[Method],
    backend: Backend,
) -> Result<Vec<Fidelity>> {
    nonempty(calibration, "calibration set")?;
    nonempty(evaluation, "evaluation set")?;
    let cal: Vec<EvalSet<T>> = calibration
        .iter()
        .map(|x| eval_set(x, mask, scale))
        .collect::<Result<_>>()?;
    let (d, dv) = (calibration[0].q.ncols(), calibration[0].v.ncols());
    check_widths(calibration, d, dv)?;
    check_widths(evaluation, d, dv)?;
    let eval: Vec<EvalSet<T>> = evaluation
        .iter()
        .map(|x| eval_set(x, mask, scale))
        .collect::<Result<_>>()?;
    let qs: Vec<&MatrixRef<'_, T>> = calibration.iter().map(|x| &x.q).collect();
    let ks: Vec<&MatrixRef<'_, T>> = calibration.iter().map(|x| &x.k).collect();
    let vs: Vec<&MatrixRef<'_, T>> = calibration.iter().map(|x| &x.v).collect();
    let fitted = fit(&qs, &ks, &vs, methods, backend)?;
    let mut both = map_indices(2, |i| {
        evaluate(&fitted, if i == 0 { &cal } else { &eval }, methods, backend)
    })?;
    let outside = both.pop().expect("two evaluations");
    let inside = both.pop().expect("two evaluations");
    Ok(methods
        .iter()
        .zip(inside.into_iter().zip(outside))
        .map(|(&method, (in_sample, held_out))| Fidelity {
            method,
            in_sample,
            held_out,
        })
        .collect())
}

/// The approximate attention Ã (n×m) that `method` at rank `rank`,
/// fitted on `calibration`, gives for the head `evaluation`: the matrix
/// whose TV, KL and attention error [`head_fidelity`] reports (for
/// attention truncation the rows mapped back to distributions, as in the
/// module docs; for Values the exact A, which that method leaves
/// unchanged). Entries off the mask's allowed set are exactly 0 (T23).
///
/// # Errors
///
/// [`Error::InvalidRank`] unless 1 ≤ rank ≤ d (key methods), d_v
/// (Values) or min(d, n, m) (truncation); otherwise those of
/// [`head_fidelity`].
///
/// # Examples
///
/// ```
/// use attention_svd::attention::{Mask, Scale};
/// use attention_svd::compression::{approximate_attention, Method, Qkv};
/// use attention_svd::nalgebra::DMatrix;
/// use attention_svd::svd::Backend;
///
/// let m = |r: usize, f: f64| DMatrix::from_fn(r, 3, |i, j| ((i * 3 + j) as f64 * f).sin());
/// let (q, k, v) = (m(6, 0.3), m(6, 0.7), m(6, 0.2));
/// let x = Qkv::new(&q, &k, &v);
/// let a1 = approximate_attention(&[x.clone()], &x, &Mask::causal(), Scale::default(),
///                                Method::KqSvd, 1, Backend::Auto).unwrap();
/// assert_eq!(a1[(0, 1)], 0.0); // masked entries stay exactly 0
/// assert!((a1.row(3).sum() - 1.0).abs() < 1e-14);
/// ```
pub fn approximate_attention<T: Scalar>(
    calibration: &[Qkv<'_, T>],
    evaluation: &Qkv<'_, T>,
    mask: &Mask<T>,
    scale: Scale<T>,
    method: Method,
    rank: usize,
    backend: Backend,
) -> Result<DMatrix<T>> {
    nonempty(calibration, "calibration set")?;
    for x in calibration {
        eval_set(x, mask, scale)?;
    }
    let (d, dv) = (calibration[0].q.ncols(), calibration[0].v.ncols());
    check_widths(calibration, d, dv)?;
    check_widths(std::slice::from_ref(evaluation), d, dv)?;
    let set = eval_set(evaluation, mask, scale)?;
    let (n, m) = (set.n, set.m);
    let max = match method {
        Method::Values => dv,
        Method::AttentionTruncation => d.min(n).min(m),
        _ => d,
    };
    check::rank(rank, 1, max)?;
    let qs: Vec<&MatrixRef<'_, T>> = calibration.iter().map(|x| &x.q).collect();
    let ks: Vec<&MatrixRef<'_, T>> = calibration.iter().map(|x| &x.k).collect();
    let vs: Vec<&MatrixRef<'_, T>> = calibration.iter().map(|x| &x.v).collect();
    let fitted = fit(&qs, &ks, &vs, &[method], backend)?;
    let data = match method {
        Method::Values => set.a.clone(),
        Method::AttentionTruncation => {
            let a = MatrixRef::from_column_major_slice(&set.a, n, m).expect("n×m buffer");
            let ar = svd(&a, backend)?.truncate(rank)?.reconstruct();
            project_rows(&set, ar.as_slice())
        }
        Method::KeyOnly | Method::KqSvd | Method::KeysAndValues => {
            let (a, b) = match (&fitted.keys, &fitted.kq) {
                (Some(w), _) => (w, w),
                (None, Some((a, b))) => (a, b),
                (None, None) => unreachable!("a key method was fitted"),
            };
            let r = rank.min(a.ncols());
            let qa = &set.q * a.columns(0, r);
            let kb = (&set.k * b.columns(0, r)).transpose();
            let mut zt = vec![T::zero(); n * m];
            product_into(
                &mut zt,
                (n, m),
                set.scale,
                &qa.as_matrix_ref(),
                false,
                &kb.as_matrix_ref(),
            );
            if !T::all_finite(&zt) {
                return Err(Error::Overflow {
                    what: "compressed logits",
                });
            }
            let mut at = vec![T::zero(); n * m];
            softmax_into(&set, &zt, &mut at)?;
            at
        }
    };
    Ok(DMatrix::from_vec(n, m, data))
}

// ---------------------------------------------------------------------------
// Whole model

/// One prompt of a model: per-head queries [l, h, n, d], keys
/// [l, h_kv, m, d] and values [l, h_kv, m, d_v].
#[derive(Clone, Copy, Debug)]
pub struct Prompt<'a, S> {
    q: &'a S,
    k: &'a S,
    v: &'a S,
}

impl<'a, S: HeadSource> Prompt<'a, S> {
    /// A prompt from its query, key and value sources.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if the layer counts or head dimensions
    /// of Q and K differ, if V does not have K's layers, heads and rows, or
    /// if h_kv does not divide h.
    pub fn new(q: &'a S, k: &'a S, v: &'a S) -> Result<Self> {
        let [l, h, _, d] = q.shape();
        let [kl, kh, km, kd] = k.shape();
        let [vl, vh, vm, _] = v.shape();
        let bad = |reason| Error::InvalidParameter {
            name: "prompt",
            reason,
        };
        if kl != l || kd != d {
            return Err(bad(
                "queries and keys must have the same layers and head dimension",
            ));
        }
        if kh == 0 || h % kh != 0 {
            return Err(bad(
                "the number of key heads must divide the number of query heads",
            ));
        }
        if [vl, vh, vm] != [kl, kh, km] {
            return Err(bad(
                "values must have the layers, heads and rows of the keys",
            ));
        }
        Ok(Prompt { q, k, v })
    }
}

/// The inputs of [`model_fidelity`]: calibration and evaluation prompts,
/// the mask, one scale per layer and the key/value head of every query
/// head.
#[derive(Debug)]
pub struct CompressionModel<'a, S: HeadSource> {
    calibration: Vec<Prompt<'a, S>>,
    evaluation: Vec<Prompt<'a, S>>,
    mask: Mask<S::Elem>,
    scales: Vec<Scale<S::Elem>>,
    kv_group: Vec<usize>,
}

impl<'a, S: HeadSource> CompressionModel<'a, S> {
    /// A model with one scale for every layer and the default grouping
    /// t ↦ t / (h / h_kv) (Llama's `repeat_kv`; the identity when h_kv = h).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] for no calibration or no evaluation prompt;
    /// [`Error::InvalidParameter`] if the prompts disagree in layers,
    /// heads, head dimension or value dimension.
    pub fn new(
        calibration: Vec<Prompt<'a, S>>,
        evaluation: Vec<Prompt<'a, S>>,
        mask: Mask<S::Elem>,
        scale: Scale<S::Elem>,
    ) -> Result<Self> {
        nonempty(&calibration, "calibration set")?;
        nonempty(&evaluation, "evaluation set")?;
        let dims = |p: &Prompt<'_, S>| {
            let [l, h, _, d] = p.q.shape();
            let [_, kh, _, _] = p.k.shape();
            [l, h, kh, d, p.v.shape()[3]]
        };
        let first = dims(&calibration[0]);
        if calibration
            .iter()
            .chain(&evaluation)
            .any(|p| dims(p) != first)
        {
            return Err(Error::InvalidParameter {
                name: "prompts",
                reason: "every prompt must have the same layers, heads, head and value dimensions",
            });
        }
        let [l, h, kh, _, _] = first;
        Ok(CompressionModel {
            calibration,
            evaluation,
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
    pub fn layer_scales(mut self, scales: Vec<Scale<S::Elem>>) -> Result<Self> {
        if scales.len() != self.scales.len() {
            return Err(Error::InvalidParameter {
                name: "layer_scales",
                reason: "there must be one scale per layer",
            });
        }
        self.scales = scales;
        Ok(self)
    }

    /// The key/value head of every query head (grouped-query attention).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless there is one entry per query
    /// head, each a key head.
    pub fn kv_group(mut self, group: Vec<usize>) -> Result<Self> {
        let kh = self.calibration[0].k.shape()[1];
        if group.len() != self.kv_group.len() || group.iter().any(|&g| g >= kh) {
            return Err(Error::InvalidParameter {
                name: "kv_group",
                reason: "kv_group needs one key head (< the number of key heads) per query head",
            });
        }
        self.kv_group = group;
        Ok(self)
    }
}

/// The smallest rank meeting the target for one method of one head.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct RankNeeded {
    /// The method.
    pub method: Method,
    /// Smallest r meeting the target in-sample (`None`: no r does).
    pub in_sample: Option<usize>,
    /// Smallest r meeting the target held-out (`None`: no r does).
    pub held_out: Option<usize>,
    /// Fraction of the head's KV cache (d + d_v numbers per token) saved
    /// at the held-out r: 1 − [`Point::cache_fraction`]; `None` if no r
    /// meets the target or for attention truncation.
    pub memory_saved: Option<f64>,
}

/// The compression report of one query head.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct HeadCompression {
    /// Layer index.
    pub layer: usize,
    /// Query head index.
    pub head: usize,
    /// The key/value head it reads (whose projection was fitted on every
    /// query head sharing it).
    pub kv_head: usize,
    /// Head dimension d.
    pub head_dim: usize,
    /// Value dimension d_v.
    pub value_dim: usize,
    /// One entry per method.
    pub curves: Vec<Fidelity>,
    /// One entry per method: the rank the target needs.
    pub needed: Vec<RankNeeded>,
}

/// One method's figures over the heads of a layer.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LayerMethod {
    /// The method.
    pub method: Method,
    /// Heads whose held-out curve meets the target at some r.
    pub heads_meeting: usize,
    /// Largest held-out r needed over those heads (`None` if none).
    pub max_rank: Option<usize>,
    /// Mean over all heads of the memory saved (0 for a head that never
    /// meets the target; `None` for attention truncation).
    pub mean_memory_saved: Option<f64>,
}

/// The per-method figures of one layer.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LayerCompression {
    /// Layer index.
    pub layer: usize,
    /// One entry per method.
    pub methods: Vec<LayerMethod>,
}

/// The whole-model compression report of [`model_fidelity`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ModelCompression {
    /// The target the ranks are for.
    pub target: Target,
    /// The methods, in the order of every per-method list.
    pub methods: Vec<Method>,
    /// One entry per (layer, query head), layer-major.
    pub heads: Vec<HeadCompression>,
    /// One entry per layer.
    pub layers: Vec<LayerCompression>,
}

impl ModelCompression {
    /// Writes every curve point as CSV: one row per (layer, head, method,
    /// set, r), `set` being `in_sample` or `held_out`. Empty fields stand
    /// for figures a method does not have (the logit error and cache
    /// fractions of attention truncation); `kl_mean` is empty and
    /// `kl_infinite_rows` counts the rows when the mean KL is +∞.
    ///
    /// # Errors
    ///
    /// The writer's errors.
    pub fn write_curves_csv(&self, mut w: impl std::io::Write) -> std::io::Result<()> {
        fn opt(x: Option<f64>) -> String {
            x.map_or_else(String::new, |v| format!("{v:e}"))
        }
        writeln!(
            w,
            "layer,head,kv_head,method,set,rank,key_fraction,value_fraction,cache_fraction,\
             logit_error,attention_error,tv_mean,tv_max,kl_mean,kl_infinite_rows,output_error"
        )?;
        for h in &self.heads {
            for f in &h.curves {
                for (set, curve) in [("in_sample", &f.in_sample), ("held_out", &f.held_out)] {
                    for p in &curve.points {
                        let (kl, inf) = match p.kl_mean {
                            Divergence::Finite(x) => (format!("{x:e}"), 0),
                            Divergence::Infinite { rows } => (String::new(), rows),
                        };
                        writeln!(
                            w,
                            "{},{},{},{},{set},{},{},{},{},{},{:e},{:e},{:e},{kl},{inf},{:e}",
                            h.layer,
                            h.head,
                            h.kv_head,
                            f.method.name(),
                            p.rank,
                            opt(p.key_fraction),
                            opt(p.value_fraction),
                            opt(p.cache_fraction(h.head_dim, h.value_dim)),
                            opt(p.logit_error),
                            p.attention_error,
                            p.tv_mean,
                            p.tv_max,
                            p.output_error,
                        )?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// One prompt's query heads of a group, its keys and its values.
type Loaded<T> = (Vec<DMatrix<T>>, DMatrix<T>, DMatrix<T>);

/// A head of a source as a matrix.
fn read<S: HeadSource>(s: &S, layer: usize, head: usize) -> Result<DMatrix<S::Elem>> {
    s.head(layer, head)
}

/// The compression report of every head of a model; see the [module
/// docs](self). One projection per (layer, KV head), fitted on the
/// calibration prompts' queries of every query head sharing it (stacked by
/// rows) and the KV head's keys and values; every query head is then
/// evaluated on the calibration prompts (in-sample) and on the evaluation
/// prompts (held-out). KV heads run in parallel (feature `parallel`).
///
/// # Errors
///
/// The errors of [`head_fidelity`] and of the sources, wrapped in
/// [`Error::AtHead`] (naming the query head; for a fitting error the
/// group's first query head).
///
/// # Examples
///
/// ```
/// use attention_svd::attention::{Mask, Scale};
/// use attention_svd::compression::{model_fidelity, CompressionModel, Method, Prompt, Target};
/// use attention_svd::svd::Backend;
/// use attention_svd::Stack;
///
/// let s = |shape: [usize; 4], f: f64| {
///     let len = shape.iter().product();
///     Stack::new(shape, (0..len).map(|x| (x as f64 * f).sin()).collect()).unwrap()
/// };
/// // Two query heads sharing one KV head (grouped-query attention).
/// let (qc, kc, vc) = (s([1, 2, 12, 4], 0.31), s([1, 1, 12, 4], 0.53), s([1, 1, 12, 4], 0.17));
/// let (q, k, v) = (s([1, 2, 8, 4], 0.29), s([1, 1, 8, 4], 0.61), s([1, 1, 8, 4], 0.19));
/// let model = CompressionModel::new(
///     vec![Prompt::new(&qc, &kc, &vc).unwrap()],
///     vec![Prompt::new(&q, &k, &v).unwrap()],
///     Mask::causal(),
///     Scale::default(),
/// )
/// .unwrap();
/// let target = Target::output_error(0.1).unwrap();
/// let report = model_fidelity(&model, &Method::ALL, target, Backend::Auto).unwrap();
/// assert_eq!(report.heads.len(), 2);
/// assert_eq!(report.heads[1].kv_head, 0);
/// ```
pub fn model_fidelity<S: HeadSource>(
    model: &CompressionModel<'_, S>,
    methods: &[Method],
    target: Target,
    backend: Backend,
) -> Result<ModelCompression> {
    let [layers, heads, _, d] = model.calibration[0].q.shape();
    let kv_heads = model.calibration[0].k.shape()[1];
    let dv = model.calibration[0].v.shape()[3];
    let groups: Vec<Vec<usize>> = (0..kv_heads)
        .map(|g| (0..heads).filter(|&h| model.kv_group[h] == g).collect())
        .collect();
    let per_group = map_indices(layers * kv_heads, |index| {
        let (layer, g) = (index / kv_heads, index % kv_heads);
        let members = &groups[g];
        let Some(&first) = members.first() else {
            return Ok(Vec::new());
        };
        let load = |prompts: &[Prompt<'_, S>]| -> Result<_> {
            prompts
                .iter()
                .map(|p| {
                    let qs = members
                        .iter()
                        .map(|&h| read(p.q, layer, h))
                        .collect::<Result<Vec<_>>>()?;
                    Ok((qs, read(p.k, layer, g)?, read(p.v, layer, g)?))
                })
                .collect::<Result<Vec<_>>>()
        };
        let fitted = (|| {
            let cal = load(&model.calibration)?;
            let qrefs: Vec<MatrixRef<'_, S::Elem>> = cal
                .iter()
                .flat_map(|(qs, _, _)| qs.iter().map(|q| q.as_matrix_ref()))
                .collect();
            let krefs: Vec<MatrixRef<'_, S::Elem>> =
                cal.iter().map(|(_, k, _)| k.as_matrix_ref()).collect();
            let vrefs: Vec<MatrixRef<'_, S::Elem>> =
                cal.iter().map(|(_, _, v)| v.as_matrix_ref()).collect();
            for (qs, k, _) in &cal {
                for q in qs {
                    check::queries_keys(&q.as_matrix_ref(), &k.as_matrix_ref())?;
                }
            }
            for (k, v) in krefs.iter().zip(&vrefs) {
                check::matrix(v, "values")?;
                if v.nrows() != k.nrows() {
                    return Err(Error::ShapeMismatch {
                        what: "values",
                        expected: (k.nrows(), v.ncols()),
                        found: v.shape(),
                    });
                }
            }
            let f = fit(
                &qrefs.iter().collect::<Vec<_>>(),
                &krefs.iter().collect::<Vec<_>>(),
                &vrefs.iter().collect::<Vec<_>>(),
                methods,
                backend,
            )?;
            Ok((f, cal))
        })();
        let (fitted, cal) = fitted.map_err(|e: Error| e.at_head(layer, first))?;
        let eval = load(&model.evaluation).map_err(|e| e.at_head(layer, first))?;
        members
            .iter()
            .enumerate()
            .map(|(t, &head)| {
                let one = || {
                    let sets = |data: &[Loaded<S::Elem>]| {
                        data.iter()
                            .map(|(qs, k, v)| {
                                eval_set(&Qkv::new(&qs[t], k, v), &model.mask, model.scales[layer])
                            })
                            .collect::<Result<Vec<_>>>()
                    };
                    let inside = evaluate(&fitted, &sets(&cal)?, methods, backend)?;
                    let outside = evaluate(&fitted, &sets(&eval)?, methods, backend)?;
                    let curves: Vec<Fidelity> = methods
                        .iter()
                        .zip(inside.into_iter().zip(outside))
                        .map(|(&method, (in_sample, held_out))| Fidelity {
                            method,
                            in_sample,
                            held_out,
                        })
                        .collect();
                    let needed = curves
                        .iter()
                        .map(|c| {
                            let held_out = c.held_out.rank_for(target);
                            RankNeeded {
                                method: c.method,
                                in_sample: c.in_sample.rank_for(target),
                                held_out,
                                memory_saved: held_out.and_then(|r| {
                                    c.held_out.points[r - 1]
                                        .cache_fraction(d, dv)
                                        .map(|f| 1.0 - f)
                                }),
                            }
                        })
                        .collect();
                    Ok(HeadCompression {
                        layer,
                        head,
                        kv_head: g,
                        head_dim: d,
                        value_dim: dv,
                        curves,
                        needed,
                    })
                };
                one().map_err(|e: Error| e.at_head(layer, head))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut all: Vec<HeadCompression> = per_group.into_iter().flatten().collect();
    all.sort_by_key(|h| (h.layer, h.head));
    let layer_reports = (0..layers)
        .map(|layer| {
            let hs: Vec<&HeadCompression> = all.iter().filter(|h| h.layer == layer).collect();
            LayerCompression {
                layer,
                methods: methods
                    .iter()
                    .enumerate()
                    .map(|(i, &method)| {
                        let ranks: Vec<usize> =
                            hs.iter().filter_map(|h| h.needed[i].held_out).collect();
                        LayerMethod {
                            method,
                            heads_meeting: ranks.len(),
                            max_rank: ranks.iter().copied().max(),
                            mean_memory_saved: (method != Method::AttentionTruncation).then(|| {
                                hs.iter()
                                    .map(|h| h.needed[i].memory_saved.unwrap_or(0.0))
                                    .sum::<f64>()
                                    / hs.len().max(1) as f64
                            }),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(ModelCompression {
        target,
        methods: methods.to_vec(),
        heads: all,
        layers: layer_reports,
    })
}
