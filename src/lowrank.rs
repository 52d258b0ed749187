//! Best rank-r approximation (Eckart–Young–Mirsky) and spectral energy.
//!
//! # Definitions
//!
//! For A = Σᵢ σᵢ uᵢ vᵢᵀ with σ₁ ≥ … ≥ σ_k ≥ 0, the rank-r truncation is
//!
//! ```text
//! A_r = Σ_{i≤r} σᵢ uᵢ vᵢᵀ = U_r · diag(σ₁…σ_r) · V_rᵀ,       0 ≤ r ≤ k.
//! ```
//!
//! By the Eckart–Young–Mirsky theorem (`docs/THEORY.md`, T8) it is a best
//! rank-r approximation in both norms, with errors
//!
//! ```text
//! ‖A − A_r‖_F = √(Σ_{i>r} σᵢ²)          (frobenius_error)
//! ‖A − A_r‖₂  = σ_{r+1}  (0 if r = k)    (spectral_error)
//! ```
//!
//! The **energy** captured by the first r directions, and the smallest rank
//! reaching a target τ ∈ (0, 1], are
//!
//! ```text
//! E(r) = Σ_{i≤r} σᵢ² / Σᵢ σᵢ²        (energy_captured, cumulative_energy)
//! r(τ) = min { r : E(r) ≥ τ }          (rank_for_energy)
//! ```
//!
//! and the **normalised cumulative singular value** that Linformer
//! (Wang et al. 2020, Fig. 1) plots is
//!
//! ```text
//! C(r) = Σ_{i≤r} σᵢ / Σᵢ σᵢ            (normalized_cumulative_singular_values)
//! ```
//!
//! # Conventions and accuracy
//!
//! Sums are taken on the scale of σ₁ (no overflow), with E(k) = C(k) = 1
//! exactly and E, C non-decreasing in r exactly (not only up to rounding).
//! For the zero matrix, every r captures all of the (zero) energy: E(r) = 1
//! and r(τ) = 0. Inputs that are slices of singular values must be finite,
//! non-negative and non-increasing ([`Error::InvalidSpectrum`] otherwise),
//! and non-empty ([`Error::Empty`]).
//!
//! # Complexity
//!
//! O(k) for the spectral functions; O((n + m)·r) to extract the factors and
//! O(n·m·r) to form A_r densely.
//!
//! # Examples
//!
//! ```
//! use attention_svd::lowrank::{energy_captured, rank_for_energy, frobenius_error};
//!
//! let sigma = [3.0_f64, 2.0, 1.0, 0.0];
//! assert!((energy_captured(&sigma, 1).unwrap() - 9.0 / 14.0).abs() < 1e-15);
//! assert_eq!(rank_for_energy(&sigma, 0.9).unwrap(), 2);
//! assert!((frobenius_error(&sigma, 1).unwrap() - 5f64.sqrt()).abs() < 1e-15);
//! ```

use nalgebra::DMatrix;

use crate::stochastic::compensated_sum;
use crate::svd::{svd, Backend, Svd};
use crate::{check, Error, Result, Scalar};

/// A rank-r factored matrix U_r·diag(σ_r)·V_rᵀ: U_r is n×r, V_rᵀ is r×m.
///
/// # Examples
///
/// ```
/// use attention_svd::{lowrank::LowRank, svd::{svd, Backend}};
/// use nalgebra::DMatrix;
///
/// let a = DMatrix::<f64>::from_fn(5, 4, |i, j| 1.0 / (1 + i + j) as f64);
/// let a2 = LowRank::from_svd(&svd(&a, Backend::Auto).unwrap(), 2).unwrap();
/// assert_eq!((a2.rank(), a2.shape()), (2, (5, 4)));
/// assert_eq!((a2.u().shape(), a2.v_t().shape()), ((5, 2), (2, 4)));
/// assert_eq!(a2.singular_values().len(), 2);
/// assert_eq!(a2.to_dense().shape(), (5, 4));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LowRank<T> {
    u: DMatrix<T>,
    sigma: Vec<T>,
    v_t: DMatrix<T>,
}

impl<T: Scalar> LowRank<T> {
    /// Wraps factors that already form an SVD (orthonormal columns, σ
    /// sorted and ≥ 0); shapes are the caller's responsibility.
    pub(crate) fn from_parts(u: DMatrix<T>, sigma: Vec<T>, v_t: DMatrix<T>) -> Self {
        LowRank { u, sigma, v_t }
    }

