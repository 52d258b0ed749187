//! Whole-model analysis: one spectral summary per (layer, head) of a
//! stack of attention matrices (any [`HeadSource`]: a [`Stack`](crate::Stack), a
//! [`StackView`](crate::StackView), a file read head by head), and
//! per-layer aggregates.
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
//! By default the analysis runs in f64 whatever the source's type (f32 input
//! is widened exactly); [`Precision::F32`] runs it in f32, which is about
//! twice as fast. Narrowing f64 data to f32 reports a value beyond f32's
//! range as [`Error::Overflow`] and a nonzero value that would round to
//! zero as [`Error::Underflow`] (both inside [`Error::AtHead`]): the analysis
//! never flushes data silently.
//!
//! The ε of the noise floor is the larger of the arithmetic's and the
//! data's: attention stored in f32 carries rounding errors of relative size
//! ε_f32 in every entry, which move every σ by up to about ε_f32·‖A‖_F,
//! whatever precision the SVD then runs in. The data's precision is the
//! source's ([`HeadSource::precision`]: a file's dtype, a stack's type)
//! unless [`AnalysisParams::data_precision`] says otherwise (for f32 data
//! held in an f64 stack).
//!
//! # Memory and parallelism
//!
//! Heads are processed one at a time: each is read from the source and
//! only its singular values are computed, so the peak memory is the source
//! (nothing, for a file read head by head) plus a few n×m work matrices per
//! thread, never all heads' U and V. With the `parallel` feature (default)
//! heads run on rayon's thread pool.
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
//! use attention_svd::analysis::{analyze, AnalysisParams};
//! use attention_svd::attention::{scaled_dot_product, Mask, Scale};
//! use attention_svd::nalgebra::DMatrix;
//! use attention_svd::Stack;
//!
//! let heads: Vec<DMatrix<f32>> = (0..4)
//!     .map(|h| {
//!         let q = DMatrix::from_fn(8, 4, |i, j| ((h * 32 + i * 4 + j) as f32 * 0.7).sin());
//!         scaled_dot_product(&q, &q, &Mask::causal(), Scale::default()).unwrap()
//!     })
//!     .collect();
//! let stack = Stack::from_matrices(2, 2, &heads).unwrap();
//! let report = analyze(&stack, AnalysisParams::default()).unwrap();
//! assert_eq!(report.heads.len(), 4);
//! assert_eq!(report.layers.len(), 2);
//! assert!(report.heads.iter().all(|h| h.numerical_rank == 8)); // causal ⇒ nonsingular
//! ```

use nalgebra::DMatrix;

use crate::metrics::{RankTolerance, Summary};
use crate::num::par::map_indices;
use crate::stack::HeadSource;
use crate::stochastic::max_row_sum_deviation;
use crate::svd::{Backend, singular_values};
use crate::{Error, Precision, Result, Scalar};

/// Parameters of [`analyze`]: the arithmetic (default f64), the data's
/// precision (default: the source's), and the SVD backend (default
/// [`Backend::Auto`]).
///
/// # Examples
///
/// ```
/// use attention_svd::analysis::AnalysisParams;
/// use attention_svd::svd::Backend;
/// use attention_svd::Precision;
///
/// let p = AnalysisParams::default().precision(Precision::F32).backend(Backend::jacobi());
/// # let _ = p;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AnalysisParams {
    precision: Precision,
    data_precision: Option<Precision>,
    backend: Backend,
}

impl AnalysisParams {
    /// Sets the arithmetic: [`Precision::F32`] or [`Precision::F64`]
    /// (default); f16 and bf16 are storage formats only and are rejected
    /// when the analysis runs.
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Declares the precision the data was stored or computed in (default:
    /// the source's own), which sets the noise floor's ε together with the
    /// arithmetic; see the [module docs](self).
    pub fn data_precision(mut self, precision: Precision) -> Self {
        self.data_precision = Some(precision);
        self
    }

    /// Sets the SVD backend.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
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
    /// The precision of the data (see [`AnalysisParams::data_precision`]).
    pub data_precision: Precision,
    /// [layers, heads, n, m] of the analysed source.
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

/// Analyses every (layer, head) matrix of `source`; see the
/// [module docs](self).
///
/// # Errors
///
/// [`Error::InvalidParameter`] for an f16/bf16 arithmetic;
/// [`Error::AtHead`] wrapping the first error of a head (in (layer, head)
/// order): non-finite entries, a narrowing that overflows or underflows,
/// SVD non-convergence, a reading error of the source, ….
pub fn analyze<S: HeadSource>(source: &S, params: AnalysisParams) -> Result<ModelReport> {
    match params.precision {
        Precision::F32 => analyze_in::<S, f32>(source, params),
        Precision::F64 => analyze_in::<S, f64>(source, params),
        Precision::F16 | Precision::BF16 => Err(Error::InvalidParameter {
            name: "precision",
            reason: "the arithmetic must be f32 or f64 (f16 and bf16 are storage formats)",
        }),
    }
}

fn analyze_in<S: HeadSource, T: Scalar>(source: &S, params: AnalysisParams) -> Result<ModelReport> {
    let [layers, heads, _, _] = source.shape();
    let data_precision = params.data_precision.unwrap_or_else(|| source.precision());
    let eps = T::lit(data_precision.epsilon().max(T::EPSILON.to_f64()));
    let summaries = map_indices(layers * heads, |index| {
        let (layer, head) = (index / heads, index % heads);
        summarize_head::<S, T>(source, layer, head, params.backend, eps)
            .map_err(|e| e.at_head(layer, head))
    })?;
    let layer_summaries = (0..layers)
        .map(|l| aggregate(l, &summaries[l * heads..(l + 1) * heads]))
        .collect::<Result<Vec<_>>>()?;
    Ok(ModelReport {
        precision: params.precision,
        data_precision,
        shape: source.shape(),
        heads: summaries,
        layers: layer_summaries,
    })
}

/// A head of the source in the arithmetic `T`, with checked narrowing.
pub(crate) fn head_in<S: HeadSource, T: Scalar>(
    source: &S,
    layer: usize,
    head: usize,
) -> Result<DMatrix<T>> {
    let a = source.head(layer, head)?;
    let mut out = Vec::with_capacity(a.len());
    for &x in a.as_slice() {
        out.push(crate::scalar::convert::<S::Elem, T>(
            x,
            "conversion of the data to the arithmetic's precision",
        )?);
    }
    Ok(DMatrix::from_vec(a.nrows(), a.ncols(), out))
}

fn summarize_head<S: HeadSource, T: Scalar>(
    source: &S,
    layer: usize,
    head: usize,
    backend: Backend,
    eps: T,
) -> Result<HeadSummary> {
    let a = head_in::<S, T>(source, layer, head)?;
    let (n, m) = a.shape();
    let sigma = singular_values(&a, backend)?.into_vec();
    let rtol = T::from_count(n.max(m)) * eps;
    let s = Summary::from_singular_values(sigma, (n, m), RankTolerance::relative(rtol))?;
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
