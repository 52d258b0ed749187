//! Singular value decomposition with sorted, non-negative singular values.
//!
//! # Definition
//!
//! For an n×m matrix A and k = min(n, m), the thin SVD is
//!
//! ```text
//! A = U·Σ·Vᵀ,   U: n×k,  Σ = diag(σ₁, …, σ_k),  Vᵀ: k×m,
//! UᵀU = VᵀV = I_k,   σ₁ ≥ σ₂ ≥ … ≥ σ_k ≥ 0.
//! ```
//!
//! Every result of this module has σ sorted non-increasing and ≥ 0, and
//! every failure is an [`Error`](crate::Error), never a NaN.
//!
//! # Backends
//!
//! | [`Backend`] | algorithm | cost | when to use |
//! |---|---|---|---|
//! | [`Auto`](Backend::Auto) (default) | nalgebra, validated; Jacobi if a check fails | nalgebra + O(n·m·k) checks | always, unless you know better |
//! | [`Nalgebra`](Backend::Nalgebra) | bidiagonalisation + implicit-shift QR | O(n·m·k) | speed, when you validate yourself |
//! | [`Jacobi`](Backend::Jacobi) | one-sided (Hestenes) Jacobi | O(sweeps·n·m·k) | small σ to high relative accuracy; a second opinion |
//!
//! `Auto` checks nalgebra's answer against the input: all finite, the energy
//! identity Σσᵢ² = ‖A‖²_F, and with vectors the residual ‖A − UΣVᵀ‖_F and the
//! orthogonality ‖UᵀU − I‖_F, ‖VᵀV − I‖_F, each against 8·max(n, m)·ε (times
//! ‖A‖_F for the residual). This catches nalgebra's silent failures such as
//! wrong σ on all-ones-like matrices with vectors requested (nalgebra issue
//! #1172), which uniform attention triggers. Which backend produced a result
//! is reported by [`Svd::method`].
//!
//! # Accuracy
//!
//! Both backends are backward stable: the computed factors are the exact SVD
//! of A + E with ‖E‖ = O(max(n, m)·ε·‖A‖), so by Weyl's inequality
//! |σ̃ᵢ − σᵢ| = O(max(n, m)·ε·σ₁) (`docs/THEORY.md`, T12). Jacobi is in
//! addition relatively accurate on graded matrices A = B·D (B well
//! conditioned, D diagonal): pick it when small singular values must be
//! right to relative accuracy (σ_min, condition numbers, log-scale spectra).
//! `Auto` checks backward error only, so it returns nalgebra's answer there,
//! whose small σ can be off by far more than ε relatively. The LAPACK-style
//! accuracy suite behind these statements is in `docs/ACCURACY.md`
//! (`cargo run --release --example accuracy`).
//!
//! # Examples
//!
//! ```
//! use attention_svd::svd::{svd, Backend};
//! use nalgebra::dmatrix;
//!
//! let a = dmatrix![3.0_f64, 0.0; 4.0, 5.0];
//! let f = svd(&a, Backend::Auto).unwrap();
//! // σ = (3√5, √5).
//! assert!((f.singular_values()[0] - 45f64.sqrt()).abs() < 1e-14);
//! assert!((f.singular_values()[1] - 5f64.sqrt()).abs() < 1e-14);
//! assert!((f.reconstruct() - &a).norm() < 1e-14);
//! ```

mod jacobi;
mod nalgebra;

use std::fmt;

use ::nalgebra::DMatrix;

use crate::{check, Result, Scalar};

/// The algorithm that computed a result (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// nalgebra's bidiagonal implicit-shift QR.
    Nalgebra,
    /// The crate's one-sided Jacobi.
    Jacobi,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Nalgebra => "nalgebra",
            Method::Jacobi => "Jacobi",
        })
    }
}

/// Which SVD algorithm to run; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum Backend {
    /// nalgebra, validated, with a Jacobi fallback.
    #[default]
    Auto,
    /// nalgebra only, with an iteration cap. Its output is sorted, made
    /// non-negative and checked for NaN, but **not validated**: nalgebra 0.35
    /// can return wrong singular values or non-orthogonal vectors without
    /// error (e.g. on uniform attention with vectors). Prefer `Auto`.
    Nalgebra(NalgebraParams),
    /// One-sided Jacobi only, with a sweep cap.
    Jacobi(JacobiParams),
}

