//! Scalar summaries of a spectrum: ranks, norms, conditioning.
//!
//! # Definitions
//!
//! For singular values σ₁ ≥ … ≥ σ_k ≥ 0 of an n×m matrix A ≠ 0:
//!
//! ```text
//! effective rank   erank(A) = exp(−Σᵢ pᵢ ln pᵢ),  pᵢ = σᵢ / Σⱼ σⱼ,  0·ln 0 := 0
//!                  (Roy & Vetterli 2007)
//! stable rank      srank(A) = ‖A‖²_F / ‖A‖²₂ = Σᵢ σᵢ² / σ₁²
//! numerical rank   rank_τ(A) = #{ i : σᵢ > τ },  τ = max(atol, rtol·σ₁),
//!                  default rtol = max(n, m)·ε (numpy.linalg.matrix_rank)
//! norms            ‖A‖₂ = σ₁,  ‖A‖_* = Σᵢ σᵢ,  ‖A‖_F = √(Σᵢ σᵢ²)
//! condition number κ₂(A) = σ₁ / σ_k   (+∞ when σ_k = 0)
//! ```
//!
//! They satisfy 1 ≤ srank ≤ erank ≤ rank ≤ min(n, m) (`docs/THEORY.md`,
//! T10), and erank, srank are invariant under A → c·A, c ≠ 0.
//!
//! # Conventions
//!
//! For the zero matrix, erank = srank = numerical rank = 0 and κ₂ = +∞.
//! erank is clamped to the interval from srank to #{σᵢ > 0}, its exact
//! bounds (T10), so that rounding in exp(ln(·)) cannot break them; "rank" in
//! these bounds is the exact rank #{σᵢ > 0}, which the numerical rank can
//! undercut by the singular values it declares round-off. σ slices must be finite, non-negative and
//! non-increasing ([`Error::InvalidSpectrum`]), and non-empty
//! ([`Error::Empty`]).
//!
//! # Complexity
//!
//! O(k) per metric; [`summarize`] adds one values-only SVD, O(n·m·k).
//!
//! # Examples
//!
//! ```
//! use attention_svd::metrics::{effective_rank, stable_rank};
//!
//! let sigma = [1.0_f64, 1.0, 1.0, 1.0];
//! assert!((effective_rank(&sigma).unwrap() - 4.0).abs() < 1e-12);
//! assert_eq!(stable_rank(&sigma).unwrap(), 4.0);
//! ```

use crate::lowrank::rank_for_energy;
use crate::num::sum::{compensated_sum, norm_of_sorted};
use crate::svd::{Backend, singular_values};
use crate::view::AsMatrixRef;
use crate::{Error, Result, Scalar, check};

/// The threshold τ below which singular values count as zero in
/// [`numerical_rank`]: τ = max(atol, rtol·σ₁).
///
/// With neither set, rtol = max(n, m)·ε (numpy's default). Setting only
/// `atol` uses τ = atol; setting only `rtol` uses τ = rtol·σ₁.
///
/// # Examples
///
/// ```
/// use attention_svd::metrics::{numerical_rank, RankTolerance};
///
/// let sigma = [1.0_f64, 1e-3, 1e-20];
/// assert_eq!(numerical_rank(&sigma, (3, 3), RankTolerance::default()).unwrap(), 2);
/// assert_eq!(numerical_rank(&sigma, (3, 3), RankTolerance::relative(1e-2)).unwrap(), 1);
/// assert_eq!(numerical_rank(&sigma, (3, 3), RankTolerance::absolute(1e-30)).unwrap(), 3);
/// // Both: τ = max(atol, rtol·σ₁).
/// let both = RankTolerance::relative(1e-25).with_atol(1e-2);
/// assert_eq!(both.threshold(1.0, (3, 3)).unwrap(), 1e-2);
/// assert_eq!(RankTolerance::absolute(1e-2).with_rtol(0.5).threshold(1.0, (3, 3)).unwrap(), 0.5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RankTolerance<T> {
    atol: Option<T>,
    rtol: Option<T>,
}

impl<T: Scalar> Default for RankTolerance<T> {
    /// Neither atol nor rtol: τ = max(n, m)·ε·σ₁.
    fn default() -> Self {
        RankTolerance {
            atol: None,
            rtol: None,
        }
    }
}

impl<T: Scalar> RankTolerance<T> {
    /// An absolute threshold τ = atol.
    pub fn absolute(atol: T) -> Self {
        RankTolerance {
            atol: Some(atol),
            rtol: None,
        }
    }

