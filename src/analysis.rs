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
//!   "selection": {"layers": [0, 6], "heads": [0, 12]},   half-open ranges analysed
//!   "heads": [ {                       one per analysed (layer, head), layer-major
//!       "layer": 0, "head": 0, "n": 64, "m": 64,
//!       "singular_values": [σ₁, …, σ_k],   all of them, descending
//!       "sigma_max", "sigma_min", "noise_floor",
//!       "effective_rank", "stable_rank", "numerical_rank",
//!       "energy_rank_90", "energy_rank_99", "energy_rank_999",
//!       "max_row_sum_deviation", "frobenius_norm", "nuclear_norm",
//!       "top_keys": [{"key": 0, "weight": 0.93}, …]   largest |v₁ⱼ| (AnalysisParams::top_keys)
//!   }, … ],
//!   "layers": [ {                      one per analysed layer
//!       "layer": 0, "heads": 12,
//!       "sigma_max":      {"min", "q1", "median", "q3", "max"},
//!       "sigma_min", "effective_rank", "stable_rank", "numerical_rank",
//!       "energy_rank_90", "energy_rank_99", "energy_rank_999"   (same form),
//!       "max_row_sum_deviation": max over heads
//!   }, … ]
//! }
//! ```
//!
//! # Populations
//!
//! The claim that attention spectra decay fast is about a population of
//! inputs, not one text. [`Population::of`] takes the reports of several
//! prompts (same layers and heads; n may differ) and gives, per (layer,
//! head) and per layer, the quartiles over prompts (and over heads, per
//! layer) of σ₁, the effective and stable rank, and the energy and numerical
//! ranks as fractions of k = min(n, m), which makes prompts of different
//! lengths comparable. Quartiles interpolate linearly between order
//! statistics (numpy's default).
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
use crate::randomized::{RandomizedParams, randomized_svd};
use crate::stack::HeadSource;
use crate::stochastic::max_row_sum_deviation;
use crate::svd::{Backend, singular_values};
use crate::{Error, Precision, Result, Scalar};

/// Parameters of [`analyze`]: the arithmetic (default f64), the data's
/// precision (default: the source's), the SVD backend (default
/// [`Backend::Auto`]), the layers and heads to analyse (default all), and
/// how many top keys of v₁ to report per head (default 0).
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
    layers: Option<(usize, usize)>,
    heads: Option<(usize, usize)>,
    top_keys: usize,
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

    /// Analyses only the layers `range` (a shard; default all). Checked
    /// against the source when the analysis runs.
    pub fn layers(mut self, range: std::ops::Range<usize>) -> Self {
        self.layers = Some((range.start, range.end));
        self
    }

    /// Analyses only the heads `range` of every layer (a shard; default all).
    pub fn heads(mut self, range: std::ops::Range<usize>) -> Self {
        self.heads = Some((range.start, range.end));
        self
    }

    /// Reports, per head, the `k` keys j with the largest |v₁ⱼ|, v₁ the
    /// first right singular vector (default 0: none). A key that dominates
    /// v₁ of many heads is an attention sink. v₁ comes from a seeded
    /// randomized SVD of rank 1 (O(n·m) per power iteration), so this adds
    /// a small fraction to the cost of the values-only SVD.
    pub fn top_keys(mut self, k: usize) -> Self {
        self.top_keys = k;
        self
    }
}

/// The layers and heads an analysis covered: half-open ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Selection {
    /// [first, last) layer.
    pub layers: [usize; 2],
    /// [first, last) head of every selected layer.
    pub heads: [usize; 2],
}

impl Selection {
    /// Every head of a source of shape [l, h, _, _].
    pub fn all(shape: [usize; 4]) -> Self {
        Selection {
            layers: [0, shape[0]],
            heads: [0, shape[1]],
        }
    }

    /// The number of (layer, head) pairs covered.
    pub fn len(&self) -> usize {
        (self.layers[1] - self.layers[0]) * (self.heads[1] - self.heads[0])
    }

