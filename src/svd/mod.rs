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
//! | [`Auto`](Backend::Auto) (default) | the faster of faer and nalgebra for the size, validated; Jacobi if a check fails | that backend + O(n·m) checks | always, unless you know better |
//! | [`Faer`](Backend::Faer) (feature `faer`) | bidiagonalisation + divide and conquer (values only: implicit-shift QR), as LAPACK `dgesdd` | O(n·m·k) | speed, when you validate yourself |
//! | [`Nalgebra`](Backend::Nalgebra) | bidiagonalisation + implicit-shift QR | O(n·m·k) | small matrices, when you validate yourself |
//! | [`Jacobi`](Backend::Jacobi) | one-sided (Hestenes) Jacobi | O(sweeps·n·m·k) | small σ to high relative accuracy; a second opinion |
//!
//! `Auto` runs nalgebra first for small inputs (max(n, m) ≤ 128 for values
//! only, ≤ 32 with vectors) and faer otherwise — the crossovers measured by
//! `cargo run --release --example perf` (`docs/PERFORMANCE.md`) — and checks
//! the answer against the input: all finite, sorted, and the energy identity
//! Σσᵢ² = ‖A‖²_F to 16·max(n, m)·ε; with vectors also the residual
//! ‖A − UΣVᵀ‖_F ≤ τ·‖A‖_F and the orthogonality ‖UᵀU − I‖_F, ‖VᵀV − I‖_F ≤ τ,
//! τ = 8·max(n, m)·ε. The vector checks are estimated with p = 8 Gaussian
//! probes X (fixed seed, so `Auto` is deterministic): E‖EX‖²_F = p·‖E‖²_F,
//! and each estimate must be at most (τ/2)² per probe, which costs O(n·m·p)
//! instead of the O(n·m·k) of forming the products. An error E with
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

#[cfg(feature = "faer")]
mod faer;
mod jacobi;
mod nalgebra;

use std::fmt;

use ::nalgebra::DMatrix;

use crate::dense::product;
use crate::{check, Result, Scalar};

/// The algorithm that computed a result (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// nalgebra's bidiagonal implicit-shift QR.
    Nalgebra,
    /// faer's bidiagonal divide-and-conquer (values only: implicit-shift QR).
    Faer,
    /// The crate's one-sided Jacobi.
    Jacobi,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Nalgebra => "nalgebra",
            Method::Faer => "faer",
            Method::Jacobi => "Jacobi",
        })
    }
}

/// Which SVD algorithm to run; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum Backend {
    /// The faster of faer and nalgebra for the size, validated, with a Jacobi
    /// fallback (module docs).
    #[default]
    Auto,
    /// nalgebra only, with an iteration cap. Its output is sorted, made
    /// non-negative and checked for NaN, but **not validated**: nalgebra 0.35
    /// can return wrong singular values or non-orthogonal vectors without
    /// error (e.g. on uniform attention with vectors). Prefer `Auto`.
    Nalgebra(NalgebraParams),
    /// faer only (feature `faer`, on by default), single-threaded. Its output
    /// is sorted, non-negative and checked for NaN, but not validated.
    #[cfg(feature = "faer")]
    #[cfg_attr(docsrs, doc(cfg(feature = "faer")))]
    Faer,
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

/// (U, σ, Vᵀ, method): U and Vᵀ are `None` when not requested.
pub(crate) type Run<T> = (Option<DMatrix<T>>, Vec<T>, Option<DMatrix<T>>, Method);

fn run<T: Scalar>(a: &DMatrix<T>, backend: Backend, vectors: bool) -> Result<Run<T>> {
    match backend {
        Backend::Nalgebra(p) => nalgebra::svd(a, vectors, &p),
        #[cfg(feature = "faer")]
        Backend::Faer => faer::svd(a, vectors),
        Backend::Jacobi(p) => jacobi_run(a, vectors, &p),
        Backend::Auto => {
            let first = match auto_first(a.nrows(), a.ncols(), vectors) {
                #[cfg(feature = "faer")]
                Method::Faer => faer::svd(a, vectors),
                _ => nalgebra::svd(a, vectors, &NalgebraParams::default()),
            };
            if let Ok(parts) = first {
                if passes_checks(a, parts.0.as_ref(), &parts.1, parts.2.as_ref()) {
                    return Ok(parts);
                }
            }
            jacobi_run(a, vectors, &JacobiParams::default())
        }
    }
}

fn jacobi_run<T: Scalar>(a: &DMatrix<T>, vectors: bool, p: &JacobiParams) -> Result<Run<T>> {
    let (u, s, v) = jacobi::svd(a, vectors, p)?;
    Ok((u, s, v, Method::Jacobi))
}

/// The backend `Auto` runs first for an n×m input: nalgebra for small
/// inputs (max(n, m) ≤ [`AUTO_NALGEBRA_MAX_VALUES`] for values only,
/// ≤ [`AUTO_NALGEBRA_MAX_VECTORS`] with vectors), where its lower overhead
/// makes it the faster, faer otherwise (nalgebra only without the feature).
fn auto_first(n: usize, m: usize, vectors: bool) -> Method {
    let limit = if vectors {
        AUTO_NALGEBRA_MAX_VECTORS
    } else {
        AUTO_NALGEBRA_MAX_VALUES
    };
    if cfg!(feature = "faer") && n.max(m) > limit {
        Method::Faer
    } else {
        Method::Nalgebra
    }
}