impl Backend {
    /// [`Backend::Nalgebra`] with default parameters.
    ///
    /// # Examples
    ///
    /// ```
    /// use attention_svd::svd::{Backend, NalgebraParams};
    /// assert_eq!(Backend::nalgebra(), Backend::Nalgebra(NalgebraParams::default()));
    /// ```
    pub fn nalgebra() -> Self {
        Backend::Nalgebra(NalgebraParams::default())
    }

    /// [`Backend::Jacobi`] with default parameters.
    ///
    /// # Examples
    ///
    /// ```
    /// use attention_svd::svd::{Backend, JacobiParams};
    /// assert_eq!(Backend::jacobi(), Backend::Jacobi(JacobiParams::default()));
    /// ```
    pub fn jacobi() -> Self {
        Backend::Jacobi(JacobiParams::default())
    }
}

/// Parameters of the one-sided Jacobi backend.
///
/// # Examples
///
/// ```
/// use attention_svd::svd::{svd, Backend, JacobiParams};
/// use nalgebra::DMatrix;
///
/// let a = DMatrix::<f64>::from_fn(6, 6, |i, j| 1.0 / (i + j + 1) as f64);
/// let f = svd(&a, Backend::Jacobi(JacobiParams::default().max_sweeps(40))).unwrap();
/// assert_eq!(f.singular_values().len(), 6);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JacobiParams {
    max_sweeps: Option<usize>,
}

impl JacobiParams {
    /// Caps the number of sweeps (each sweep visits every column pair once).
    /// The default is [`JacobiParams::default_max_sweeps`]. A cap of 0 is
    /// rejected with [`Error::InvalidParameter`](crate::Error::InvalidParameter)
    /// when the backend runs.
    pub fn max_sweeps(mut self, sweeps: usize) -> Self {
        self.max_sweeps = Some(sweeps);
        self
    }

    /// The default sweep cap for `T`: max(30, mantissa bits) (30 for `f32`,
    /// 53 for `f64`). One-sided Jacobi converges quadratically once the
    /// columns are nearly orthogonal and typically stops after 6–12 sweeps;
    /// LAPACK's dgesvj caps at 30.
    pub fn default_max_sweeps<T: Scalar>() -> usize {
        (T::MANTISSA_DIGITS as usize).max(30)
    }

    pub(crate) fn sweeps_for<T: Scalar>(&self) -> Result<usize> {
        match self.max_sweeps {
            Some(0) => Err(crate::Error::InvalidParameter {
                name: "max_sweeps",
                reason: "the sweep cap must be at least 1",
            }),
            Some(k) => Ok(k),
            None => Ok(Self::default_max_sweeps::<T>()),
        }
    }
}

/// Parameters of the nalgebra backend.
///
/// # Examples
///
/// ```
/// use attention_svd::svd::{singular_values, Backend, NalgebraParams};
/// use nalgebra::dmatrix;
///
/// let b = Backend::Nalgebra(NalgebraParams::default().max_iterations(500));
/// let s = singular_values(&dmatrix![2.0_f32, 0.0; 0.0, 1.0], b).unwrap();
/// assert_eq!(s, vec![2.0, 1.0]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NalgebraParams {
    max_iterations: Option<usize>,
}

impl NalgebraParams {
    /// Caps the total number of implicit-shift QR steps. The default is
    /// [`NalgebraParams::default_max_iterations`]. A cap of 0 (which nalgebra
    /// would read as "no limit") is rejected with
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) when the
    /// backend runs.
    pub fn max_iterations(mut self, iterations: usize) -> Self {
        self.max_iterations = Some(iterations);
        self
    }

    /// The default cap for k = min(n, m) singular values of type `T`:
    /// max(30, mantissa bits / 2)·k QR steps (30·k for both `f32` and `f64`;
    /// the iteration deflates about one value every two or three steps).
    pub fn default_max_iterations<T: Scalar>(k: usize) -> usize {
        ((T::MANTISSA_DIGITS / 2) as usize)
            .max(30)
            .saturating_mul(k.max(1))
    }

    pub(crate) fn iterations_for<T: Scalar>(&self, k: usize) -> Result<usize> {
        match self.max_iterations {
            Some(0) => Err(crate::Error::InvalidParameter {
                name: "max_iterations",
                reason: "the iteration cap must be at least 1",
            }),
            Some(k) => Ok(k),
            None => Ok(Self::default_max_iterations::<T>(k)),
        }
    }
}

