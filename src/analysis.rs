//! Whole-model analysis: one spectral summary per (layer, head) of a
//! [`Stack`] of attention matrices, and per-layer aggregates.
//!
//! # What is computed
//!
//! For each head's n×m matrix A, from its singular values (values-only
//! SVD, [`Backend::Auto`] unless chosen otherwise):
//!
//! ```text
//! sigma_max = σ₁            sigma_min = σ_k            k = min(n, m)
//! noise_floor = σ₁·max(n, m)·ε      (σ below it are round-off)
//! numerical_rank = #{σᵢ > noise_floor}
//! effective_rank = exp(−Σ pᵢ ln pᵢ), pᵢ = σᵢ/Σσ      stable_rank = Σσᵢ²/σ₁²
//! energy_rank_90/99/999 = min{r : Σ_{i≤r}σᵢ²/Σσᵢ² ≥ 0.9 / 0.99 / 0.999}
//! max_row_sum_deviation = maxᵢ |Σⱼ aᵢⱼ − 1|
//! ```
//!
//! and per layer the median, minimum and maximum of each over its heads
//! (the median of an even count is the mean of the two middle values).
//!
//! # Precision
//!
//! By default the analysis runs in f64 whatever the stack's type (f32 input
//! is widened exactly); [`Precision::F32`] runs it in f32, which is about
//! twice as fast.
//!
//! The ε of the noise floor is the larger of the arithmetic's and the
//! data's: attention stored in f32 carries rounding errors of relative size
//! ε_f32 in every entry, which move every σ by up to about ε_f32·‖A‖_F,
//! whatever precision the SVD then runs in. The data's precision is that of
//! the stack's type unless [`Options::data_precision`] says otherwise (for
//! f32 data held in an f64 stack).
//!
//! # Memory and parallelism
//!
//! Heads are processed one at a time: each copies its n×m matrix out of the
//! stack and computes singular values only, so the peak memory is the stack
//! plus a few n×m work matrices per thread, never all heads' U and V. With
//! the `parallel` feature (default) heads run on rayon's thread pool.
//!
//! # JSON layout
//!
//! With the `serde` feature (default) [`ModelReport`] serialises, e.g. with
//! `serde_json`, to one object:
//!
//! ```text
//! {
//!   "precision": "f64",              the arithmetic
//!   "data_precision": "f32",         the data's (sets the noise floor)
//!   "shape": [layers, heads, n, m],
//!   "heads": [ {                       one per (layer, head), layer-major
//!       "layer": 0, "head": 0, "n": 64, "m": 64,
//!       "singular_values": [σ₁, …, σ_k],   all of them, descending
//!       "sigma_max", "sigma_min", "noise_floor",
//!       "effective_rank", "stable_rank", "numerical_rank",
//!       "energy_rank_90", "energy_rank_99", "energy_rank_999",
//!       "max_row_sum_deviation", "frobenius_norm", "nuclear_norm"
//!   }, … ],
//!   "layers": [ {                      one per layer
//!       "layer": 0, "heads": 12,
//!       "sigma_max":      {"median", "min", "max"},
//!       "sigma_min", "effective_rank", "stable_rank", "numerical_rank",
//!       "energy_rank_90", "energy_rank_99", "energy_rank_999"   (same form),
//!       "max_row_sum_deviation": max over heads
//!   }, … ]
//! }
//! ```
//!
//! Every number is finite; ranks are integers (their aggregates are
//! numbers, since a median can be a half-integer).
//!
//! # Examples
//!
//! ```
//! use attention_svd::analysis::{analyze, Options};
//! use attention_svd::attention::{scaled_dot_product, Mask};
//! use attention_svd::Stack;
//! use nalgebra::DMatrix;
//!
//! let heads: Vec<DMatrix<f32>> = (0..4)
//!     .map(|h| {
//!         let q = DMatrix::from_fn(8, 4, |i, j| ((h * 32 + i * 4 + j) as f32 * 0.7).sin());
//!         scaled_dot_product(&q, &q, &Mask::causal()).unwrap()
//!     })
//!     .collect();
//! let stack = Stack::from_matrices(2, 2, &heads).unwrap();
//! let report = analyze(&stack, &Options::default()).unwrap();
//! assert_eq!(report.heads.len(), 4);
//! assert_eq!(report.layers.len(), 2);
//! assert!(report.heads.iter().all(|h| h.numerical_rank == 8)); // causal ⇒ nonsingular
//! ```

#[cfg(feature = "parallel")]
use rayon::prelude::*;

use nalgebra::DMatrix;