    /// `true` if no head is covered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn resolve(params: &AnalysisParams, shape: [usize; 4]) -> Result<Self> {
        let check = |r: Option<(usize, usize)>, len: usize, name| match r {
            None => Ok([0, len]),
            Some((a, b)) if a < b && b <= len => Ok([a, b]),
            Some(_) => Err(Error::InvalidParameter {
                name,
                reason: "the range must be non-empty and inside the source",
            }),
        };
        Ok(Selection {
            layers: check(params.layers, shape[0], "layers")?,
            heads: check(params.heads, shape[1], "heads")?,
        })
    }
}

/// One of the keys that carry the first right singular vector v₁ of a head.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct KeyWeight {
    /// The key (column) index.
    pub key: usize,
    /// |v₁ⱼ| (v₁ has unit norm, so the squares of all weights sum to 1).
    pub weight: f64,
}

/// The spectral summary of one head; see the [module docs](self).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
    /// The keys with the largest |v₁ⱼ|, largest first (empty unless
    /// [`AnalysisParams::top_keys`] asked for them).
    #[cfg_attr(feature = "serde", serde(default))]
    pub top_keys: Vec<KeyWeight>,
}

/// Minimum, quartiles, median and maximum of a quantity (over the heads of
/// a layer, or over prompts).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Stats {
    /// The minimum.
    pub min: f64,
    /// The first quartile.
    pub q1: f64,
    /// The median (mean of the two middle values for an even count).
    pub median: f64,
    /// The third quartile.
    pub q3: f64,
    /// The maximum.
    pub max: f64,
}

impl Stats {
    /// The statistics of a non-empty list of finite values; the quartiles
    /// interpolate linearly between order statistics (numpy's default, so
    /// the median of an even count is the mean of the two middle values).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] for an empty list; [`Error::NonFinite`] for NaN/±∞.
    ///
    /// # Examples
    ///
    /// ```
    /// use attention_svd::analysis::Stats;
    /// let s = Stats::of(&[3.0, 1.0, 4.0, 2.0, 5.0]).unwrap();
    /// assert_eq!((s.min, s.q1, s.median, s.q3, s.max), (1.0, 2.0, 3.0, 4.0, 5.0));
    /// assert_eq!(Stats::of(&[3.0, 1.0, 4.0, 2.0]).unwrap().median, 2.5);
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
        // Linear interpolation at p·(n − 1); each term halved or weighted
        // before adding, so nothing overflows near ±f64::MAX.
        let quantile = |p: f64| {
            let h = p * (v.len() - 1) as f64;
            let (lo, frac) = (h.floor() as usize, h - h.floor());
            if frac == 0.0 {
                v[lo]
            } else {
                v[lo] * (1.0 - frac) + v[lo + 1] * frac
            }
        };
        Ok(Stats {
            min: v[0],
            q1: quantile(0.25),
            median: quantile(0.5),
            q3: quantile(0.75),
            max: v[v.len() - 1],
        })
    }
}

/// Aggregates over the heads of one layer.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ModelReport {
    /// The arithmetic used.
    pub precision: Precision,
    /// The precision of the data (see [`AnalysisParams::data_precision`]).
    pub data_precision: Precision,
    /// [layers, heads, n, m] of the analysed source.
    pub shape: [usize; 4],
    /// The layers and heads analysed.
    pub selection: Selection,
    /// One summary per analysed (layer, head), layer-major.
    pub heads: Vec<HeadSummary>,
    /// One aggregate per analysed layer (over its analysed heads).
    pub layers: Vec<LayerSummary>,
}

impl ModelReport {
    /// The summary of (layer, head), if it was analysed.
    pub fn head(&self, layer: usize, head: usize) -> Option<&HeadSummary> {
        self.heads
            .binary_search_by(|h| (h.layer, h.head).cmp(&(layer, head)))
            .ok()
            .map(|i| &self.heads[i])
    }

