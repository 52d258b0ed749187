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
//! every failure is an [`Error`], never a NaN. [`Svd`] also
//! holds truncated (rank-r) and randomized factorisations: U is then n×r.
//!
//! # Backends
//!
//! | [`Backend`] | algorithm | cost | when to use |
//! |---|---|---|---|
//! | [`Auto`](Backend::Auto) (default) | the faster of faer and nalgebra for the size, validated; Jacobi if a check fails | that backend + O(n·m) checks | always, unless you know better |
//! | [`Faer`](Backend::Faer) (feature `faer`) | faer's bidiagonalisation + divide and conquer (values only: the crate's dqds, `docs/THEORY.md` T22), as LAPACK `dgesdd` | O(n·m·k) | speed, when you validate yourself |
//! | [`Nalgebra`](Backend::Nalgebra) | bidiagonalisation + implicit-shift QR | O(n·m·k) | small matrices, when you validate yourself |
//! | [`Jacobi`](Backend::Jacobi) | one-sided (Hestenes) Jacobi | O(sweeps·n·m·k) | small σ to high relative accuracy; a second opinion |
//!
//! `Auto` runs nalgebra first for small inputs (max(n, m) ≤ 64 for values
//! only, ≤ 32 with vectors) and faer otherwise — the crossovers measured by
//! `cargo run --release --example perf` (`docs/PERFORMANCE.md`) — and checks
//! the answer against the input: all finite, sorted, and the energy identity
//! Σσᵢ² = ‖A‖²_F to 16·max(n, m)·ε; with vectors also the residual
//! ‖A − UΣVᵀ‖_F ≤ τ·‖A‖_F and the orthogonality ‖UᵀU − I‖_F, ‖VᵀV − I‖_F ≤ τ,
//! τ = 8·max(n, m)·ε. The vector checks are estimated with p = 8 Gaussian
//! probes X (fixed seed, so `Auto` is deterministic): E‖EX‖²_F = p·‖E‖²_F,
//! and each estimate must be at most (τ/2)² per probe, which costs O(n·m·p)
//! instead of the O(n·m·k) of forming the products. For k = min(n, m) ≤ 16,
//! where the products cost no more than the probes, the three defects are
//! computed exactly instead (in f64) and held to τ/2. An error E with
//! ‖E‖_F ≥ 2τ passes only if ‖EX‖²_F ≤ p·‖E‖²_F/16, which has probability
//! at most 6.5·10⁻⁴ whatever E (a Chernoff bound, `docs/THEORY.md`, T12),
//! and far less for the gross failures the checks exist for:
//! wrong σ on all-ones-like matrices with vectors (nalgebra issue #1172),
//! which uniform attention triggers. Which backend produced a result is
//! reported by [`Svd::method`].
//!
//! # Accuracy
//!
//! All backends are backward stable: the computed factors are the exact SVD
//! of A + E with ‖E‖ = O(max(n, m)·ε·‖A‖), so by Weyl's inequality
//! |σ̃ᵢ − σᵢ| = O(max(n, m)·ε·σ₁) (`docs/THEORY.md`, T12). Jacobi is in
//! addition relatively accurate on graded matrices A = B·D (B well
//! conditioned, D diagonal): pick it when small singular values must be
//! right to relative accuracy (σ_min, condition numbers, log-scale spectra).
//! `Auto` checks backward error only, so it returns faer's or nalgebra's
//! answer there, whose small σ can be off by far more than ε relatively. The LAPACK-style
//! accuracy suite behind these statements is in `docs/ACCURACY.md`
//! (`cargo run --release -p attention-svd-accuracy`).
//!
//! # Examples
//!
//! ```
//! use attention_svd::nalgebra::dmatrix;
//! use attention_svd::svd::{svd, Backend};
//!
//! let a = dmatrix![3.0_f64, 0.0; 4.0, 5.0];
//! let f = svd(&a, Backend::Auto).unwrap();
//! // σ = (3√5, √5).
//! assert!((f.singular_values()[0] - 45f64.sqrt()).abs() < 1e-14);
//! assert!((f.singular_values()[1] - 5f64.sqrt()).abs() < 1e-14);
//! assert!((f.reconstruct() - &a).norm() < 1e-14);
//! ```