/// A thin SVD A = U·diag(σ)·Vᵀ with all factors present.
///
/// U is n×k, σ has length k, Vᵀ is k×m, k = min(n, m); σ is always sorted
/// non-increasing and ≥ 0. From `Auto` and `Jacobi` the columns of U and V
/// are orthonormal and UΣVᵀ reproduces A to O(max(n, m)·ε·‖A‖); from the
/// explicit `Nalgebra` backend these hold only as far as nalgebra gets them
/// right (see [`Backend::Nalgebra`]).
///
/// # Examples
///
/// ```
/// use attention_svd::svd::{svd, Backend, Method};
/// use nalgebra::dmatrix;
///
/// let a = dmatrix![1.0_f64, 1.0; 0.0, 1.0; 1.0, 0.0];
/// let f = svd(&a, Backend::jacobi()).unwrap();
/// assert_eq!(f.shape(), (3, 2));
/// assert_eq!(f.u().shape(), (3, 2));
/// assert_eq!(f.v_t().shape(), (2, 2));
/// assert_eq!(f.method(), Method::Jacobi);
/// // σ = (√3, 1).
/// assert!((f.singular_values()[0] - 3f64.sqrt()).abs() < 1e-15);
/// assert!((f.u().tr_mul(f.u()) - nalgebra::DMatrix::identity(2, 2)).norm() < 1e-15);
/// let (u, sigma, v_t) = f.into_parts();
/// assert_eq!((u.ncols(), sigma.len(), v_t.nrows()), (2, 2, 2));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Svd<T> {
    u: DMatrix<T>,
    sigma: Vec<T>,
    v_t: DMatrix<T>,
    method: Method,
}

impl<T: Scalar> Svd<T> {
    /// The left singular vectors U (n×k), one per column.
    pub fn u(&self) -> &DMatrix<T> {
        &self.u
    }

    /// The singular values σ₁ ≥ … ≥ σ_k ≥ 0.
    pub fn singular_values(&self) -> &[T] {
        &self.sigma
    }

    /// The transposed right singular vectors Vᵀ (k×m), one per row.
    pub fn v_t(&self) -> &DMatrix<T> {
        &self.v_t
    }

    /// The algorithm that produced this factorisation.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The shape (n, m) of the factored matrix.
    pub fn shape(&self) -> (usize, usize) {
        (self.u.nrows(), self.v_t.ncols())
    }

    /// U·diag(σ)·Vᵀ, the n×m matrix the factors represent.
    ///
    /// # Examples
    ///
    /// ```
    /// use attention_svd::svd::{svd, Backend};
    /// use nalgebra::dmatrix;
    ///
    /// let a = dmatrix![1.0_f64, 2.0, 3.0; 4.0, 5.0, 6.0];
    /// let f = svd(&a, Backend::jacobi()).unwrap();
    /// assert!((f.reconstruct() - a).norm() < 1e-13);
    /// ```
    pub fn reconstruct(&self) -> DMatrix<T> {
        let mut us = self.u.clone();
        for (j, &s) in self.sigma.iter().enumerate() {
            us.column_mut(j).scale_mut(s);
        }
        us * &self.v_t
    }

    /// Consumes the factorisation into (U, σ, Vᵀ).
    pub fn into_parts(self) -> (DMatrix<T>, Vec<T>, DMatrix<T>) {
        (self.u, self.sigma, self.v_t)
    }
}

/// The thin SVD of `a` (n×m) with the given backend.
///
/// # Errors
///
/// [`Error::Empty`](crate::Error::Empty) for an empty matrix, [`Error::NonFinite`](crate::Error::NonFinite) for NaN/±∞
/// entries, [`Error::NoConvergence`](crate::Error::NoConvergence) when the backend hits its iteration
/// cap (for `Auto`: when Jacobi does, after nalgebra failed),
/// [`Error::Breakdown`](crate::Error::Breakdown) when nalgebra returns non-finite output (explicit
/// backend only), and [`Error::Overflow`](crate::Error::Overflow) when a singular value exceeds the
/// type's range.
///
/// # Examples
///
/// ```
/// use attention_svd::svd::{svd, Backend, Method};
/// use nalgebra::DMatrix;
///
/// // Uniform attention (all rows equal): rank one, σ₁ = √(n/m).
/// let a = DMatrix::<f64>::from_element(5, 4, 0.25);
/// let f = svd(&a, Backend::Auto).unwrap();
/// assert!((f.singular_values()[0] - (5.0f64 / 4.0).sqrt()).abs() < 1e-14);
/// assert!(f.singular_values()[1] < 1e-14);
/// ```
pub fn svd<T: Scalar>(a: &DMatrix<T>, backend: Backend) -> Result<Svd<T>> {
    check::matrix(a, "matrix")?;
    let (u, sigma, v_t, method) = run(a, backend, true)?;
    Ok(Svd {
        u: u.expect("vectors were requested"),
        sigma,
        v_t: v_t.expect("vectors were requested"),
        method,
    })
}