    /// A report from per-head summaries (e.g. the union of shards of one
    /// prompt): the summaries are sorted into (layer, head) order and the
    /// per-layer aggregates recomputed, exactly as [`analyze`] computes
    /// them. `selection` is the smallest one covering every head.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] for no heads; [`Error::InvalidParameter`] if a
    /// (layer, head) appears twice with different values, lies outside
    /// `shape`, or the heads do not fill a rectangle of layers × heads.
    pub fn from_heads(
        precision: Precision,
        data_precision: Precision,
        shape: [usize; 4],
        mut heads: Vec<HeadSummary>,
    ) -> Result<Self> {
        if heads.is_empty() {
            return Err(Error::Empty {
                what: "head summaries",
                rows: 0,
                cols: 0,
            });
        }
        let invalid = |reason| Error::InvalidParameter {
            name: "head summaries",
            reason,
        };
        heads.sort_by_key(|h| (h.layer, h.head));
        let mut unique: Vec<HeadSummary> = Vec::with_capacity(heads.len());
        for h in heads {
            if h.layer >= shape[0] || h.head >= shape[1] {
                return Err(invalid("a head lies outside the shape"));
            }
            match unique.last() {
                Some(last) if (last.layer, last.head) == (h.layer, h.head) => {
                    if *last != h {
                        return Err(invalid("the same head appears twice with different values"));
                    }
                }
                _ => unique.push(h),
            }
        }
        let span = |f: fn(&HeadSummary) -> usize| {
            let lo = unique.iter().map(f).min().expect("non-empty");
            let hi = unique.iter().map(f).max().expect("non-empty");
            [lo, hi + 1]
        };
        let selection = Selection {
            layers: span(|h| h.layer),
            heads: span(|h| h.head),
        };
        if selection.len() != unique.len() {
            return Err(invalid(
                "the heads do not fill a rectangle of layers × heads",
            ));
        }
        let per_layer = selection.heads[1] - selection.heads[0];
        let layers = unique
            .chunks(per_layer)
            .map(|c| aggregate(c[0].layer, c))
            .collect::<Result<Vec<_>>>()?;
        Ok(ModelReport {
            precision,
            data_precision,
            shape,
            selection,
            heads: unique,
            layers,
        })
    }
}

/// Analyses every (layer, head) matrix of `source` (or the selection of
/// [`AnalysisParams::layers`] and [`AnalysisParams::heads`]); see the
/// [module docs](self).
///
/// # Errors
///
/// [`Error::InvalidParameter`] for an f16/bf16 arithmetic or a selection
/// outside the source; [`Error::AtHead`] wrapping the first error of a head
/// (in (layer, head) order): non-finite entries, a narrowing that overflows
/// or underflows, SVD non-convergence, a reading error of the source, ….
pub fn analyze<S: HeadSource>(source: &S, params: AnalysisParams) -> Result<ModelReport> {
    analyze_with(source, params, &|| {})
}

/// [`analyze`], calling `done()` once per head as it finishes (from the
/// worker threads): for progress bars.
///
/// # Errors
///
/// As [`analyze`].
pub fn analyze_with<S: HeadSource>(
    source: &S,
    params: AnalysisParams,
    done: &(dyn Fn() + Sync),
) -> Result<ModelReport> {
    match params.precision {
        Precision::F32 => analyze_in::<S, f32>(source, params, done),
        Precision::F64 => analyze_in::<S, f64>(source, params, done),
        Precision::F16 | Precision::BF16 => Err(Error::InvalidParameter {
            name: "precision",
            reason: "the arithmetic must be f32 or f64 (f16 and bf16 are storage formats)",
        }),
    }
}

