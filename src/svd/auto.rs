//! `Backend::Auto`: the crossovers that pick the first backend, and the
//! checks its answer must pass before it is returned (module docs of
//! [`svd`](super), `docs/THEORY.md` T12).

use std::sync::OnceLock;

use nalgebra::DMatrix;

use super::{Backend, JacobiParams, Method, NalgebraParams, Raw, gate, run_backend};
use crate::num::dense::product;
use crate::num::rng::SplitMix64;
use crate::num::sum::{compensated_sum, dot_f64 as dot, sum_of_squares_f64};
use crate::view::{AsMatrixRef, MatrixRef};
use crate::{Result, Scalar, check};

/// Up to this size `Auto` asks nalgebra first for singular values only: the
/// crossover measured by `cargo run --release --example perf`
/// (`docs/PERFORMANCE.md`; faer's bidiagonalisation with the crate's dqds
/// is the faster from about n = 96 on).
const NALGEBRA_MAX_VALUES: usize = 64;

/// Up to this size `Auto` asks nalgebra first for a full SVD (same source).
const NALGEBRA_MAX_VECTORS: usize = 32;

/// The number of Gaussian probe vectors in the checks of the vectors.
const PROBES: usize = 8;

/// The seed of the probes: fixed, so that `Auto` is deterministic.
const PROBE_SEED: u64 = 0x0a77_e471_0500_5eed;

/// The probes for inputs of up to this many columns are drawn once per
/// process (8192 numbers, 64 KB) and reused; wider inputs draw theirs.
const CACHED_PROBE_ROWS: usize = 1024;

/// Up to this many singular triplets the checks of the vectors are exact
/// (the defects themselves, not probe estimates): for k ≤ 2·[`PROBES`]
/// they cost no more arithmetic than the probes, and none of their fixed
/// cost (T12).
const EXACT_CHECK_MAX_RANK: usize = 2 * PROBES;

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
    if k <= EXACT_CHECK_MAX_RANK {
        return exact_checks_pass(&data, amax, sigma, u, v_t, tol.to_f64());
    }
    // For a matrix E and X with p independent standard Gaussian columns,
    // E‖EX‖²_F = p·‖E‖²_F. Each check below asks the probe estimate to be at
    // most half its tolerance, (tol/2)² per probe (module docs, T12).
    let budget = T::from_count(PROBES) * tol * tol / T::lit(4.0);
    let x = probes::<T>(m);
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

/// The m×[`PROBES`] Gaussian probes: the first m·PROBES numbers of the
/// stream seeded by [`PROBE_SEED`] (a prefix of the cached ones when
/// m ≤ [`CACHED_PROBE_ROWS`]).
fn probes<T: Scalar>(m: usize) -> DMatrix<T> {
    static CACHE: OnceLock<Vec<f64>> = OnceLock::new();
    let len = m * PROBES;
    if m <= CACHED_PROBE_ROWS {
        let cached = CACHE
            .get_or_init(|| SplitMix64::new(PROBE_SEED).normals::<f64>(CACHED_PROBE_ROWS * PROBES));
        DMatrix::from_iterator(m, PROBES, cached[..len].iter().map(|&x| T::lit(x)))
    } else {
        DMatrix::from_vec(m, PROBES, SplitMix64::new(PROBE_SEED).normals(len))
    }
}

