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
//! use attention_svd::randomized::{randomized_svd, RandomizedParams};
//! use attention_svd::svd::{singular_values, Backend};
//! use nalgebra::DMatrix;
//!
//! // A matrix of rank 3.
//! let u = DMatrix::<f64>::from_fn(60, 3, |i, j| ((i * 3 + j) as f64 * 0.37).sin());
//! let v = DMatrix::<f64>::from_fn(40, 3, |i, j| ((i * 3 + j) as f64 * 0.91).cos());
//! let a = &u * v.transpose();
//! let r = randomized_svd(&a, 3, &RandomizedParams::default()).unwrap();
//! let exact = singular_values(&a, Backend::Auto).unwrap();
//! for (x, y) in r.singular_values().iter().zip(&exact) {
//!     assert!((x - y).abs() <= 1e-12 * exact[0]);
//! }
//! ```

use nalgebra::DMatrix;

use crate::dense::{product, thin_q};
use crate::lowrank::LowRank;
use crate::svd::{svd, Backend};
use crate::{check, Error, Result, Scalar};

/// Parameters of [`randomized_svd`].
///
/// # Examples
///
/// ```
/// use attention_svd::randomized::RandomizedParams;
/// let p = RandomizedParams::default().oversampling(20).power_iterations(2).seed(7);
/// assert_eq!(p.power_iterations_for(32, 2048), 2);
/// assert_eq!(RandomizedParams::default().power_iterations_for(32, 2048), 7);
/// assert_eq!(RandomizedParams::default().power_iterations_for(300, 2048), 4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomizedParams {
    oversampling: usize,
    power_iterations: Option<usize>,
    seed: u64,
    backend: BackendChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BackendChoice {
    Auto,
    Jacobi,
}

impl Default for RandomizedParams {
    /// p = 10, q automatic (scikit-learn's rule), seed 0, `Auto` SVD of B.
    fn default() -> Self {
        RandomizedParams {
            oversampling: 10,
            power_iterations: None,
            seed: 0,
            backend: BackendChoice::Auto,
        }
    }
}

impl RandomizedParams {
    /// Sets the oversampling p (default 10).
    pub fn oversampling(mut self, p: usize) -> Self {
        self.oversampling = p;
        self
    }

    /// Sets the number of power iterations q (default: 7 if k < 0.1·min(n, m),
    /// else 4).
    pub fn power_iterations(mut self, q: usize) -> Self {
        self.power_iterations = Some(q);
        self
    }

    /// Sets the seed of the Gaussian sketch (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Computes the SVD of the small matrix B with the Jacobi backend
    /// instead of `Auto`.
    pub fn jacobi(mut self) -> Self {
        self.backend = BackendChoice::Jacobi;
        self
    }

    /// The number of power iterations used for target rank k of a matrix
    /// whose smaller dimension is `min_dim`.
    pub fn power_iterations_for(&self, k: usize, min_dim: usize) -> usize {
        self.power_iterations
            .unwrap_or(if 10 * k < min_dim { 7 } else { 4 })
    }
}

/// The rank-k randomized SVD of `a`; see the [module docs](self).
///
/// # Errors
///
/// [`Error::Empty`] / [`Error::NonFinite`] for the input;
/// [`Error::InvalidRank`] unless 1 ≤ k ≤ min(n, m); [`Error::Overflow`] if
/// the sketch overflows; the errors of the small SVD.
pub fn randomized_svd<T: Scalar>(
    a: &DMatrix<T>,
    k: usize,
    params: &RandomizedParams,
) -> Result<LowRank<T>> {
    check::matrix(a, "matrix")?;
    let (n, m) = a.shape();
    let kmax = n.min(m);
    if k == 0 || k > kmax {
        return Err(Error::InvalidRank { rank: k, max: kmax });
    }
    let amax = a.amax();
    if amax == T::zero() {
        return Ok(LowRank::from_parts(
            DMatrix::identity(n, k),
            vec![T::zero(); k],
            DMatrix::identity(k, m),
        ));
    }
    // Work on A/max|a|: no overflow in the products; σ scale back at the end.
    let a = a / amax;
    let l = k.saturating_add(params.oversampling).min(kmax);
    let q_iters = params.power_iterations_for(k, kmax);
    let mut rng = SplitMix64(params.seed);
    let omega = DMatrix::<T>::from_fn(m, l, |_, _| T::lit(rng.normal()));
    let mut q = orth(product(&a, false, &omega))?;
    for _ in 0..q_iters {
        let z = orth(product(&a, true, &q))?;
        q = orth(product(&a, false, &z))?;
    }
    let b = product(&q, true, &a);
    let backend = match params.backend {
        BackendChoice::Auto => Backend::Auto,
        BackendChoice::Jacobi => Backend::jacobi(),
    };
    let f = svd(&b, backend)?;
    let (ub, sigma, v_t) = f.into_parts();
    let u = q * ub.columns(0, k);
    let mut s = Vec::with_capacity(k);
    for &x in &sigma[..k] {
        let v = x * amax;
        if !v.finite() {
            return Err(Error::Overflow {
                what: "singular value",
            });
        }
        s.push(v);
    }
    Ok(LowRank::from_parts(u, s, v_t.rows(0, k).into_owned()))
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

/// SplitMix64 with Box–Muller: a small, seeded, portable Gaussian source.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform number in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal number.
    pub(crate) fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `len` independent standard normal numbers, both of each Box–Muller
    /// pair used.
    pub(crate) fn normals<T: Scalar>(&mut self, len: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(len + 1);
        while out.len() < len {
            let (u1, u2) = (self.uniform(), self.uniform());
            let (r, phi) = ((-2.0 * u1.ln()).sqrt(), std::f64::consts::TAU * u2);
            out.push(T::lit(r * phi.cos()));
            out.push(T::lit(r * phi.sin()));
        }
        out.truncate(len);
        out
    }
}