fn analyze_in<S: HeadSource, T: Scalar>(
    source: &S,
    params: AnalysisParams,
    done: &(dyn Fn() + Sync),
) -> Result<ModelReport> {
    let shape = source.shape();
    let selection = Selection::resolve(&params, shape)?;
    let [l0, _] = selection.layers;
    let [h0, h1] = selection.heads;
    let per_layer = h1 - h0;
    let data_precision = params.data_precision.unwrap_or_else(|| source.precision());
    let eps = T::lit(data_precision.epsilon().max(T::EPSILON.to_f64()));
    let summaries = map_indices(selection.len(), |index| {
        let (layer, head) = (l0 + index / per_layer, h0 + index % per_layer);
        let s = summarize_head::<S, T>(source, layer, head, &params, eps)
            .map_err(|e| e.at_head(layer, head));
        done();
        s
    })?;
    let layer_summaries = summaries
        .chunks(per_layer)
        .map(|c| aggregate(c[0].layer, c))
        .collect::<Result<Vec<_>>>()?;
    Ok(ModelReport {
        precision: params.precision,
        data_precision,
        shape,
        selection,
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
    params: &AnalysisParams,
    eps: T,
) -> Result<HeadSummary> {
    let a = head_in::<S, T>(source, layer, head)?;
    let (n, m) = a.shape();
    let sigma = singular_values(&a, params.backend)?.into_vec();
    let top_keys = if params.top_keys == 0 || sigma[0] == T::zero() {
        Vec::new()
    } else {
        let v1 = randomized_svd(&a, 1, RandomizedParams::default().backend(params.backend))?;
        let mut keys: Vec<KeyWeight> = v1
            .v_t()
            .row(0)
            .iter()
            .enumerate()
            .map(|(key, &w)| KeyWeight {
                key,
                weight: w.abs().to_f64(),
            })
            .collect();
        keys.sort_by(|x, y| y.weight.total_cmp(&x.weight).then(x.key.cmp(&y.key)));
        keys.truncate(params.top_keys);
        keys
    };
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
        top_keys,
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

/// The distribution over prompts of one (layer, head)'s summaries; see
/// [Populations](self#populations). Ranks are fractions of k = min(n, m).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PopulationHead {
    /// Layer index.
    pub layer: usize,
    /// Head index.
    pub head: usize,
    /// Number of prompts.
    pub prompts: usize,
    /// σ₁.
    pub sigma_max: Stats,
    /// Effective rank.
    pub effective_rank: Stats,
    /// Stable rank.
    pub stable_rank: Stats,
    /// Numerical rank / k.
    pub numerical_rank_fraction: Stats,
    /// r90 / k.
    pub energy_rank_90_fraction: Stats,
    /// r99 / k.
    pub energy_rank_99_fraction: Stats,
    /// r99.9 / k.
    pub energy_rank_999_fraction: Stats,
}

/// The same quantities as [`PopulationHead`], over every head of a layer
/// and every prompt.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PopulationLayer {
    /// Layer index.
    pub layer: usize,
    /// Number of (prompt, head) pairs.
    pub samples: usize,
    /// σ₁.
    pub sigma_max: Stats,
    /// Effective rank.
    pub effective_rank: Stats,
    /// Stable rank.
    pub stable_rank: Stats,
    /// Numerical rank / k.
    pub numerical_rank_fraction: Stats,
    /// r90 / k.
    pub energy_rank_90_fraction: Stats,
    /// r99 / k.
    pub energy_rank_99_fraction: Stats,
    /// r99.9 / k.
    pub energy_rank_999_fraction: Stats,
}

/// Per-(layer, head) and per-layer distributions over several prompts; see
/// [Populations](self#populations).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Population {
    /// Number of prompts.
    pub prompts: usize,
    /// One entry per (layer, head) analysed in every prompt, layer-major.
    pub heads: Vec<PopulationHead>,
    /// One entry per layer.
    pub layers: Vec<PopulationLayer>,
}