use crate::attention::{scaled_dot_product_with_scale, Mask};
use crate::metrics::{numerical_rank, RankTolerance, Summary};
use crate::stochastic::max_row_sum_deviation;
use crate::svd::{singular_values, Backend};
use crate::{Error, Result, Scalar, Stack};

/// The arithmetic the analysis runs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Precision {
    /// Single precision.
    F32,
    /// Double precision (the default).
    #[default]
    F64,
}

/// Options of [`analyze`].
///
/// # Examples
///
/// ```
/// use attention_svd::analysis::{Options, Precision};
/// use attention_svd::svd::Backend;
///
/// let o = Options::default().precision(Precision::F32).backend(Backend::jacobi());
/// assert_eq!(o.get_precision(), Precision::F32);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Options {
    precision: Precision,
    data_precision: Option<Precision>,
    backend: Backend,
}

impl Options {
    /// Sets the arithmetic (default f64).
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Declares the precision the data was stored or computed in (default:
    /// the stack's own type), which sets the noise floor's ε together with
    /// the arithmetic; see the [module docs](self).
    pub fn data_precision(mut self, precision: Precision) -> Self {
        self.data_precision = Some(precision);
        self
    }

    /// Sets the SVD backend (default [`Backend::Auto`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The arithmetic.
    pub fn get_precision(&self) -> Precision {
        self.precision
    }

    /// The SVD backend.
    pub fn get_backend(&self) -> Backend {
        self.backend
    }
}

impl Precision {
    /// Machine epsilon of this precision.
    pub fn epsilon(self) -> f64 {
        match self {
            Precision::F32 => f64::from(f32::EPSILON),
            Precision::F64 => f64::EPSILON,
        }
    }
}

/// The spectral summary of one head; see the [module docs](self).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct HeadSummary {
    /// Layer index.
    pub layer: usize,
    /// Head index within the layer.
    pub head: usize,
    /// Number of queries (rows).
    pub n: usize,
    /// Number of keys (columns).
    pub m: usize,
    /// All min(n, m) singular values, descending.
    pub singular_values: Vec<f64>,
    /// σ₁.
    pub sigma_max: f64,
    /// σ_k.
    pub sigma_min: f64,
    /// σ₁·max(n, m)·ε, ε the larger of the arithmetic's and the data's:
    /// singular values below it are round-off.
    pub noise_floor: f64,
    /// Roy–Vetterli effective rank.
    pub effective_rank: f64,
    /// Σσᵢ²/σ₁².
    pub stable_rank: f64,
    /// #{σᵢ > noise_floor}.
    pub numerical_rank: usize,
    /// Smallest r keeping 90 % of Σσᵢ².
    pub energy_rank_90: usize,
    /// Smallest r keeping 99 % of Σσᵢ².
    pub energy_rank_99: usize,
    /// Smallest r keeping 99.9 % of Σσᵢ².
    pub energy_rank_999: usize,
    /// maxᵢ |Σⱼ aᵢⱼ − 1|.
    pub max_row_sum_deviation: f64,
    /// ‖A‖_F.
    pub frobenius_norm: f64,
    /// ‖A‖_* = Σσᵢ.
    pub nuclear_norm: f64,
}

/// Median, minimum and maximum of a quantity over the heads of a layer.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Stats {
    /// The median (mean of the two middle values for an even count).
    pub median: f64,
    /// The minimum.
    pub min: f64,
    /// The maximum.
    pub max: f64,
}

impl Stats {
    /// The statistics of a non-empty list of finite values.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] for an empty list; [`Error::NonFinite`] for NaN/±∞.
    ///
    /// # Examples
    ///
    /// ```
    /// use attention_svd::analysis::Stats;
    /// let s = Stats::of(&[3.0, 1.0, 4.0, 2.0]).unwrap();
    /// assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
    /// ```
    pub fn of(values: &[f64]) -> Result<Self> {
        if values.is_empty() {
            return Err(Error::Empty {
                what: "values",
                rows: 0,
                cols: 1,
            });
        }
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite {
                what: "values",
                row: i,
                col: 0,
            });
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            // Halve first: no overflow for values near ±f64::MAX.
            0.5 * v[n / 2 - 1] + 0.5 * v[n / 2]
        };
        Ok(Stats {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// Aggregates over the heads of one layer.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct LayerSummary {
    /// Layer index.
    pub layer: usize,
    /// Number of heads aggregated.
    pub heads: usize,
    /// σ₁ over heads.
    pub sigma_max: Stats,
    /// σ_k over heads.
    pub sigma_min: Stats,
    /// Effective rank over heads.
    pub effective_rank: Stats,
    /// Stable rank over heads.
    pub stable_rank: Stats,
    /// Numerical rank over heads.
    pub numerical_rank: Stats,
    /// 90 % energy rank over heads.
    pub energy_rank_90: Stats,
    /// 99 % energy rank over heads.
    pub energy_rank_99: Stats,
    /// 99.9 % energy rank over heads.
    pub energy_rank_999: Stats,
    /// The largest row-sum deviation of any head.
    pub max_row_sum_deviation: f64,
}

/// The result of [`analyze`]: per-head summaries and per-layer aggregates.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ModelReport {
    /// The arithmetic used.
    pub precision: Precision,
    /// The precision of the data (see [`Options::data_precision`]).
    pub data_precision: Precision,
    /// [layers, heads, n, m] of the analysed stack.
    pub shape: [usize; 4],
    /// One summary per (layer, head), layer-major.
    pub heads: Vec<HeadSummary>,
    /// One aggregate per layer.
    pub layers: Vec<LayerSummary>,
}

