//! Randomized truncated SVD (Halko, Martinsson & Tropp 2011).
//!
//! # Algorithm
//!
//! For an n×m matrix A, a target rank k, oversampling p and q power
//! iterations (ℓ = k + p, capped at min(n, m)):
//!
//! ```text
//! Ω  = m×ℓ standard Gaussian (seeded)
//! Q  = orth(A·Ω)
//! repeat q times:   Q = orth(A·orth(Aᵀ·Q))        (re-orthonormalised power iteration)
//! B  = Qᵀ·A  (ℓ×m),   B = Û·Σ·Vᵀ  (dense SVD of the small matrix)
//! A ≈ (Q·Û)_k · Σ_k · (Vᵀ)_k
//! ```
//!
//! with orth(·) the Q factor of a Householder QR. Defaults follow
//! scikit-learn's `randomized_svd`: p = 10, and q = 7 when k < 0.1·min(n, m),
//! else q = 4.
//!
//! # Accuracy
//!
//! The result is exact (up to rounding) when rank(A) ≤ ℓ. In general the
//! error depends on how fast the spectrum decays: by HMT (Theorem 10.6 and
//! Corollary 10.10), for p ≥ 2,
//!
//! ```text
//! E‖A − QQᵀA‖₂ ≤ [ (1 + √(k/(p−1)))·σ_{k+1}^{2q+1}
//!                  + (e·√(k+p)/p)·(Σ_{j>k} σ_j^{2(2q+1)})^{1/2} ]^{1/(2q+1)}
//! ```
//!
//! so each power iteration raises the ratios σ_j/σ_{k+1} to a higher power:
//! a fast-decaying spectrum (as in late attention layers) is captured almost
//! exactly with q = 4, while a flat one (σ_{k+1} ≈ σ_k) keeps an error of
//! the order of σ_{k+1} whatever q. The singular values σ̃ᵢ of B satisfy
//! σ̃ᵢ ≤ σᵢ (B = QᵀA is a compression of A).
//!
//! # Complexity
//!
//! O((2q + 2)·n·m·ℓ + (n + m)·ℓ²) against O(n·m·min(n, m)) for a full SVD.
//!
//! # Examples
//!
//! ```
//! use attention_svd::nalgebra::DMatrix;
//! use attention_svd::randomized::{randomized_svd, RandomizedParams};
//! use attention_svd::svd::{singular_values, Backend};
//!
//! // A matrix of rank 3.
//! let u = DMatrix::<f64>::from_fn(60, 3, |i, j| ((i * 3 + j) as f64 * 0.37).sin());
//! let v = DMatrix::<f64>::from_fn(40, 3, |i, j| ((i * 3 + j) as f64 * 0.91).cos());
//! let a = &u * v.transpose();
//! let r = randomized_svd(&a, 3, RandomizedParams::default()).unwrap();
//! let exact = singular_values(&a, Backend::Auto).unwrap();
//! for (x, y) in r.singular_values().iter().zip(exact.iter()) {
//!     assert!((x - y).abs() <= 1e-12 * exact[0]);
//! }
//! ```

use nalgebra::DMatrix;

use crate::num::dense::{product, thin_q};
use crate::num::rng::SplitMix64;
use crate::num::scale::scale_back;
use crate::svd::{Backend, Svd, svd};
use crate::view::{AsMatrixRef, MatrixRef};
use crate::{Error, Result, Scalar, check};

/// Parameters of [`randomized_svd`].
///
/// # Examples
///
/// ```
/// use attention_svd::randomized::RandomizedParams;
/// use attention_svd::svd::Backend;
/// let p = RandomizedParams::default().oversampling(20).power_iterations(2).seed(7).backend(Backend::jacobi());
/// assert_eq!(p.power_iterations_for(32, 2048), 2);
/// assert_eq!(RandomizedParams::default().power_iterations_for(32, 2048), 7);
/// assert_eq!(RandomizedParams::default().power_iterations_for(300, 2048), 4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomizedParams {
    oversampling: usize,
    power_iterations: Option<usize>,
    seed: u64,
    backend: Backend,
}

impl Default for RandomizedParams {
    /// p = 10, q automatic (scikit-learn's rule), seed 0, `Auto` SVD of B.
    fn default() -> Self {
        RandomizedParams {
            oversampling: 10,
            power_iterations: None,
            seed: 0,
            backend: Backend::Auto,
        }
    }
}

impl RandomizedParams {
    /// The largest number of power iterations accepted. Each iteration
    /// raises the ratios σⱼ/σ_{k+1} to a higher power (module docs); past a
    /// few dozen the result cannot change in floating point, so a larger
    /// count is a mistake, not a request for accuracy.
    pub const MAX_POWER_ITERATIONS: usize = 64;

    /// Sets the oversampling p (default 10; ℓ = k + p is capped at
    /// min(n, m)).
    pub fn oversampling(mut self, p: usize) -> Self {
        self.oversampling = p;
        self
    }

