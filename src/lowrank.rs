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
//! O(k) for the spectral functions; [`truncate`] adds one SVD, and forming A_r
//! densely ([`Svd::reconstruct`]) costs O(n·m·r).
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

use crate::num::sum::norm_of_sorted;
use crate::svd::{Backend, Svd, svd};
use crate::view::AsMatrixRef;
use crate::{Error, Result, Scalar, check};

/// The best rank-r approximation A_r of `a` in factored form: an SVD with
/// `backend`, then [`Svd::truncate`].
///
/// # Errors
///
/// The errors of [`svd`], and [`Error::InvalidRank`] if
/// r > min(n, m).
///
/// # Examples
///
/// ```
/// use attention_svd::nalgebra::DMatrix;
/// use attention_svd::{lowrank::truncate, svd::Backend};
///
/// let a = DMatrix::<f64>::from_fn(4, 4, |i, j| if j <= i { 1.0 / (i + 1) as f64 } else { 0.0 });
/// let a2 = truncate(&a, 2, Backend::Auto).unwrap();
/// assert_eq!(a2.rank(), 2);
/// assert_eq!(a2.reconstruct().shape(), (4, 4));
/// ```
pub fn truncate<T: Scalar>(a: &impl AsMatrixRef<T>, r: usize, backend: Backend) -> Result<Svd<T>> {
    let a = a.as_matrix_ref();
    let (n, m) = a.shape();
    check::rank(r, 0, n.min(m))?;
    svd(&a, backend)?.truncate(r)
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
    check::rank(r, 0, sigma.len())?;
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
    check::rank(r, 0, sigma.len())?;
    let e = norm_of_sorted(&sigma[r..]);
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
    check::rank(r, 0, sigma.len())?;
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