    /// The rank-r truncation A_r of a factorisation, 0 ≤ r ≤ k.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRank`] if r > k = min(n, m).
    ///
    /// # Examples
    ///
    /// ```
    /// use attention_svd::{lowrank::LowRank, svd::{svd, Backend}};
    /// use nalgebra::dmatrix;
    ///
    /// let a = dmatrix![2.0_f64, 0.0; 0.0, 1.0];
    /// let a1 = LowRank::from_svd(&svd(&a, Backend::Auto).unwrap(), 1).unwrap();
    /// assert!((a1.to_dense() - dmatrix![2.0, 0.0; 0.0, 0.0]).norm() < 1e-15);
    /// ```
    pub fn from_svd(f: &Svd<T>, r: usize) -> Result<Self> {
        let k = f.singular_values().len();
        if r > k {
            return Err(Error::InvalidRank { rank: r, max: k });
        }
        Ok(LowRank {
            u: f.u().columns(0, r).into_owned(),
            sigma: f.singular_values()[..r].to_vec(),
            v_t: f.v_t().rows(0, r).into_owned(),
        })
    }

    /// U_r (n×r).
    pub fn u(&self) -> &DMatrix<T> {
        &self.u
    }

    /// σ₁ ≥ … ≥ σ_r.
    pub fn singular_values(&self) -> &[T] {
        &self.sigma
    }

    /// V_rᵀ (r×m).
    pub fn v_t(&self) -> &DMatrix<T> {
        &self.v_t
    }

    /// The number of kept directions r.
    pub fn rank(&self) -> usize {
        self.sigma.len()
    }

    /// The shape (n, m) of the approximated matrix.
    pub fn shape(&self) -> (usize, usize) {
        (self.u.nrows(), self.v_t.ncols())
    }

    /// A_r as a dense n×m matrix.
    pub fn to_dense(&self) -> DMatrix<T> {
        let mut us = self.u.clone();
        for (j, &s) in self.sigma.iter().enumerate() {
            us.column_mut(j).scale_mut(s);
        }
        us * &self.v_t
    }
}

/// The best rank-r approximation of `a` in factored form (an SVD with
/// `backend`, then [`LowRank::from_svd`]).
///
/// # Errors
///
/// The errors of [`svd`], and [`Error::InvalidRank`] if
/// r > min(n, m).
///
/// # Examples
///
/// ```
/// use attention_svd::{lowrank::truncate, svd::Backend};
/// use nalgebra::DMatrix;
///
/// let a = DMatrix::<f64>::from_fn(4, 4, |i, j| if j <= i { 1.0 / (i + 1) as f64 } else { 0.0 });
/// let a2 = truncate(&a, 2, Backend::Auto).unwrap();
/// assert_eq!(a2.rank(), 2);
/// assert_eq!(a2.to_dense().shape(), (4, 4));
/// ```
pub fn truncate<T: Scalar>(a: &DMatrix<T>, r: usize, backend: Backend) -> Result<LowRank<T>> {
    let k = a.nrows().min(a.ncols());
    if r > k {
        return Err(Error::InvalidRank { rank: r, max: k });
    }
    LowRank::from_svd(&svd(a, backend)?, r)
}

/// E(r) = Σ_{i≤r} σᵢ² / Σ σᵢ², the share of ‖A‖²_F kept by A_r.
///
/// # Errors
///
/// [`Error::Empty`] for an empty slice; [`Error::InvalidSpectrum`] /
/// [`Error::NonFinite`] for a slice that is not a spectrum;
/// [`Error::InvalidRank`] if r > σ.len().
///
/// # Examples
///
/// ```
/// use attention_svd::lowrank::energy_captured;
/// assert_eq!(energy_captured(&[1.0_f32, 1.0], 1).unwrap(), 0.5);
/// assert_eq!(energy_captured(&[1.0_f32, 1.0], 2).unwrap(), 1.0);
/// ```
pub fn energy_captured<T: Scalar>(sigma: &[T], r: usize) -> Result<T> {
    check::nonempty_spectrum(sigma)?;
    if r > sigma.len() {
        return Err(Error::InvalidRank {
            rank: r,
            max: sigma.len(),
        });
    }
    if r == 0 {
        return Ok(if is_zero(sigma) { T::one() } else { T::zero() });
    }
    Ok(cumulative_energy(sigma)?[r - 1])
}

/// [E(1), …, E(k)]: the cumulative energy profile, non-decreasing, ending at 1.
///
/// # Errors
///
/// As [`energy_captured`].
///
/// # Examples
///
/// ```
/// use attention_svd::lowrank::cumulative_energy;
/// assert_eq!(cumulative_energy(&[2.0_f64, 1.0, 1.0]).unwrap(), vec![4.0 / 6.0, 5.0 / 6.0, 1.0]);
/// ```
pub fn cumulative_energy<T: Scalar>(sigma: &[T]) -> Result<Vec<T>> {
    check::nonempty_spectrum(sigma)?;
    Ok(normalized_prefix_sums(sigma, |s| s * s))
}

