//! `Backend::Auto`: the crossovers that pick the first backend, and the
//! checks its answer must pass before it is returned (module docs of
//! [`svd`](super), `docs/THEORY.md` T12).

use nalgebra::DMatrix;

use super::{Backend, JacobiParams, Method, NalgebraParams, Raw, gate, run_backend};
use crate::num::dense::product;
use crate::num::rng::SplitMix64;
use crate::num::sum::{compensated_sum, sum_of_squares_f64};
use crate::view::{AsMatrixRef, MatrixRef};
use crate::{Result, Scalar, check};

/// Up to this size `Auto` asks nalgebra first for singular values only: the
/// crossover measured by `cargo run --release --example perf`
/// (`docs/PERFORMANCE.md`).
const NALGEBRA_MAX_VALUES: usize = 128;

/// Up to this size `Auto` asks nalgebra first for a full SVD (same source).
const NALGEBRA_MAX_VECTORS: usize = 32;

/// The number of Gaussian probe vectors in the checks of the vectors.
const PROBES: usize = 8;

/// The seed of the probes: fixed, so that `Auto` is deterministic.
const PROBE_SEED: u64 = 0x0a77_e471_0500_5eed;

/// Runs the first backend for the size, checks its answer, and falls back
/// to Jacobi when it fails or does not pass.
pub(super) fn run<T: Scalar>(a: &MatrixRef<'_, T>, vectors: bool) -> Result<(Raw<T>, Method)> {
    let first = match first_backend(a.nrows(), a.ncols(), vectors) {
        Method::Nalgebra => Backend::Nalgebra(NalgebraParams::new()),
        #[cfg(feature = "faer")]
        Method::Faer => Backend::Faer,
        _ => unreachable!("Auto starts with nalgebra or faer"),
    };
    if let Ok((raw, method)) = run_backend(a, first, vectors)
        && passes_checks(a, &raw)
    {
        return Ok((raw, method));
    }
    let raw = super::jacobi::svd(a, vectors, &JacobiParams::new())?;
    Ok((gate(raw, Method::Jacobi)?, Method::Jacobi))
}

/// The backend `Auto` runs first for an n×m input: nalgebra for small
/// inputs (max(n, m) ≤ [`NALGEBRA_MAX_VALUES`] for values only,
/// ≤ [`NALGEBRA_MAX_VECTORS`] with vectors), where its lower overhead
/// makes it the faster, faer otherwise (nalgebra only without the feature).
fn first_backend(n: usize, m: usize, vectors: bool) -> Method {
    let limit = if vectors {
        NALGEBRA_MAX_VECTORS
    } else {
        NALGEBRA_MAX_VALUES
    };
    if cfg!(feature = "faer") && n.max(m) > limit {
        Method::Faer
    } else {
        Method::Nalgebra
    }
}

/// The relative tolerance of the checks: τ = 8·max(n, m)·ε.
fn check_tolerance<T: Scalar>(n: usize, m: usize) -> T {
    T::from_count(8 * n.max(m)) * T::EPSILON
}

/// Whether a gated (U, σ, Vᵀ) from a fast backend is a plausible SVD of `a`.
fn passes_checks<T: Scalar>(a: &MatrixRef<'_, T>, raw: &Raw<T>) -> bool {
    let (n, m) = a.shape();
    let sigma = &raw.sigma;
    let tol = check_tolerance::<T>(n, m);
    if check::spectrum(sigma).is_err() {
        return false;
    }
    // The energy identity Σσ² = ‖A‖²_F (T5), on the scale of max|a|.
    let amax = a.amax();
    if amax == T::zero() {
        return sigma.iter().all(|&s| s == T::zero());
    }
    let inv = T::one() / amax;
    // Multiplying by 1/amax is cheaper than dividing, unless 1/amax
    // overflows (subnormal amax).
    let scale = |x: T| if inv.finite() { x * inv } else { x / amax };
    let data = a.column_major();
    let fro2 = T::lit(sum_of_squares_f64(&data, n, scale));
    let sig2 = compensated_sum(sigma.iter().map(|&s| scale(s) * scale(s)));
    if (fro2 - sig2).abs() > (tol + tol) * fro2 {
        return false;
    }
    let (Some(u), Some(v_t)) = (raw.u.as_ref(), raw.v_t.as_ref()) else {
        return true;
    };
    let k = sigma.len();
    if u.shape() != (n, k) || v_t.shape() != (k, m) {
        return false;
    }
    // For a matrix E and X with p independent standard Gaussian columns,
    // E‖EX‖²_F = p·‖E‖²_F. Each check below asks the probe estimate to be at
    // most half its tolerance, (tol/2)² per probe (module docs, T12).
    let budget = T::from_count(PROBES) * tol * tol / T::lit(4.0);
    let x = DMatrix::<T>::from_vec(m, PROBES, SplitMix64::new(PROBE_SEED).normals(m * PROBES));
    let (u, v_t, x_ref) = (u.as_matrix_ref(), v_t.as_matrix_ref(), x.as_matrix_ref());
    // Residual E = A/amax − U·(Σ/amax)·Vᵀ against tol·‖A/amax‖_F.
    let mut svx = product(&v_t, false, &x_ref);
    for (j, &s) in sigma.iter().enumerate() {
        svx.row_mut(j).scale_mut(scale(s));
    }
    let a_col = MatrixRef::from_column_major_slice(&data, n, m).expect("n·m entries");
    // A·X first and then the scaling, unless A·X could overflow or lose
    // digits to underflow.
    let ax = if amax < T::MAX.sqrt() && amax > T::MIN_POSITIVE.sqrt() {
        product(&a_col, false, &x_ref).map(scale)
    } else {
        product(&a_col.map(scale).as_matrix_ref(), false, &x_ref)
    };
    let ex = ax - product(&u, false, &svx.as_matrix_ref());
    if ex.norm_squared() > budget * fro2 {
        return false;
    }
    // Orthogonality UᵀU − I and VᵀV − I against tol, probed with the first
    // k rows of X (each check needs its probes independent, not the two
    // checks from each other).
    let y = x.rows(0, k).into_owned();
    let y_ref = y.as_matrix_ref();
    let gu = product(&u, true, &product(&u, false, &y_ref).as_matrix_ref()) - &y;
    let gv = product(&v_t, false, &product(&v_t, true, &y_ref).as_matrix_ref()) - &y;
    gu.norm_squared() <= budget && gv.norm_squared() <= budget
}