    /// A threshold relative to the largest singular value, τ = rtol·σ₁.
    pub fn relative(rtol: T) -> Self {
        RankTolerance {
            atol: None,
            rtol: Some(rtol),
        }
    }

    /// Adds an absolute floor: τ = max(atol, rtol·σ₁).
    pub fn with_atol(mut self, atol: T) -> Self {
        self.atol = Some(atol);
        self
    }

    /// Adds a relative part: τ = max(atol, rtol·σ₁).
    pub fn with_rtol(mut self, rtol: T) -> Self {
        self.rtol = Some(rtol);
        self
    }

    /// The threshold τ for singular values with largest value `sigma_max`
    /// of an n×m matrix.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTolerance`] if atol or rtol is not finite and
    /// positive; [`Error::InvalidSpectrum`] if `sigma_max` is negative or
    /// not finite; [`Error::Overflow`] if rtol·σ₁ overflows.
    pub fn threshold(&self, sigma_max: T, (n, m): (usize, usize)) -> Result<T> {
        check::spectrum(&[sigma_max])?;
        let atol = self.atol.map(|t| check::tolerance(t, "atol")).transpose()?;
        let rtol = self.rtol.map(|t| check::tolerance(t, "rtol")).transpose()?;
        let rtol = match (atol, rtol) {
            (None, None) => Some(T::from_count(n.max(m)) * T::EPSILON),
            (_, r) => r,
        };
        let rel = rtol.map_or(T::zero(), |r| r * sigma_max);
        if !rel.finite() {
            return Err(Error::Overflow {
                what: "rank threshold rtol·σ₁",
            });
        }
        Ok(atol.map_or(rel, |a| a.max(rel)))
    }
}

/// Effective rank exp(H(p)), pᵢ = σᵢ/Σσ (Roy & Vetterli 2007).
///
/// # Errors
///
/// [`Error::Empty`] for an empty slice; [`Error::InvalidSpectrum`] /
/// [`Error::NonFinite`] for a slice that is not a spectrum.
///
/// # Examples
///
/// ```
/// use attention_svd::metrics::effective_rank;
/// assert_eq!(effective_rank(&[2.0_f64, 0.0]).unwrap(), 1.0);
/// ```
pub fn effective_rank<T: Scalar>(sigma: &[T]) -> Result<T> {
    check::nonempty_spectrum(sigma)?;
    if sigma[0] == T::zero() {
        return Ok(T::zero());
    }
    let s1 = sigma[0];
    let total = compensated_sum(sigma.iter().map(|&s| s / s1));
    // Terms whose pᵢ underflows to 0 contribute 0·ln 0 := 0.
    let entropy = -compensated_sum(sigma.iter().filter_map(|&s| {
        let p = (s / s1) / total;
        (p > T::zero()).then(|| p * p.ln())
    }));
    // Clamp into the exact bounds srank ≤ erank ≤ #{σᵢ > 0} (T10): the true
    // value lies there, so this only removes rounding.
    let nonzero = sigma.iter().filter(|&&s| s > T::zero()).count();
    let lower = stable_rank(sigma)?.max(T::one());
    Ok(entropy.exp().max(lower).min(T::from_count(nonzero)))
}

/// Stable rank Σσᵢ²/σ₁² = ‖A‖²_F/‖A‖²₂.
///
/// # Errors
///
/// As [`effective_rank`].
///
/// # Examples
///
/// ```
/// use attention_svd::metrics::stable_rank;
/// assert_eq!(stable_rank(&[2.0_f64, 1.0]).unwrap(), 1.25);
/// ```
pub fn stable_rank<T: Scalar>(sigma: &[T]) -> Result<T> {
    check::nonempty_spectrum(sigma)?;
    if sigma[0] == T::zero() {
        return Ok(T::zero());
    }
    let s1 = sigma[0];
    Ok(compensated_sum(
        sigma.iter().rev().map(|&s| (s / s1) * (s / s1)),
    ))
}