/// The checks of the vectors without probes, for k ≤
/// [`EXACT_CHECK_MAX_RANK`]: ‖A/amax − U·(Σ/amax)·Vᵀ‖_F ≤ (τ/2)·‖A/amax‖_F,
/// ‖UᵀU − I‖_F ≤ τ/2 and ‖VᵀV − I‖_F ≤ τ/2, the thresholds whose squares
/// the probe estimates are held to per probe (module docs of
/// [`svd`](super), T12), computed in f64 for both scalar types. `data` is A
/// in column-major order.
fn exact_checks_pass<T: Scalar>(
    data: &[T],
    amax: T,
    sigma: &[T],
    u: &DMatrix<T>,
    v_t: &DMatrix<T>,
    tol: f64,
) -> bool {
    let (n, k) = u.shape();
    let amax = amax.to_f64();
    let inv = 1.0 / amax;
    // As in `passes_checks`: divide when 1/amax overflows (subnormal amax).
    let scale = |x: f64| if inv.is_finite() { x * inv } else { x / amax };
    let (u, v) = (u.as_slice(), v_t.as_slice());
    let s: Vec<f64> = sigma.iter().map(|x| scale(x.to_f64())).collect();
    let half2 = 0.25 * tol * tol;
    // The residual, column by column: r = a_j/amax − U·(Σ/amax)·(Vᵀ)_j.
    let (mut fro2, mut res2) = (0.0f64, 0.0f64);
    let mut r = vec![0.0f64; n];
    for (a_j, v_j) in data.chunks_exact(n).zip(v.chunks_exact(k)) {
        for (ri, &a) in r.iter_mut().zip(a_j) {
            *ri = scale(a.to_f64());
        }
        fro2 += dot(&r, &r);
        for ((&sl, &vl), u_l) in s.iter().zip(v_j).zip(u.chunks_exact(n)) {
            let c = sl * vl.to_f64();
            for (ri, &ul) in r.iter_mut().zip(u_l) {
                *ri -= c * ul.to_f64();
            }
        }
        res2 += dot(&r, &r);
    }
    if res2 > half2 * fro2 {
        return false;
    }
    // ‖G − I‖²_F of a symmetric Gram matrix G from its upper triangle.
    let defect = |g: &dyn Fn(usize, usize) -> f64| {
        let mut sum = 0.0f64;
        for q in 0..k {
            let d = g(q, q) - 1.0;
            sum += d * d;
            for p in 0..q {
                let d = g(p, q);
                sum += 2.0 * d * d;
            }
        }
        sum
    };
    let column = |j: usize| &u[j * n..(j + 1) * n];
    if defect(&|p, q| dot(column(p), column(q))) > half2 {
        return false;
    }
    // VᵀV: the sum over the columns of Vᵀ of their outer products.
    let mut g = vec![0.0f64; k * k];
    for v_j in v.chunks_exact(k) {
        for (q, &vq) in v_j.iter().enumerate() {
            let vq = vq.to_f64();
            for (gp, &vp) in g[q * k..=q * k + q].iter_mut().zip(v_j) {
                *gp += vp.to_f64() * vq;
            }
        }
    }
    defect(&|p, q| g[q * k + p]) <= half2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::AsMatrixRef;

    /// A well-conditioned n×m test matrix.
    fn matrix(n: usize, m: usize) -> DMatrix<f64> {
        DMatrix::from_fn(n, m, |i, j| {
            ((i * 7 + j * 13) % 17) as f64 / 17.0 + if i == j { 2.0 } else { 0.0 }
        })
    }

    fn raw_of(a: &DMatrix<f64>) -> Raw<f64> {
        let a = a.as_matrix_ref();
        run_backend(&a, Backend::Nalgebra(NalgebraParams::new()), true)
            .expect("converges")
            .0
    }

    /// Each defect the checks bound, planted at 4τ (the probes reject it
    /// with probability ≥ 1 − 6.5·10⁻⁴, the exact checks always), is
    /// rejected, on both sides of the exact/probe crossover, tall and wide;
    /// the unperturbed factorisation passes.
    #[test]
    fn checks_reject_each_planted_defect() {
        for (n, m) in [(6, 4), (12, 16), (16, 16), (17, 17), (40, 24), (24, 40)] {
            let a = matrix(n, m);
            let a_ref = a.as_matrix_ref();
            let raw = raw_of(&a);
            assert!(passes_checks(&a_ref, &raw), "{n}×{m} exact SVD");
            let k = raw.sigma.len();
            let big = 4.0 * check_tolerance::<f64>(n, m);
            // U: one column lengthened (orthogonality of U; the residual too).
            let mut bad = raw_of(&a);
            bad.u.as_mut().unwrap().column_mut(0).scale_mut(1.0 + big);
            assert!(!passes_checks(&a_ref, &bad), "{n}×{m} U");
            // Vᵀ: two rows rotated into each other by a small angle (V stays
            // orthogonal; only the residual sees it).
            let mut bad = raw_of(&a);
            let v_t = bad.v_t.as_mut().unwrap();
            let (r0, r1) = (v_t.row(0).into_owned(), v_t.row(k - 1).into_owned());
            let (c, s) = ((1.0 - big * big).sqrt(), big);
            v_t.set_row(0, &(&r0 * c + &r1 * s));
            v_t.set_row(k - 1, &(&r1 * c - &r0 * s));
            assert!(!passes_checks(&a_ref, &bad), "{n}×{m} V rotated");
            // Vᵀ: one row lengthened (orthogonality of V).
            let mut bad = raw_of(&a);
            bad.v_t
                .as_mut()
                .unwrap()
                .row_mut(k - 1)
                .scale_mut(1.0 + big);
            assert!(!passes_checks(&a_ref, &bad), "{n}×{m} V");
        }
    }

    /// The probes are the same numbers whether drawn from the cache or not.
    #[test]
    fn cached_probes_are_the_stream_prefix() {
        for m in [1, 7, CACHED_PROBE_ROWS] {
            let fresh = DMatrix::<f64>::from_vec(
                m,
                PROBES,
                SplitMix64::new(PROBE_SEED).normals(m * PROBES),
            );
            assert_eq!(probes::<f64>(m), fresh);
            let fresh32 = DMatrix::<f32>::from_vec(
                m,
                PROBES,
                SplitMix64::new(PROBE_SEED).normals(m * PROBES),
            );
            assert_eq!(probes::<f32>(m), fresh32);
        }
    }
}