/// Up to this size `Auto` asks nalgebra first for singular values only: the
/// crossover measured by `cargo run --release --example perf`
/// (`docs/PERFORMANCE.md`).
const AUTO_NALGEBRA_MAX_VALUES: usize = 128;

/// Up to this size `Auto` asks nalgebra first for a full SVD (same source).
const AUTO_NALGEBRA_MAX_VECTORS: usize = 32;

/// Checks a backend's output for finiteness, makes σ non-negative (flipping
/// the matching column of U) and sorts σ non-increasing with the vectors.
fn sorted_nonnegative<T: Scalar>(
    mut u: Option<DMatrix<T>>,
    mut sigma: Vec<T>,
    mut v_t: Option<DMatrix<T>>,
    method: Method,
) -> Result<Run<T>> {
    if sigma.iter().any(|s| !s.finite())
        || u.as_ref().is_some_and(|u| u.iter().any(|x| !x.finite()))
        || v_t.as_ref().is_some_and(|v| v.iter().any(|x| !x.finite()))
    {
        return Err(crate::Error::Breakdown {
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
    Ok((u, sigma, v_t, method))
}

/// The relative tolerance of `Auto`'s checks: 8·max(n, m)·ε.
fn check_tolerance<T: Scalar>(n: usize, m: usize) -> T {
    T::from_count(8 * n.max(m)) * T::EPSILON
}

/// Σ scale(aᵢⱼ)² of a column-major buffer with `rows` rows, in f64: each
/// column summed in eight independent lanes (which vectorise), the column
/// sums added with compensation. The rounding error is at most about
/// (rows/8 + 2)·ε₆₄ relative, well inside `Auto`'s 16·max(n, m)·ε.
fn energy<T: Scalar>(data: &[T], rows: usize, scale: impl Fn(T) -> T) -> f64 {
    let columns = data.chunks_exact(rows).map(|col| {
        let mut lanes = [0.0f64; 8];
        let mut chunks = col.chunks_exact(8);
        for chunk in &mut chunks {
            for (l, &x) in lanes.iter_mut().zip(chunk) {
                let y = scale(x).to_f64();
                *l += y * y;
            }
        }
        let tail: f64 = chunks
            .remainder()
            .iter()
            .map(|&x| scale(x).to_f64().powi(2))
            .sum();
        lanes.iter().sum::<f64>() + tail
    });
    crate::stochastic::compensated_sum(columns)
}

/// The number of Gaussian probe vectors in `Auto`'s checks of the vectors.
const PROBES: usize = 8;

/// The seed of the probes: fixed, so that `Auto` is deterministic.
const PROBE_SEED: u64 = 0x0a77_e471_0500_5eed;

/// Whether a (U, σ, Vᵀ) from a fast backend is a plausible SVD of `a`.
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
    let inv = T::one() / amax;
    // Multiplying by 1/amax is cheaper than dividing, unless 1/amax
    // overflows (subnormal amax).
    let scale = |x: T| if inv.finite() { x * inv } else { x / amax };
    let fro2 = T::lit(energy(a.as_slice(), n, scale));
    let sig2 = crate::stochastic::compensated_sum(sigma.iter().map(|&s| scale(s) * scale(s)));
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
    // For a matrix E and X with p independent standard Gaussian columns,
    // E‖EX‖²_F = p·‖E‖²_F. Each check below asks the probe estimate to be at
    // most half its tolerance, (tol/2)² per probe (module docs).
    let budget = T::from_count(PROBES) * tol * tol / T::lit(4.0);
    let mut rng = crate::randomized::SplitMix64(PROBE_SEED);
    let x = DMatrix::<T>::from_vec(m, PROBES, rng.normals(m * PROBES));
    // Residual E = A/amax − U·(Σ/amax)·Vᵀ against tol·‖A/amax‖_F.
    let mut svx = product(v_t, false, &x);
    for (j, &s) in sigma.iter().enumerate() {
        svx.row_mut(j).scale_mut(scale(s));
    }
    // A·X first and then the scaling, unless A·X could overflow or lose
    // digits to underflow.
    let ax = if amax < T::MAX.sqrt() && amax > T::MIN_POSITIVE.sqrt() {
        product(a, false, &x).map(scale)
    } else {
        product(&a.map(scale), false, &x)
    };
    let ex = ax - product(u, false, &svx);
    if ex.norm_squared() > budget * fro2 {
        return false;
    }
    // Orthogonality UᵀU − I and VᵀV − I against tol, probed with the first
    // k rows of X (each check needs its probes independent, not the two
    // checks from each other).
    let y = x.rows(0, k).into_owned();
    let gu = product(u, true, &product(u, false, &y)) - &y;
    let gv = product(v_t, false, &product(v_t, true, &y)) - &y;
    gu.norm_squared() <= budget && gv.norm_squared() <= budget
}