/// Numerical rank #{σᵢ > τ} for singular values of an n×m matrix, with τ
/// from [`RankTolerance`] (the shape sets its default rtol).
///
/// `sigma` may hold only the largest singular values (σ.len() ≤ min(n, m),
/// e.g. the r values of a rank-r factorisation); those not given count as
/// below τ, which is exact when they are zero and a lower bound otherwise.
///
/// # Errors
///
/// As [`effective_rank`]; [`Error::ShapeMismatch`] if σ.len() > min(n, m);
/// [`Error::InvalidTolerance`] for a bad atol/rtol.
///
/// # Examples
///
/// ```
/// use attention_svd::metrics::{numerical_rank, RankTolerance};
/// let sigma = [1.0_f64, 1e-15];
/// // τ = 2·ε·1 ≈ 4.4e-16 < 1e-15.
/// assert_eq!(numerical_rank(&sigma, (2, 2), RankTolerance::default()).unwrap(), 2);
/// ```
pub fn numerical_rank<T: Scalar>(
    sigma: &[T],
    shape: (usize, usize),
    tol: RankTolerance<T>,
) -> Result<usize> {
    check::nonempty_spectrum(sigma)?;
    let k = shape.0.min(shape.1);
    if sigma.len() > k {
        return Err(Error::ShapeMismatch {
            what: "singular values",
            expected: (k, 1),
            found: (sigma.len(), 1),
        });
    }
    let tau = tol.threshold(sigma[0], shape)?;
    Ok(sigma.iter().filter(|&&s| s > tau).count())
}

/// Spectral norm ‖A‖₂ = σ₁.
///
/// # Errors
///
/// As [`effective_rank`].
///
/// # Examples
///
/// ```
/// use attention_svd::metrics::spectral_norm;
/// assert_eq!(spectral_norm(&[3.0_f64, 1.0]).unwrap(), 3.0);
/// ```
pub fn spectral_norm<T: Scalar>(sigma: &[T]) -> Result<T> {
    check::nonempty_spectrum(sigma)?;
    Ok(sigma[0])
}

/// Nuclear norm ‖A‖_* = Σσᵢ.
///
/// # Errors
///
/// As [`effective_rank`], and [`Error::Overflow`] if the sum overflows.
///
/// # Examples
///
/// ```
/// use attention_svd::metrics::nuclear_norm;
/// assert_eq!(nuclear_norm(&[3.0_f64, 1.0]).unwrap(), 4.0);
/// ```
pub fn nuclear_norm<T: Scalar>(sigma: &[T]) -> Result<T> {
    check::nonempty_spectrum(sigma)?;
    let s = compensated_sum(sigma.iter().rev().copied());
    if s.finite() {
        Ok(s)
    } else {
        Err(Error::Overflow {
            what: "nuclear norm",
        })
    }
}

/// Frobenius norm ‖A‖_F = √(Σσᵢ²), computed on the scale of σ₁.
///
/// # Errors
///
/// As [`nuclear_norm`].
///
/// # Examples
///
/// ```
/// use attention_svd::metrics::frobenius_norm;
/// assert_eq!(frobenius_norm(&[4.0_f64, 3.0]).unwrap(), 5.0);
/// ```
pub fn frobenius_norm<T: Scalar>(sigma: &[T]) -> Result<T> {
    check::nonempty_spectrum(sigma)?;
    let f = norm_of_sorted(sigma);
    if f.finite() {
        Ok(f)
    } else {
        Err(Error::Overflow {
            what: "Frobenius norm",
        })
    }
}

/// 2-norm condition number κ₂ = σ₁/σ_k; +∞ for a singular (or zero)
/// matrix, and when σ₁/σ_k exceeds the type's range.
///
/// # Errors
///
/// As [`effective_rank`].
///
/// # Examples
///
/// ```
/// use attention_svd::metrics::condition_number;
/// assert_eq!(condition_number(&[4.0_f64, 2.0]).unwrap(), 2.0);
/// assert_eq!(condition_number(&[4.0_f64, 0.0]).unwrap(), f64::INFINITY);
/// ```
pub fn condition_number<T: Scalar>(sigma: &[T]) -> Result<T> {
    check::nonempty_spectrum(sigma)?;
    let last = sigma[sigma.len() - 1];
    if last == T::zero() {
        return Ok(T::INFINITY);
    }
    Ok(sigma[0] / last)
}

/// Every metric of this module, and the energy ranks of
/// [`lowrank`](crate::lowrank), for one matrix.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Summary<T> {
    /// Number of rows n.
    pub rows: usize,
    /// Number of columns m.
    pub cols: usize,
    /// σ₁ ≥ … ≥ σ_k ≥ 0, k = min(n, m).
    pub singular_values: Vec<T>,
    /// ‖A‖₂ = σ₁.
    pub spectral_norm: T,
    /// ‖A‖_* = Σσᵢ.
    pub nuclear_norm: T,
    /// ‖A‖_F.
    pub frobenius_norm: T,
    /// σ₁/σ_k (+∞ if singular).
    pub condition_number: T,
    /// Roy–Vetterli effective rank.
    pub effective_rank: T,
    /// ‖A‖²_F/‖A‖²₂.
    pub stable_rank: T,
    /// #{σᵢ > τ}, τ from the [`RankTolerance`] the summary was built with.
    pub numerical_rank: usize,
    /// The τ used for `numerical_rank` (σ below it are round-off).
    pub rank_threshold: T,
    /// Smallest r with E(r) ≥ 0.9.
    pub energy_rank_90: usize,
    /// Smallest r with E(r) ≥ 0.99.
    pub energy_rank_99: usize,
    /// Smallest r with E(r) ≥ 0.999.
    pub energy_rank_999: usize,
}