mod auto;
#[cfg(feature = "faer")]
mod dqds;
#[cfg(feature = "faer")]
mod faer;
mod jacobi;
mod nalgebra;

use std::ops::Deref;

use ::nalgebra::DMatrix;

pub use crate::error::Method;
use crate::view::{AsMatrixRef, MatrixRef};
use crate::{Error, Result, Scalar, check};

/// Which SVD algorithm to run; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum Backend {
    /// The faster of faer and nalgebra for the size, validated, with a Jacobi
    /// fallback (module docs).
    #[default]
    Auto,
    /// nalgebra only, with an iteration cap. Its output goes through the
    /// same gate as every backend's (sorted, non-negative, checked for
    /// NaN) but is **not validated**: nalgebra 0.35 can return wrong
    /// singular values or non-orthogonal vectors without error (e.g. on
    /// uniform attention with vectors). Prefer `Auto`.
    Nalgebra(NalgebraParams),
    /// faer only (feature `faer`, on by default), single-threaded. Its output
    /// is sorted, non-negative and checked for NaN, but not validated.
    #[cfg(feature = "faer")]
    #[cfg_attr(docsrs, doc(cfg(feature = "faer")))]
    Faer,
    /// One-sided Jacobi only, with a sweep cap.
    Jacobi(JacobiParams),
}

/// Every backend of this build, with default parameters: the one list that
/// the tests, benches, fuzz targets and the accuracy suite iterate over.
const ALL_BACKENDS: &[Backend] = &[
    Backend::Auto,
    #[cfg(feature = "faer")]
    Backend::Faer,
    Backend::Nalgebra(NalgebraParams::new()),
    Backend::Jacobi(JacobiParams::new()),
];

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

    /// Every backend of this build (the `faer` feature adds
    /// [`Backend::Faer`]), with default parameters. Code that must cover
    /// every backend (tests, benches, fuzz targets) iterates over this
    /// list, so a new backend is covered by adding it here.
    ///
    /// # Examples
    ///
    /// ```
    /// use attention_svd::svd::Backend;
    /// assert!(Backend::all().contains(&Backend::Auto));
    /// assert!(Backend::all().contains(&Backend::jacobi()));
    /// ```
    pub fn all() -> &'static [Backend] {
        ALL_BACKENDS
    }

    /// A short name: `"auto"`, `"faer"`, `"nalgebra"`, `"jacobi"`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            #[cfg(feature = "faer")]
            Backend::Faer => "faer",
            Backend::Nalgebra(_) => "nalgebra",
            Backend::Jacobi(_) => "jacobi",
        }
    }
}