/// The singular values of `a`, sorted non-increasing, without computing
/// singular vectors.
///
/// # Errors
///
/// As [`svd`].
///
/// # Examples
///
/// ```
/// use attention_svd::svd::{singular_values, Backend};
/// use nalgebra::dmatrix;
///
/// let s = singular_values(&dmatrix![0.0_f64, 2.0; 1.0, 0.0], Backend::Auto).unwrap();
/// assert!((s[0] - 2.0).abs() < 1e-15 && (s[1] - 1.0).abs() < 1e-15);
/// ```
pub fn singular_values<T: Scalar>(a: &DMatrix<T>, backend: Backend) -> Result<Vec<T>> {
    check::matrix(a, "matrix")?;
    Ok(run(a, backend, false)?.1)
}

type Run<T> = (Option<DMatrix<T>>, Vec<T>, Option<DMatrix<T>>, Method);

fn run<T: Scalar>(a: &DMatrix<T>, backend: Backend, vectors: bool) -> Result<Run<T>> {
    match backend {
        Backend::Nalgebra(p) => {
            let (u, s, v) = nalgebra::svd(a, vectors, &p)?;
            Ok((u, s, v, Method::Nalgebra))
        }
        Backend::Jacobi(p) => {
            let (u, s, v) = jacobi::svd(a, vectors, &p)?;
            Ok((u, s, v, Method::Jacobi))
        }
        Backend::Auto => {
            if let Ok((u, s, v)) = nalgebra::svd(a, vectors, &NalgebraParams::default()) {
                if passes_checks(a, u.as_ref(), &s, v.as_ref()) {
                    return Ok((u, s, v, Method::Nalgebra));
                }
            }
            let (u, s, v) = jacobi::svd(a, vectors, &JacobiParams::default())?;
            Ok((u, s, v, Method::Jacobi))
        }
    }
}

/// The relative tolerance of `Auto`'s checks: 8·max(n, m)·ε.
fn check_tolerance<T: Scalar>(n: usize, m: usize) -> T {
    T::from_count(8 * n.max(m)) * T::EPSILON
}

/// Whether a (U, σ, Vᵀ) from nalgebra is a plausible SVD of `a`.
fn passes_checks<T: Scalar>(
    a: &DMatrix<T>,
    u: Option<&DMatrix<T>>,
    sigma: &[T],
    v_t: Option<&DMatrix<T>>,
) -> bool {
    let (n, m) = a.shape();
    let tol = check_tolerance::<T>(n, m);
    if check::spectrum(sigma).is_err() {
        return false;
    }
    // Energy identity Σσ² = ‖A‖²_F, computed on the scale of max|a|.
    let amax = a.amax();
    if amax == T::zero() {
        return sigma.iter().all(|&s| s == T::zero());
    }
    let fro2 = crate::stochastic::compensated_sum(a.iter().map(|&x| (x / amax) * (x / amax)));
    let sig2 = crate::stochastic::compensated_sum(sigma.iter().map(|&s| (s / amax) * (s / amax)));
    if (fro2 - sig2).abs() > (tol + tol) * fro2 {
        return false;
    }
    let (Some(u), Some(v_t)) = (u, v_t) else {
        return true;
    };
    let k = sigma.len();
    if u.shape() != (n, k) || v_t.shape() != (k, m) {
        return false;
    }
    // Residual ‖A − UΣVᵀ‖_F ≤ tol·‖A‖_F, on the same scale.
    let mut us = u.clone();
    for (j, &s) in sigma.iter().enumerate() {
        us.column_mut(j).scale_mut(s / amax);
    }
    let residual = (a / amax) - us * v_t;
    if residual.norm_squared() > tol * tol * fro2 {
        return false;
    }
    // Orthogonality ‖UᵀU − I‖_F and ‖VᵀV − I‖_F ≤ tol.
    let eye = DMatrix::<T>::identity(k, k);
    let gu = u.tr_mul(u) - &eye;
    let gv = v_t * v_t.transpose() - &eye;
    gu.norm() <= tol && gv.norm() <= tol
}