/// r(τ) = min { r : E(r) ≥ τ }, the smallest rank whose truncation keeps a
/// share τ of the energy.
///
/// # Errors
///
/// [`Error::InvalidEnergy`] unless 0 < τ ≤ 1; the spectrum errors of
/// [`energy_captured`].
///
/// # Examples
///
/// ```
/// use attention_svd::lowrank::rank_for_energy;
/// let sigma = [10.0_f64, 1.0, 0.1];
/// assert_eq!(rank_for_energy(&sigma, 0.99).unwrap(), 1);
/// assert_eq!(rank_for_energy(&sigma, 1.0).unwrap(), 3);
/// ```
pub fn rank_for_energy<T: Scalar>(sigma: &[T], target: T) -> Result<usize> {
    if !(target > T::zero() && target <= T::one()) {
        return Err(Error::InvalidEnergy {
            target: target.to_f64(),
        });
    }
    let e = cumulative_energy(sigma)?;
    if is_zero(sigma) {
        return Ok(0);
    }
    // E(k) = 1 ≥ τ exactly, so the search always succeeds.
    Ok(e.iter()
        .position(|&x| x >= target)
        .map_or(sigma.len(), |i| i + 1))
}

/// ‖A − A_r‖_F = √(Σ_{i>r} σᵢ²) (Eckart–Young–Mirsky).
///
/// # Errors
///
/// As [`energy_captured`], and [`Error::Overflow`] if the result exceeds
/// the type's range.
///
/// # Examples
///
/// ```
/// use attention_svd::lowrank::frobenius_error;
/// assert_eq!(frobenius_error(&[5.0_f64, 3.0, 4.0 * 0.0], 1).unwrap(), 3.0);
/// ```
pub fn frobenius_error<T: Scalar>(sigma: &[T], r: usize) -> Result<T> {
    check::nonempty_spectrum(sigma)?;
    if r > sigma.len() {
        return Err(Error::InvalidRank {
            rank: r,
            max: sigma.len(),
        });
    }
    let e = scaled_norm(&sigma[r..]);
    if e.finite() {
        Ok(e)
    } else {
        Err(Error::Overflow {
            what: "Frobenius error",
        })
    }
}

/// ‖A − A_r‖₂ = σ_{r+1}, or 0 when r = k (Eckart–Young–Mirsky).
///
/// # Errors
///
/// As [`energy_captured`].
///
/// # Examples
///
/// ```
/// use attention_svd::lowrank::spectral_error;
/// assert_eq!(spectral_error(&[5.0_f64, 3.0], 1).unwrap(), 3.0);
/// assert_eq!(spectral_error(&[5.0_f64, 3.0], 2).unwrap(), 0.0);
/// ```
pub fn spectral_error<T: Scalar>(sigma: &[T], r: usize) -> Result<T> {
    check::nonempty_spectrum(sigma)?;
    if r > sigma.len() {
        return Err(Error::InvalidRank {
            rank: r,
            max: sigma.len(),
        });
    }
    Ok(sigma.get(r).copied().unwrap_or_else(T::zero))
}

/// [C(1), …, C(k)] with C(r) = Σ_{i≤r} σᵢ / Σ σᵢ: the normalised cumulative
/// singular value curve of Linformer (Wang et al. 2020, Fig. 1).
///
/// # Errors
///
/// As [`energy_captured`].
///
/// # Examples
///
/// ```
/// use attention_svd::lowrank::normalized_cumulative_singular_values;
/// let c = normalized_cumulative_singular_values(&[3.0_f64, 1.0]).unwrap();
/// assert_eq!(c, vec![0.75, 1.0]);
/// ```
pub fn normalized_cumulative_singular_values<T: Scalar>(sigma: &[T]) -> Result<Vec<T>> {
    check::nonempty_spectrum(sigma)?;
    Ok(normalized_prefix_sums(sigma, |s| s))
}

fn is_zero<T: Scalar>(sigma: &[T]) -> bool {
    sigma.first().is_none_or(|&s| s == T::zero())
}

/// Prefix sums of f(σᵢ/σ₁) divided by their total; all ones for σ = 0.
fn normalized_prefix_sums<T: Scalar>(sigma: &[T], f: impl Fn(T) -> T) -> Vec<T> {
    if is_zero(sigma) {
        return vec![T::one(); sigma.len()];
    }
    let s1 = sigma[0];
    let mut acc = T::zero();
    let prefix: Vec<T> = sigma
        .iter()
        .map(|&s| {
            acc += f(s / s1);
            acc
        })
        .collect();
    let total = *prefix.last().expect("non-empty");
    prefix.into_iter().map(|p| p / total).collect()
}

/// √(Σ xᵢ²) for non-negative, non-increasing x, on the scale of x₀.
pub(crate) fn scaled_norm<T: Scalar>(x: &[T]) -> T {
    match x.first() {
        None => T::zero(),
        Some(&x0) if x0 == T::zero() => T::zero(),
        Some(&x0) => {
            // Smallest terms first for accuracy.
            let ss = compensated_sum(x.iter().rev().map(|&v| (v / x0) * (v / x0)));
            x0 * ss.sqrt()
        }
    }
}