impl<T: Scalar> Summary<T> {
    /// The summary of the singular values `sigma` (all min(n, m) of them)
    /// of an n×m matrix, with the numerical rank counted against `tol`.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] unless σ.len() = min(n, m); as
    /// [`numerical_rank`] and [`nuclear_norm`].
    ///
    /// # Examples
    ///
    /// ```
    /// use attention_svd::metrics::{RankTolerance, Summary};
    /// let s = Summary::from_singular_values(vec![2.0_f64, 1.0, 0.0], (3, 4), RankTolerance::default()).unwrap();
    /// assert_eq!(s.numerical_rank, 2);
    /// assert_eq!(s.energy_rank_90, 2);
    /// assert_eq!(s.condition_number, f64::INFINITY);
    /// ```
    pub fn from_singular_values(
        sigma: Vec<T>,
        (rows, cols): (usize, usize),
        tol: RankTolerance<T>,
    ) -> Result<Self> {
        let k = rows.min(cols);
        if sigma.len() != k {
            return Err(Error::ShapeMismatch {
                what: "singular values",
                expected: (k, 1),
                found: (sigma.len(), 1),
            });
        }
        let numerical_rank = numerical_rank(&sigma, (rows, cols), tol)?;
        Ok(Summary {
            rows,
            cols,
            spectral_norm: spectral_norm(&sigma)?,
            nuclear_norm: nuclear_norm(&sigma)?,
            frobenius_norm: frobenius_norm(&sigma)?,
            condition_number: condition_number(&sigma)?,
            effective_rank: effective_rank(&sigma)?,
            stable_rank: stable_rank(&sigma)?,
            numerical_rank,
            rank_threshold: tol.threshold(sigma[0], (rows, cols))?,
            energy_rank_90: rank_for_energy(&sigma, T::lit(0.9))?,
            energy_rank_99: rank_for_energy(&sigma, T::lit(0.99))?,
            energy_rank_999: rank_for_energy(&sigma, T::lit(0.999))?,
            singular_values: sigma,
        })
    }
}

/// Parameters of [`summarize`]: the SVD backend (default
/// [`Backend::Auto`]) and the rank tolerance (default
/// [`RankTolerance::default`], numpy's).
///
/// # Examples
///
/// ```
/// use attention_svd::metrics::{RankTolerance, SummaryParams};
/// use attention_svd::svd::Backend;
/// let p = SummaryParams::default().backend(Backend::jacobi()).rank_tolerance(RankTolerance::relative(1e-6_f64));
/// # let _ = p;
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SummaryParams<T> {
    backend: Backend,
    rank_tolerance: RankTolerance<T>,
}

impl<T: Scalar> Default for SummaryParams<T> {
    fn default() -> Self {
        SummaryParams {
            backend: Backend::Auto,
            rank_tolerance: RankTolerance::default(),
        }
    }
}

impl<T: Scalar> SummaryParams<T> {
    /// Sets the SVD backend.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Sets the tolerance of the numerical rank.
    pub fn rank_tolerance(mut self, tol: RankTolerance<T>) -> Self {
        self.rank_tolerance = tol;
        self
    }
}

/// The [`Summary`] of `a`, from a values-only SVD.
///
/// # Errors
///
/// The errors of [`singular_values`] and of
/// [`Summary::from_singular_values`].
///
/// # Examples
///
/// ```
/// use attention_svd::metrics::{summarize, SummaryParams};
/// use attention_svd::nalgebra::DMatrix;
///
/// let a = DMatrix::<f64>::identity(4, 4);
/// let s = summarize(&a, SummaryParams::default()).unwrap();
/// assert!((s.effective_rank - 4.0).abs() < 1e-12);
/// assert_eq!(s.numerical_rank, 4);
/// ```
pub fn summarize<T: Scalar>(
    a: &impl AsMatrixRef<T>,
    params: SummaryParams<T>,
) -> Result<Summary<T>> {
    let a = a.as_matrix_ref();
    let sigma = singular_values(&a, params.backend)?.into_vec();
    Summary::from_singular_values(sigma, a.shape(), params.rank_tolerance)
}