impl ModelReport {
    /// The summary of (layer, head), if in range.
    pub fn head(&self, layer: usize, head: usize) -> Option<&HeadSummary> {
        let heads = self.shape[1];
        (head < heads)
            .then(|| self.heads.get(layer * heads + head))
            .flatten()
    }
}

/// Analyses every (layer, head) matrix of `stack`; see the
/// [module docs](self).
///
/// # Errors
///
/// [`Error::AtHead`] wrapping the first error of a head (non-finite
/// entries, SVD non-convergence, …).
pub fn analyze<S: Scalar>(stack: &Stack<S>, options: &Options) -> Result<ModelReport> {
    match options.precision {
        Precision::F32 => analyze_in::<S, f32>(stack, options),
        Precision::F64 => analyze_in::<S, f64>(stack, options),
    }
}

fn analyze_in<S: Scalar, T: Scalar>(stack: &Stack<S>, options: &Options) -> Result<ModelReport> {
    let [layers, heads, _, _] = stack.shape();
    let data_eps = options
        .data_precision
        .map_or(S::EPSILON.to_f64(), Precision::epsilon);
    let eps = T::lit(data_eps.max(T::EPSILON.to_f64()));
    let one = |index: usize| -> Result<HeadSummary> {
        let (layer, head) = (index / heads, index % heads);
        summarize_head::<S, T>(stack, layer, head, options.backend, eps).map_err(|e| {
            Error::AtHead {
                layer,
                head,
                source: Box::new(e),
            }
        })
    };
    #[cfg(feature = "parallel")]
    let summaries: Result<Vec<HeadSummary>> =
        (0..layers * heads).into_par_iter().map(one).collect();
    #[cfg(not(feature = "parallel"))]
    let summaries: Result<Vec<HeadSummary>> = (0..layers * heads).map(one).collect();
    let summaries = summaries?;
    let layer_summaries = (0..layers)
        .map(|l| aggregate(l, &summaries[l * heads..(l + 1) * heads]))
        .collect::<Result<Vec<_>>>()?;
    Ok(ModelReport {
        precision: options.precision,
        data_precision: if data_eps > f64::EPSILON {
            Precision::F32
        } else {
            Precision::F64
        },
        shape: stack.shape(),
        heads: summaries,
        layers: layer_summaries,
    })
}

fn summarize_head<S: Scalar, T: Scalar>(
    stack: &Stack<S>,
    layer: usize,
    head: usize,
    backend: Backend,
    eps: T,
) -> Result<HeadSummary> {
    let [_, heads, n, m] = stack.shape();
    let start = (layer * heads + head) * n * m;
    let slice = &stack.as_slice()[start..start + n * m];
    // Row-major [n, m] slice into a column-major n×m matrix. Only a
    // narrowing conversion (f64 data in f32 arithmetic) can overflow.
    let a = DMatrix::<T>::from_fn(n, m, |i, j| T::lit(slice[i * m + j].to_f64()));
    if T::MAX.to_f64() < S::MAX.to_f64()
        && slice.chunks_exact(m).enumerate().any(|(i, row)| {
            row.iter()
                .enumerate()
                .any(|(j, x)| x.finite() && !a[(i, j)].finite())
        })
    {
        return Err(Error::Overflow {
            what: "conversion of the stack to the arithmetic's precision",
        });
    }
    let sigma = singular_values(&a, backend)?;
    let mut s = Summary::from_singular_values(sigma, n, m)?;
    let rtol = T::from_count(n.max(m)) * eps;
    s.rank_threshold = RankTolerance::relative(rtol).threshold(s.spectral_norm, (n, m))?;
    s.numerical_rank = numerical_rank(&s.singular_values, (n, m), RankTolerance::relative(rtol))?;
    let f = |x: T| x.to_f64();
    Ok(HeadSummary {
        layer,
        head,
        n,
        m,
        sigma_max: f(s.spectral_norm),
        sigma_min: f(*s.singular_values.last().expect("k ≥ 1")),
        noise_floor: f(s.rank_threshold),
        effective_rank: f(s.effective_rank),
        stable_rank: f(s.stable_rank),
        numerical_rank: s.numerical_rank,
        energy_rank_90: s.energy_rank_90,
        energy_rank_99: s.energy_rank_99,
        energy_rank_999: s.energy_rank_999,
        max_row_sum_deviation: f(max_row_sum_deviation(&a)?),
        frobenius_norm: f(s.frobenius_norm),
        nuclear_norm: f(s.nuclear_norm),
        singular_values: s.singular_values.iter().map(|&x| f(x)).collect(),
    })
}