    /// Sets the number of power iterations q (default: 7 if k < 0.1·min(n, m),
    /// else 4); at most [`RandomizedParams::MAX_POWER_ITERATIONS`], checked
    /// when the SVD runs.
    pub fn power_iterations(mut self, q: usize) -> Self {
        self.power_iterations = Some(q);
        self
    }

    /// Sets the seed of the Gaussian sketch (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the backend of the SVD of the small matrix B (default `Auto`).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The number of power iterations used for target rank k of a matrix
    /// whose smaller dimension is `min_dim`.
    pub fn power_iterations_for(&self, k: usize, min_dim: usize) -> usize {
        self.power_iterations
            .unwrap_or(if 10 * k < min_dim { 7 } else { 4 })
    }
}

/// The rank-k randomized SVD of `a`; see the [module docs](self). The
/// result's [`Svd::method`] is that of the small SVD of B.
///
/// # Errors
///
/// [`Error::Empty`] / [`Error::NonFinite`] for the input;
/// [`Error::InvalidRank`] unless 1 ≤ k ≤ min(n, m);
/// [`Error::InvalidParameter`] for more than
/// [`RandomizedParams::MAX_POWER_ITERATIONS`] power iterations;
/// [`Error::Overflow`] if the sketch overflows; the errors of the small SVD.
pub fn randomized_svd<T: Scalar>(
    a: &impl AsMatrixRef<T>,
    k: usize,
    params: RandomizedParams,
) -> Result<Svd<T>> {
    let a = a.as_matrix_ref();
    check::matrix(&a, "matrix")?;
    let (n, m) = a.shape();
    let kmax = n.min(m);
    check::rank(k, 1, kmax)?;
    let q_iters = params.power_iterations_for(k, kmax);
    if q_iters > RandomizedParams::MAX_POWER_ITERATIONS {
        return Err(Error::InvalidParameter {
            name: "power_iterations",
            reason: "at most 64 power iterations (more cannot change the result)",
        });
    }
    let l = k.saturating_add(params.oversampling).min(kmax);
    let amax = a.amax();
    let (q, b) = if amax == T::zero() {
        // Any orthonormal Q captures the zero matrix exactly: B = QᵀA = 0.
        (DMatrix::identity(n, l), DMatrix::zeros(l, m))
    } else if safe_scale(amax, n.max(m)) {
        sketch(&a, l, q_iters, params.seed)?
    } else {
        // Work on A/max|a|: no overflow in the products; σ scale back at the end.
        let scaled = a.map(|x| x / amax);
        sketch(&scaled.as_matrix_ref(), l, q_iters, params.seed)?
    };
    let f = svd(&b, params.backend)?;
    let method = f.method();
    let (ub, mut sigma, v_t) = f.into_parts();
    let u = product(&q.as_matrix_ref(), false, &ub.columns(0, k).as_matrix_ref());
    sigma.truncate(k);
    if amax != T::zero() && !safe_scale(amax, n.max(m)) {
        scale_back(&mut sigma, &[amax])?;
    }
    Ok(Svd::from_parts(
        u,
        sigma,
        v_t.rows(0, k).into_owned(),
        method,
    ))
}

/// Whether the products of A (largest magnitude `amax`, largest dimension
/// `dim`) with the sketch can neither overflow nor lose digits to
/// underflow, so that A is used as it is instead of a copy scaled by
/// 1/amax: the sketch's entries are below 40 in magnitude (the normals of
/// `SplitMix64` come from uniforms ≥ 2⁻⁵³, so |x| ≤ √(2·53·ln 2) < 9) and
/// those of an orthonormal Q at most 1, so every product entry stays below
/// 40·dim·amax, which is at most √MAX here.
fn safe_scale<T: Scalar>(amax: T, dim: usize) -> bool {
    amax >= T::MIN_POSITIVE.sqrt() && amax * T::lit(40.0) * T::from_count(dim) <= T::MAX.sqrt()
}

/// Q (n×ℓ, orthonormal) and B = Qᵀ·A (ℓ×m) of the range finder.
fn sketch<T: Scalar>(
    a: &MatrixRef<'_, T>,
    l: usize,
    q_iters: usize,
    seed: u64,
) -> Result<(DMatrix<T>, DMatrix<T>)> {
    let m = a.ncols();
    let omega = DMatrix::<T>::from_vec(m, l, SplitMix64::new(seed).normals(m * l));
    let mut q = orth(product(a, false, &omega.as_matrix_ref()))?;
    for _ in 0..q_iters {
        let z = orth(product(a, true, &q.as_matrix_ref()))?;
        q = orth(product(a, false, &z.as_matrix_ref()))?;
    }
    let b = product(&q.as_matrix_ref(), true, a);
    Ok((q, b))
}

/// The Q factor of a thin Householder QR, checked for finiteness.
fn orth<T: Scalar>(y: DMatrix<T>) -> Result<DMatrix<T>> {
    if y.iter().any(|x| !x.finite()) {
        return Err(Error::Overflow {
            what: "randomized sketch",
        });
    }
    Ok(thin_q(&y))
}