/// Parameters of the one-sided Jacobi backend.
///
/// # Examples
///
/// ```
/// use attention_svd::nalgebra::DMatrix;
/// use attention_svd::svd::{svd, Backend, JacobiParams};
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
    /// The default parameters.
    pub const fn new() -> Self {
        JacobiParams { max_sweeps: None }
    }

    /// Caps the number of sweeps (each sweep visits every column pair once).
    /// The default is [`JacobiParams::default_max_sweeps`]. A cap of 0 or
    /// above [`JacobiParams::MAX_SWEEPS`] is rejected with
    /// [`Error::InvalidParameter`] when the
    /// backend runs.
    pub fn max_sweeps(mut self, sweeps: usize) -> Self {
        self.max_sweeps = Some(sweeps);
        self
    }

    /// The largest sweep cap accepted: one-sided Jacobi converges
    /// quadratically once the columns are nearly orthogonal, and a run that
    /// has not converged after this many sweeps never will (LAPACK's dgesvj
    /// stops at 30).
    pub const MAX_SWEEPS: usize = 1000;

    /// The default sweep cap for `T`: max(30, mantissa bits) (30 for `f32`,
    /// 53 for `f64`). One-sided Jacobi typically stops after 6–12 sweeps.
    pub fn default_max_sweeps<T: Scalar>() -> usize {
        (T::MANTISSA_DIGITS as usize).max(30)
    }

    pub(crate) fn sweeps_for<T: Scalar>(&self) -> Result<usize> {
        match self.max_sweeps {
            Some(k) if k == 0 || k > Self::MAX_SWEEPS => Err(Error::InvalidParameter {
                name: "max_sweeps",
                reason: "the sweep cap must be in 1..=1000",
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
/// use attention_svd::nalgebra::dmatrix;
/// use attention_svd::svd::{singular_values, Backend, NalgebraParams};
///
/// let b = Backend::Nalgebra(NalgebraParams::default().max_iterations(500));
/// let s = singular_values(&dmatrix![2.0_f32, 0.0; 0.0, 1.0], b).unwrap();
/// assert_eq!(&s[..], &[2.0, 1.0]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NalgebraParams {
    max_iterations: Option<usize>,
}

impl NalgebraParams {
    /// The default parameters.
    pub const fn new() -> Self {
        NalgebraParams {
            max_iterations: None,
        }
    }

    /// Caps the total number of implicit-shift QR steps. The default is
    /// [`NalgebraParams::default_max_iterations`]. A cap of 0 (which nalgebra
    /// would read as "no limit") or above 1000 steps per singular value is
    /// rejected with [`Error::InvalidParameter`]
    /// when the backend runs.
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
            Some(i) if i == 0 || i > 1000usize.saturating_mul(k.max(1)) => {
                Err(Error::InvalidParameter {
                    name: "max_iterations",
                    reason: "the iteration cap must be in 1..=1000·min(n, m)",
                })
            }
            Some(i) => Ok(i),
            None => Ok(Self::default_max_iterations::<T>(k)),
        }
    }
}

/// A thin SVD A = U·diag(σ)·Vᵀ with all factors present, or a truncated
/// one (the best rank-r approximation A_r, from [`Svd::truncate`],
/// [`lowrank::truncate`](crate::lowrank::truncate) or
/// [`randomized_svd`](crate::randomized::randomized_svd)).
///
/// U is n×r, σ has length r, Vᵀ is r×m, with r = min(n, m) for a thin SVD;
/// σ is always sorted non-increasing and ≥ 0. From `Auto` and `Jacobi` the
/// columns of U and V are orthonormal and UΣVᵀ reproduces A to
/// O(max(n, m)·ε·‖A‖); from the explicit `Nalgebra` and `Faer` backends
/// these hold only as far as those libraries get them right.
///
/// # Examples
///
/// ```
/// use attention_svd::nalgebra::{dmatrix, DMatrix};
/// use attention_svd::svd::{svd, Backend, Method};
///
/// let a = dmatrix![1.0_f64, 1.0; 0.0, 1.0; 1.0, 0.0];
/// let f = svd(&a, Backend::jacobi()).unwrap();
/// assert_eq!(f.shape(), (3, 2));
/// assert_eq!((f.u().shape(), f.v_t().shape()), ((3, 2), (2, 2)));
/// assert_eq!(f.method(), Method::Jacobi);
/// // σ = (√3, 1).
/// assert!((f.singular_values()[0] - 3f64.sqrt()).abs() < 1e-15);
/// assert!((f.u().tr_mul(f.u()) - DMatrix::identity(2, 2)).norm() < 1e-15);
/// let a1 = f.truncate(1).unwrap();
/// assert_eq!((a1.rank(), a1.shape()), (1, (3, 2)));
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
    /// Wraps factors that already form an SVD (orthonormal columns, σ
    /// sorted and ≥ 0, matching shapes).
    pub(crate) fn from_parts(
        u: DMatrix<T>,
        sigma: Vec<T>,
        v_t: DMatrix<T>,
        method: Method,
    ) -> Self {
        debug_assert!(u.ncols() == sigma.len() && v_t.nrows() == sigma.len());
        Svd {
            u,
            sigma,
            v_t,
            method,
        }
    }

    /// The left singular vectors U (n×r), one per column.
    pub fn u(&self) -> &DMatrix<T> {
        &self.u
    }

    /// The singular values σ₁ ≥ … ≥ σ_r ≥ 0.
    pub fn singular_values(&self) -> &[T] {
        &self.sigma
    }

    /// The transposed right singular vectors Vᵀ (r×m), one per row.
    pub fn v_t(&self) -> &DMatrix<T> {
        &self.v_t
    }

    /// The algorithm that computed the singular values (for a randomized
    /// or factored SVD: that of its small dense SVD).
    pub fn method(&self) -> Method {
        self.method
    }

    /// The shape (n, m) of the factored matrix.
    pub fn shape(&self) -> (usize, usize) {
        (self.u.nrows(), self.v_t.ncols())
    }

    /// The number r of singular triplets held (min(n, m) for a thin SVD).
    pub fn rank(&self) -> usize {
        self.sigma.len()
    }

    /// U·diag(σ)·Vᵀ, the n×m matrix the factors represent (A, or A_r for a
    /// truncation).
    ///
    /// # Examples
    ///
    /// ```
    /// use attention_svd::nalgebra::dmatrix;
    /// use attention_svd::svd::{svd, Backend};
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
        crate::num::dense::product(&us.as_matrix_ref(), false, &self.v_t.as_matrix_ref())
    }

    /// The best rank-r approximation A_r = U_r·diag(σ₁…σ_r)·V_rᵀ of the
    /// factored matrix (Eckart–Young–Mirsky, `docs/THEORY.md` T8), for
    /// 0 ≤ r ≤ [`rank`](Svd::rank).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRank`] if r > rank.
    pub fn truncate(&self, r: usize) -> Result<Svd<T>> {
        check::rank(r, 0, self.rank())?;
        Ok(Svd {
            u: self.u.columns(0, r).into_owned(),
            sigma: self.sigma[..r].to_vec(),
            v_t: self.v_t.rows(0, r).into_owned(),
            method: self.method,
        })
    }

    /// Consumes the factorisation into (U, σ, Vᵀ).
    pub fn into_parts(self) -> (DMatrix<T>, Vec<T>, DMatrix<T>) {
        (self.u, self.sigma, self.v_t)
    }
}