fn aggregate(layer: usize, heads: &[HeadSummary]) -> Result<LayerSummary> {
    let stats = |g: fn(&HeadSummary) -> f64| Stats::of(&heads.iter().map(g).collect::<Vec<_>>());
    Ok(LayerSummary {
        layer,
        heads: heads.len(),
        sigma_max: stats(|h| h.sigma_max)?,
        sigma_min: stats(|h| h.sigma_min)?,
        effective_rank: stats(|h| h.effective_rank)?,
        stable_rank: stats(|h| h.stable_rank)?,
        numerical_rank: stats(|h| h.numerical_rank as f64)?,
        energy_rank_90: stats(|h| h.energy_rank_90 as f64)?,
        energy_rank_99: stats(|h| h.energy_rank_99 as f64)?,
        energy_rank_999: stats(|h| h.energy_rank_999 as f64)?,
        max_row_sum_deviation: heads
            .iter()
            .map(|h| h.max_row_sum_deviation)
            .fold(0.0, f64::max),
    })
}

/// Recomputes attention from per-head queries [l, h, n, d] and keys
/// [l, h, m, d]: softmax(s·Q K ᵀ + mask) per head, with s = 1/√d unless
/// `scale` is given, in the stacks' precision. Returns [l, h, n, m].
///
/// # Errors
///
/// [`Error::ShapeMismatch`] if layers, heads or d differ; the errors of
/// [`scaled_dot_product_with_scale`] wrapped in [`Error::AtHead`].
///
/// # Examples
///
/// ```
/// use attention_svd::analysis::attention_from_queries_keys;
/// use attention_svd::attention::Mask;
/// use attention_svd::Stack;
///
/// let q = Stack::new([1, 2, 3, 4], (0..24).map(|x| (x as f32 * 0.3).sin()).collect()).unwrap();
/// let a = attention_from_queries_keys(&q, &q, &Mask::causal(), None).unwrap();
/// assert_eq!(a.shape(), [1, 2, 3, 3]);
/// assert_eq!(a.matrix(0, 1).unwrap()[(0, 2)], 0.0);
/// ```
pub fn attention_from_queries_keys<T: Scalar>(
    q: &Stack<T>,
    k: &Stack<T>,
    mask: &Mask<T>,
    scale: Option<T>,
) -> Result<Stack<T>> {
    let [l, h, _, d] = q.shape();
    let [kl, kh, _, kd] = k.shape();
    if (kl, kh, kd) != (l, h, d) {
        return Err(Error::ShapeMismatch {
            what: "key stack (layers·heads, head dimension)",
            expected: (l * h, d),
            found: (kl * kh, kd),
        });
    }
    let scale = scale.unwrap_or_else(|| T::one() / T::from_count(d).sqrt());
    let one = |index: usize| -> Result<DMatrix<T>> {
        let (layer, head) = (index / h, index % h);
        let at = |e| Error::AtHead {
            layer,
            head,
            source: Box::new(e),
        };
        let qm = q.matrix(layer, head).map_err(at)?;
        let km = k.matrix(layer, head).map_err(at)?;
        scaled_dot_product_with_scale(&qm, &km, mask, scale).map_err(at)
    };
    #[cfg(feature = "parallel")]
    let mats: Result<Vec<DMatrix<T>>> = (0..l * h).into_par_iter().map(one).collect();
    #[cfg(not(feature = "parallel"))]
    let mats: Result<Vec<DMatrix<T>>> = (0..l * h).map(one).collect();
    Stack::from_matrices(l, h, &mats?)
}