/// The quantities of a population, for one head summary.
fn population_values(h: &HeadSummary) -> [f64; 7] {
    let k = h.n.min(h.m) as f64;
    [
        h.sigma_max,
        h.effective_rank,
        h.stable_rank,
        h.numerical_rank as f64 / k,
        h.energy_rank_90 as f64 / k,
        h.energy_rank_99 as f64 / k,
        h.energy_rank_999 as f64 / k,
    ]
}

/// Stats of each of the seven quantities over `samples`.
fn population_stats(samples: &[&HeadSummary]) -> Result<[Stats; 7]> {
    let values: Vec<[f64; 7]> = samples.iter().map(|h| population_values(h)).collect();
    let column = |c: usize| Stats::of(&values.iter().map(|v| v[c]).collect::<Vec<_>>());
    Ok([
        column(0)?,
        column(1)?,
        column(2)?,
        column(3)?,
        column(4)?,
        column(5)?,
        column(6)?,
    ])
}

impl Population {
    /// The population of `reports`, one per prompt.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] for no reports; [`Error::InvalidParameter`] unless
    /// every report has the same layers and heads and covers the same
    /// selection.
    ///
    /// # Examples
    ///
    /// ```
    /// use attention_svd::analysis::{analyze, AnalysisParams, Population};
    /// use attention_svd::Stack;
    ///
    /// let prompt = |n: usize| {
    ///     let a: Vec<f64> = (0..n * n).map(|x| if x % n <= x / n { 1.0 / (x / n + 1) as f64 } else { 0.0 }).collect();
    ///     analyze(&Stack::new([1, 1, n, n], a).unwrap(), AnalysisParams::default()).unwrap()
    /// };
    /// let p = Population::of(&[prompt(4), prompt(8), prompt(16)]).unwrap();
    /// assert_eq!((p.prompts, p.heads.len(), p.layers.len()), (3, 1, 1));
    /// assert_eq!(p.heads[0].numerical_rank_fraction.median, 1.0); // causal ⇒ full rank
    /// ```
    pub fn of(reports: &[ModelReport]) -> Result<Self> {
        let Some(first) = reports.first() else {
            return Err(Error::Empty {
                what: "reports",
                rows: 0,
                cols: 0,
            });
        };
        let same =
            |r: &ModelReport| r.shape[..2] == first.shape[..2] && r.selection == first.selection;
        if !reports.iter().all(same) {
            return Err(Error::InvalidParameter {
                name: "reports",
                reason: "every prompt must have the same layers and heads, and the same selection",
            });
        }
        let heads = first
            .heads
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let samples: Vec<&HeadSummary> = reports.iter().map(|r| &r.heads[i]).collect();
                let [sigma_max, effective_rank, stable_rank, num, r90, r99, r999] =
                    population_stats(&samples)?;
                Ok(PopulationHead {
                    layer: h.layer,
                    head: h.head,
                    prompts: reports.len(),
                    sigma_max,
                    effective_rank,
                    stable_rank,
                    numerical_rank_fraction: num,
                    energy_rank_90_fraction: r90,
                    energy_rank_99_fraction: r99,
                    energy_rank_999_fraction: r999,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let layers = first
            .layers
            .iter()
            .map(|l| {
                let samples: Vec<&HeadSummary> = reports
                    .iter()
                    .flat_map(|r| r.heads.iter().filter(|h| h.layer == l.layer))
                    .collect();
                let [sigma_max, effective_rank, stable_rank, num, r90, r99, r999] =
                    population_stats(&samples)?;
                Ok(PopulationLayer {
                    layer: l.layer,
                    samples: samples.len(),
                    sigma_max,
                    effective_rank,
                    stable_rank,
                    numerical_rank_fraction: num,
                    energy_rank_90_fraction: r90,
                    energy_rank_99_fraction: r99,
                    energy_rank_999_fraction: r999,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Population {
            prompts: reports.len(),
            heads,
            layers,
        })
    }
}