/// Singular values σ₁ ≥ … ≥ σ_k ≥ 0 computed without vectors, with the
/// algorithm that answered. Dereferences to `[T]`.
///
/// # Examples
///
/// ```
/// use attention_svd::nalgebra::dmatrix;
/// use attention_svd::svd::{singular_values, Backend, Method};
///
/// let s = singular_values(&dmatrix![0.0_f64, 2.0; 1.0, 0.0], Backend::jacobi()).unwrap();
/// assert_eq!(s.method(), Method::Jacobi);
/// assert!((s[0] - 2.0).abs() < 1e-15 && (s[1] - 1.0).abs() < 1e-15);
/// let v: Vec<f64> = s.into_vec();
/// assert_eq!(v.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SingularValues<T> {
    values: Vec<T>,
    method: Method,
}

impl<T> SingularValues<T> {
    /// The algorithm that computed them.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The values as a slice.
    pub fn as_slice(&self) -> &[T] {
        &self.values
    }

    /// The values, by value.
    pub fn into_vec(self) -> Vec<T> {
        self.values
    }
}

impl<T> Deref for SingularValues<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.values
    }
}

/// The thin SVD of `a` (n×m) with the given backend.
///
/// # Errors
///
/// [`Error::Empty`] for an empty matrix,
/// [`Error::NonFinite`] for NaN/±∞ entries,
/// [`Error::NoConvergence`] when the backend
/// hits its iteration cap (for `Auto`: when Jacobi does, after the first
/// backend failed its checks), [`Error::Breakdown`]
/// when an explicit backend returns non-finite output,
/// [`Error::Overflow`] when a singular value exceeds
/// the type's range, and [`Error::InvalidParameter`]
/// for an out-of-range iteration cap.
///
/// # Examples
///
/// ```
/// use attention_svd::nalgebra::DMatrix;
/// use attention_svd::svd::{svd, Backend};
///
/// // Uniform attention (all rows equal): rank one, σ₁ = √(n/m).
/// let a = DMatrix::<f64>::from_element(5, 4, 0.25);
/// let f = svd(&a, Backend::Auto).unwrap();
/// assert!((f.singular_values()[0] - (5.0f64 / 4.0).sqrt()).abs() < 1e-14);
/// assert!(f.singular_values()[1] < 1e-14);
/// ```
pub fn svd<T: Scalar>(a: &impl AsMatrixRef<T>, backend: Backend) -> Result<Svd<T>> {
    let a = a.as_matrix_ref();
    check::matrix(&a, "matrix")?;
    let (raw, method) = run(&a, backend, true)?;
    let (Some(u), Some(v_t)) = (raw.u, raw.v_t) else {
        unreachable!("every backend returns vectors when asked")
    };
    Ok(Svd::from_parts(u, raw.sigma, v_t, method))
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
/// use attention_svd::nalgebra::dmatrix;
/// use attention_svd::svd::{singular_values, Backend};
///
/// let s = singular_values(&dmatrix![0.0_f64, 2.0; 1.0, 0.0], Backend::Auto).unwrap();
/// assert!((s[0] - 2.0).abs() < 1e-15 && (s[1] - 1.0).abs() < 1e-15);
/// ```
pub fn singular_values<T: Scalar>(
    a: &impl AsMatrixRef<T>,
    backend: Backend,
) -> Result<SingularValues<T>> {
    let a = a.as_matrix_ref();
    check::matrix(&a, "matrix")?;
    let (raw, method) = run(&a, backend, false)?;
    Ok(SingularValues {
        values: raw.sigma,
        method,
    })
}

/// What a backend returns: σ (any order, any sign) and, when requested,
/// U (n×k) and Vᵀ (k×m) with matching columns and rows.
///
/// The backend contract (`docs/ARCHITECTURE.md`): a backend receives a
/// non-empty, finite matrix; returns U and Vᵀ exactly when asked; scales
/// its input itself if its algorithm needs it (through
/// [`num::scale`](crate::num::scale)); bounds its iterations and reports
/// [`Error::NoConvergence`]. Sorting, signs and the NaN check are done once,
/// by [`gate`], for every backend.
pub(crate) struct Raw<T> {
    pub(crate) u: Option<DMatrix<T>>,
    pub(crate) sigma: Vec<T>,
    pub(crate) v_t: Option<DMatrix<T>>,
}

/// One backend's run on a valid matrix, through the gate.
fn run_backend<T: Scalar>(
    a: &MatrixRef<'_, T>,
    backend: Backend,
    vectors: bool,
) -> Result<(Raw<T>, Method)> {
    let (raw, method) = match backend {
        Backend::Nalgebra(p) => (nalgebra::svd(a, vectors, &p)?, Method::Nalgebra),
        #[cfg(feature = "faer")]
        Backend::Faer => (faer::svd(a, vectors)?, Method::Faer),
        Backend::Jacobi(p) => (jacobi::svd(a, vectors, &p)?, Method::Jacobi),
        Backend::Auto => unreachable!("Auto is resolved by `run`"),
    };
    Ok((gate(raw, method)?, method))
}

fn run<T: Scalar>(
    a: &MatrixRef<'_, T>,
    backend: Backend,
    vectors: bool,
) -> Result<(Raw<T>, Method)> {
    match backend {
        Backend::Auto => auto::run(a, vectors),
        explicit => run_backend(a, explicit, vectors),
    }
}

/// The one gate every backend's output passes: all finite (else
/// [`Error::Breakdown`]), σ made non-negative (flipping the matching column
/// of U) and sorted non-increasing with the vectors.
fn gate<T: Scalar>(raw: Raw<T>, method: Method) -> Result<Raw<T>> {
    let Raw {
        mut u,
        mut sigma,
        mut v_t,
    } = raw;
    if sigma.iter().any(|s| !s.finite())
        || u.as_ref().is_some_and(|u| u.iter().any(|x| !x.finite()))
        || v_t.as_ref().is_some_and(|v| v.iter().any(|x| !x.finite()))
    {
        return Err(Error::Breakdown {
            method,
            reason: "non-finite output",
        });
    }
    for (j, s) in sigma.iter_mut().enumerate() {
        if *s < T::zero() {
            *s = -*s;
            if let Some(u) = u.as_mut() {
                u.column_mut(j).neg_mut();
            }
        }
    }
    let k = sigma.len();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| sigma[j].partial_cmp(&sigma[i]).expect("finite"));
    if order.iter().enumerate().any(|(i, &j)| i != j) {
        sigma = order.iter().map(|&i| sigma[i]).collect();
        u = u.map(|u| DMatrix::from_fn(u.nrows(), k, |i, j| u[(i, order[j])]));
        v_t = v_t.map(|v| DMatrix::from_fn(k, v.ncols(), |i, j| v[(order[i], j)]));
    }
    Ok(Raw { u, sigma, v_t })
}
