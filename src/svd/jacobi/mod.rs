//! One-sided (Hestenes) Jacobi SVD, preconditioned by QR factorisations
//! (Drmač–Veselić) for all but small inputs.
//!
//! # Algorithm
//!
//! Let W be the input with rows ≥ columns (the transpose is used for wide
//! inputs), r×c, scaled by 1/max|wᵢⱼ| so every entry is in [−1, 1].
//!
//! *Small inputs* (c < 64) are rotated directly. Each sweep visits every
//! pair of columns (p, q), p < q, in row-cyclic order with de Rijk's
//! pivoting: before the pairs of column p, the remaining column (p, p+1, …)
//! of largest norm is swapped into position p. For each pair
//!
//! ```text
//! α = ‖w_p‖²,  β = ‖w_q‖²,  γ = w_pᵀw_q,  cos θ = |γ| / (√α·√β)
//! ```
//!
//! and, when cos θ > √rows·ε (LAPACK dgesvj's threshold), the plane rotation
//! that makes the two columns orthogonal (Rutishauser's formulas):
//!
//! ```text
//! ζ = (β − α) / (2γ),  t = sign(ζ) / (|ζ| + √(1 + ζ²)),  c = 1/√(1 + t²),  s = c·t
//! w_p ← c·w_p − s·w_q,   w_q ← s·w_p + c·w_q
//! ```
//!
//! applied to W and (when vectors are wanted) to V = I. Only γ is a fresh
//! dot product per pair: the squared norms are computed exactly at the start
//! of each sweep and then carried along, as in dgesvj: the rotation maps
//! (α, β) to (α − t·γ, β + t·γ), and a squared norm that this leaves below
//! 1/16 of its previous value (so that the subtraction may have cancelled
//! digits) is recomputed from the column instead. A sweep that rotates
//! nothing ends the iteration: W = UΣ with mutually orthogonal columns, so
//! σⱼ = ‖wⱼ‖·max|a| (norms recomputed from the final W), uⱼ = wⱼ/‖wⱼ‖.
//! The missing columns of U (for zero columns of W) are completed to an
//! orthonormal basis. α, β, γ, the cosine and the rotation are computed in
//! f64 for both scalar types; the rotation is applied in the scalar type.
//!
//! *Larger inputs* (c ≥ 64) are computed in f64 throughout (`f32` inputs
//! are converted and the results rounded back):
//!
//! 1. The columns of W are sorted by decreasing norm (permutation P) and
//!    factored W·P = Q₁·R₁ (Householder QR, faer's blocked kernel), then
//!    R₁ᵀ = Q₂·R₂ (a second QR). Jacobi runs on the c×c lower triangular
//!    X = R₂ᵀ, whose columns are much closer to orthogonal than W's
//!    (R₂ᵀR₂ = R₁R₁ᵀ is one step of the QR algorithm on WᵀW away from
//!    WᵀW); this is the preconditioning of LAPACK's dgejsv. faer's QR
//!    deflates columns whose remainder is below 16·r·ε of their norm
//!    (dropping it from R); when it does (numerically rank-deficient input)
//!    the factorisation is redone with the crate's blocked Householder QR
//!    (`qr.rs`: compact WY, level-3 updates, every column reduced), which
//!    is also the only one without the `faer` feature.
//! 2. The sweeps use the same rotations, threshold √c·ε and carried norms
//!    as above, but visit the pairs block by block (`blocked.rs`): blocks of
//!    ≈ 16384/c consecutive columns (8 to 64); for each block I the pairs
//!    inside it, then for every later block J the pairs (p ∈ I, q ∈ J), so
//!    that the 2·block columns of a step stay in cache. Columns are sorted by
//!    norm once per sweep (de Rijk's pivoting per sweep). The kernels are
//!    dispatched at run time to AVX2/FMA or AVX-512 ([`pulp`]). After a sweep
//!    that rotated fewer than c²/16 pairs, the next sweep takes the inner
//!    products of the columns it has not yet rotated from one Gram matrix
//!    XᵀX (a level-3 product) instead of c²/2 dot products.
//! 3. σⱼ = ‖xⱼ‖·max|a| from the final X = X₀·V_J, U = Q₁·[X·Σ⁻¹; 0].
//!    Since R₁ = X₀·Q₂ᵀ, the right singular vectors P·Q₂·V_J equal
//!    P·R₁⁻¹·X (dgejsv's triangular solve), so the rotations need not be
//!    accumulated: the columns of R₁⁻¹·X are normalised and kept if
//!    ‖VᵀV − I‖_F ≤ 8·c·ε (checked with one Gram product). Otherwise (R₁
//!    too ill-conditioned after row scaling, a zero σ, …) Jacobi reruns on
//!    X₀ with V_J accumulated and V = P·Q₂·V_J.
//!
//! A column whose squared norm falls below MIN_POSITIVE/ε of the scalar
//! type (a norm below about 3e-16·max|a| in f32, 1.5e-146·max|a| in f64) is
//! treated as exactly zero: it is below the rounding level of the input's
//! largest entries, and rotating it against a column that rounding left it
//! parallel to would only shrink it by ε per sweep.
//!
//! # Accuracy
//!
//! Since the stopping test is *relative* (a cosine), small singular values
//! are computed to high relative accuracy when A = B·D with B well
//! conditioned and D diagonal (Demmel–Veselić 1992), down to the limit
//! above (σ ≳ 3e-16·max|a| in f32, 1.5e-146·max|a| in f64), and the
//! computed U is orthonormal to O(√rows·ε) even for tiny σ. The carried
//! norms only choose the rotation angles and the skip decisions; every
//! rotation is still an exact-in-exact-arithmetic plane rotation applied to
//! the columns, and σ comes from the final columns themselves.
//!
//! The preconditioning keeps this property (Drmač–Veselić 2008): Householder
//! QR is backward stable column by column, (W + δW)·P = Q₁R₁ with
//! ‖δwⱼ‖ = O(rc·ε)‖wⱼ‖, a perturbation of the kind Jacobi itself commits;
//! with the columns sorted by decreasing norm, R₁ = (B′·D′-graded) has rows
//! graded like D′, R₁ᵀ = R̂ᵀ·D′ with R̂ as well conditioned as B up to a
//! factor of c, and the second QR and the sweeps on X = R₂ᵀ again commit
//! only column-wise relative errors of such well-scaled factors. The Gram
//! screening decides only *whether* a pair is rotated (its inner products
//! are as accurate as the dot products); the rotations themselves use fresh
//! or exactly carried quantities. With vectors, V = R₁⁻¹·X is accepted only
//! when it is orthonormal to 8·c·ε.
//!
//! # Complexity
//!
//! For an r×c input (r ≥ c), each sweep costs one length-r (small inputs)
//! or length-c (preconditioned) dot product per column pair plus, for the
//! pairs that are rotated, one rotation of the two columns (and of V when
//! accumulated): O(sweeps·c²·r) or, preconditioned, O(r·c²) for the QR
//! factorisations and for applying Q₁ plus O(sweeps·c³) level-1 work in
//! cache-sized blocks. Attention matrices take about 9–10 sweeps at
//! c = 256–1024 (QR preconditioning saves about one), the last two or three
//! rotating few pairs and mostly screened by one level-3 Gram product.

use nalgebra::DMatrix;

use super::{JacobiParams, Method, Raw};
use crate::num::scale::scale_back;
use crate::num::sum::dot_f64 as dot;
use crate::view::MatrixRef;
use crate::{Error, Result, Scalar};

mod blocked;
mod linalg;
mod qr;

/// The output of the Jacobi kernel: (U, σ, Vᵀ) in the shape of the input,
/// in the order the sweeps left them (the gate of [`svd`](super) sorts).
/// U and Vᵀ are `None` when not requested.
type Parts<T> = (Option<DMatrix<T>>, Vec<T>, Option<DMatrix<T>>);

/// Inputs with fewer columns (after transposing wide ones) than this take
/// the unpreconditioned, unblocked path.
const PRECONDITIONED_MIN: usize = 64;

/// The blocked sweeps keep the 2·block columns of a pair step in about
/// this many bytes (half of a typical 512 KiB L2 cache).
const STEP_BYTES: usize = 256 * 1024;

/// Columns per block for c×c blocked sweeps: 2·block·c·8 bytes ≈
/// [`STEP_BYTES`], between 8 and 64.
fn block_size(c: usize) -> usize {
    (STEP_BYTES / (16 * c.max(1))).clamp(8, 64)
}

/// V from the triangular solve is kept when ‖VᵀV − I‖_F ≤ ORTHO_LIMIT·c·ε.
const ORTHO_LIMIT: f64 = 8.0;

/// One-sided Jacobi SVD of a non-empty, finite matrix (a working copy is
/// made: the rotations run in place).
pub(crate) fn svd<T: Scalar>(
    a: &MatrixRef<'_, T>,
    vectors: bool,
    params: &JacobiParams,
) -> Result<Raw<T>> {
    let (n, m) = a.shape();
    let transposed = n < m;
    let w = if transposed {
        DMatrix::from_fn(m, n, |i, j| a.get(j, i))
    } else {
        a.to_dmatrix()
    };
    let (u, sigma, v_t) = jacobi(w, transposed, vectors, params)?;
    Ok(Raw { u, sigma, v_t })
}

/// The kernel on W (rows ≥ columns), the input or its transpose.
fn jacobi<T: Scalar>(
    mut w: DMatrix<T>,
    transposed: bool,
    vectors: bool,
    params: &JacobiParams,
) -> Result<Parts<T>> {
    let (r, c) = w.shape();
    let max_sweeps = params.sweeps_for::<T>()?;

    let amax = w.amax();
    if amax == T::zero() {
        let sigma = vec![T::zero(); c];
        let uw = vectors.then(|| DMatrix::identity(r, c));
        let v = vectors.then(|| DMatrix::identity(c, c));
        return Ok(finish(uw, sigma, v, transposed));
    }
    if c >= PRECONDITIONED_MIN {
        let (uw, sigma, v) = preconditioned(&w, amax, vectors, max_sweeps)?;
        return Ok(finish(uw, sigma, v, transposed));
    }
    // Division, not multiplication by 1/amax: 1/amax overflows for subnormal amax.
    w.apply(|x| *x /= amax);

    let mut v = vectors.then(|| DMatrix::<T>::identity(c, c));

    rotate_to_orthogonal(&mut w, v.as_mut(), max_sweeps)?;

    // σ_j = ‖w_j‖·amax; columns below the underflow threshold are zero.
    let tiny = tiny::<T>();
    let mut norms = Vec::with_capacity(c);
    for j in 0..c {
        let col = &w.as_slice()[j * r..(j + 1) * r];
        let ss = dot(col, col);
        norms.push(if ss <= tiny { 0.0 } else { ss.sqrt() });
    }
    let sigma = singular_values_from(&norms, amax)?;

    let mut uw = None;
    if vectors {
        let mut u = w;
        let mut zero_cols = Vec::new();
        for (j, &nj) in norms.iter().enumerate() {
            let col = &mut u.as_mut_slice()[j * r..(j + 1) * r];
            if nj == 0.0 {
                col.iter_mut().for_each(|x| *x = T::zero());
                zero_cols.push(j);
            } else {
                col.iter_mut().for_each(|x| *x = T::lit(x.to_f64() / nj));
            }
        }
        complete_orthonormal(&mut u, &zero_cols);
        uw = Some(u);
    }
    Ok(finish(uw, sigma, v, transposed))
}

/// σ_j = norm_j·amax, rounded to `T` (the one scale-back).
fn singular_values_from<T: Scalar>(norms: &[f64], amax: T) -> Result<Vec<T>> {
    let mut sigma: Vec<T> = norms.iter().map(|&nj| T::lit(nj)).collect();
    scale_back(&mut sigma, &[amax])?;
    Ok(sigma)
}

/// Exact squared norms → norms, with those at or below `tiny` set to zero.
fn norms_of(x: &DMatrix<f64>, tiny: f64) -> Vec<f64> {
    let r = x.nrows();
    (0..x.ncols())
        .map(|j| {
            let col = &x.as_slice()[j * r..(j + 1) * r];
            let ss = dot(col, col);
            if ss <= tiny { 0.0 } else { ss.sqrt() }
        })
        .collect()
}

/// The preconditioned path for W (r×c, r ≥ c ≥ PRECONDITIONED_MIN, not yet
/// scaled): returns (U_w, σ, V) with W = U_w·diag(σ)·Vᵀ (unsorted: the
/// gate sorts).
fn preconditioned<T: Scalar>(
    w: &DMatrix<T>,
    amax: T,
    vectors: bool,
    max_sweeps: usize,
) -> Result<Parts<T>> {
    let (r, c) = w.shape();
    let scale = amax.to_f64();
    let tiny = tiny::<T>();
    // Columns by decreasing norm (stable), scaled to max|w| = 1, in f64.
    let mut colnorm = vec![0.0f64; c];
    for (j, s) in colnorm.iter_mut().enumerate() {
        let col = &w.as_slice()[j * r..(j + 1) * r];
        *s = dot(col, col);
    }
    let mut perm: Vec<usize> = (0..c).collect();
    perm.sort_by(|&i, &j| colnorm[j].total_cmp(&colnorm[i]));
    let wp = DMatrix::<f64>::from_fn(r, c, |i, j| w[(i, perm[j])].to_f64() / scale);
    // W·P = Q₁·R₁ and R₁ᵀ = Q₂·R₂; Jacobi runs on X = R₂ᵀ.
    let qr1 = linalg::Qr::new(wp);
    let r1 = qr1.r();
    let qr2 = linalg::Qr::new(r1.transpose());
    let x0 = qr2.r().transpose();
    let settings = blocked::Settings {
        max_sweeps,
        tol: (c as f64).sqrt() * T::EPSILON.to_f64(),
        tiny,
        block: block_size(c),
    };
    let run = |x: &mut DMatrix<f64>, v: Option<&mut DMatrix<f64>>| {
        blocked::run(x, v, settings).map_err(|(sweeps, off)| Error::NoConvergence {
            method: Method::Jacobi,
            iterations: Some(sweeps),
            max_iterations: max_sweeps,
            off_diagonal: Some(off.min(1.0)),
        })
    };
    let mut x = x0.clone();
    run(&mut x, None)?;
    let mut norms = norms_of(&x, tiny);
    if !vectors {
        return Ok((None, singular_values_from(&norms, amax)?, None));
    }
    // V = P·Q₂·V_J. First try V = P·R₁⁻¹·X_final (X_final = X·V_J and
    // R₁ = X·Q₂ᵀ), which needs no accumulated rotations; keep it only if
    // its columns come out orthonormal.
    let mut vp = None;
    if norms.iter().all(|&nj| nj > 0.0) {
        let mut sol = x.clone();
        linalg::solve_upper(&r1, &mut sol);
        // In exact arithmetic R₁⁻¹·X = Q₂·V_J has orthonormal columns: their
        // norms must already be 1 (a far-off norm means R₁ is too
        // ill-conditioned for the solve, e.g. numerically rank-deficient W).
        let eps = T::EPSILON.to_f64();
        let off_norm = normalise_columns(&mut sol);
        if off_norm <= ORTHO_LIMIT * c as f64 * eps && orthonormal_enough(&sol, eps) {
            vp = Some(sol);
        }
    }
    let vp = match vp {
        Some(vp) => vp,
        None => {
            x = x0;
            let mut vj = DMatrix::<f64>::identity(c, c);
            run(&mut x, Some(&mut vj))?;
            norms = norms_of(&x, tiny);
            qr2.apply_q(&vj)
        }
    };
    let sigma = singular_values_from(&norms, amax)?;
    let mut uj = x;
    let mut zero_cols = Vec::new();
    for (j, &nj) in norms.iter().enumerate() {
        let col = &mut uj.as_mut_slice()[j * c..(j + 1) * c];
        if nj == 0.0 {
            col.iter_mut().for_each(|x| *x = 0.0);
            zero_cols.push(j);
        } else {
            col.iter_mut().for_each(|x| *x /= nj);
        }
    }
    complete_orthonormal(&mut uj, &zero_cols);
    let uw = qr1.apply_q(&uj);
    let uw = DMatrix::<T>::from_fn(r, c, |i, j| T::lit(uw[(i, j)]));
    let mut v = DMatrix::<T>::zeros(c, c);
    for (i, &pi) in perm.iter().enumerate() {
        for j in 0..c {
            v[(pi, j)] = T::lit(vp[(i, j)]);
        }
    }
    Ok((Some(uw), sigma, Some(v)))
}

/// Scales every nonzero column to unit norm; returns the largest
/// |‖column‖ − 1| before scaling.
fn normalise_columns(x: &mut DMatrix<f64>) -> f64 {
    let r = x.nrows();
    let mut worst = 0.0f64;
    for col in x.as_mut_slice().chunks_exact_mut(r) {
        let nrm = dot(col, col).sqrt();
        worst = worst.max((nrm - 1.0).abs());
        if nrm > 0.0 {
            col.iter_mut().for_each(|v| *v /= nrm);
        }
    }
    worst
}

/// Whether ‖XᵀX − I‖_F ≤ c·eps for the c columns of X (all finite).
fn orthonormal_enough(x: &DMatrix<f64>, eps: f64) -> bool {
    let (r, c) = x.shape();
    if x.iter().any(|v| !v.is_finite()) {
        return false;
    }
    let mut g = vec![0.0; c * c];
    linalg::gram_lower(&mut g, c, linalg::View::cols_of(x.as_slice(), r, r, 0, c));
    let mut off = 0.0;
    for j in 0..c {
        let d = g[j * c + j] - 1.0;
        off += d * d;
        for i in j + 1..c {
            off += 2.0 * g[j * c + i] * g[j * c + i];
        }
    }
    off.sqrt() <= ORTHO_LIMIT * c as f64 * eps
}

/// Maps the factors of W back to those of the input.
fn finish<T: Scalar>(
    uw: Option<DMatrix<T>>,
    sigma: Vec<T>,
    v: Option<DMatrix<T>>,
    transposed: bool,
) -> Parts<T> {
    if transposed {
        // Aᵀ = U_w Σ Vᵀ  ⇒  A = V Σ U_wᵀ.
        (v, sigma, uw.map(|u| u.transpose()))
    } else {
        (uw, sigma, v.map(|v| v.transpose()))
    }
}

/// Mutable slices of columns p < q of a column-major buffer with `r` rows.
#[inline]
fn two_columns<T>(data: &mut [T], r: usize, p: usize, q: usize) -> (&mut [T], &mut [T]) {
    debug_assert!(p < q);
    let (left, right) = data.split_at_mut(q * r);
    (&mut left[p * r..(p + 1) * r], &mut right[..r])
}

/// Squared column norms at or below this (after scaling by max|a|) count as
/// zero: MIN_POSITIVE/ε of `T`, i.e. norms below ≈ 3e-16 (f32) or
/// ≈ 1.5e-146 (f64). Without it, a column that rounding left parallel to
/// another would be rotated sweep after sweep, shrinking by ε each time.
fn tiny<T: Scalar>() -> f64 {
    T::MIN_POSITIVE.to_f64() / T::EPSILON.to_f64()
}

/// Cyclic one-sided Jacobi sweeps on the columns of `w` (rows ≥ columns,
/// entries in [−1, 1]), accumulating the rotations into `v` when given,
/// until a sweep rotates nothing. Returns the number of sweeps, or
/// `NoConvergence` after `max_sweeps`.
fn rotate_to_orthogonal<T: Scalar>(
    w: &mut DMatrix<T>,
    mut v: Option<&mut DMatrix<T>>,
    max_sweeps: usize,
) -> Result<usize> {
    let (r, c) = w.shape();
    let tol = (r as f64).sqrt() * T::EPSILON.to_f64();
    let tiny = tiny::<T>();
    let mut sq = vec![0.0f64; c];
    let mut sweeps = 0;
    let mut last_max_cos = 0.0f64;
    while sweeps < max_sweeps {
        sweeps += 1;
        // Exact squared norms at the start of every sweep; within the sweep
        // they are updated with each rotation.
        for (j, s) in sq.iter_mut().enumerate() {
            let col = &w.as_slice()[j * r..(j + 1) * r];
            *s = dot(col, col);
        }
        let mut rotated = false;
        let mut max_cos = 0.0f64;
        for p in 0..c {
            // de Rijk's pivoting: the remaining column of largest norm
            // goes to position p.
            let best = (p..c)
                .max_by(|&i, &j| sq[i].partial_cmp(&sq[j]).expect("finite"))
                .expect("p < c");
            if best != p {
                w.swap_columns(p, best);
                sq.swap(p, best);
                if let Some(v) = v.as_mut() {
                    v.swap_columns(p, best);
                }
            }
            for q in p + 1..c {
                let (alpha, beta) = (sq[p], sq[q]);
                if alpha <= tiny || beta <= tiny {
                    continue;
                }
                let (wp, wq) = two_columns(w.as_mut_slice(), r, p, q);
                let gamma = dot(wp, wq);
                let cos = gamma.abs() / (alpha.sqrt() * beta.sqrt());
                if cos > max_cos {
                    max_cos = cos;
                }
                if cos <= tol {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + 1f64.hypot(zeta));
                let c64 = 1.0 / 1f64.hypot(t);
                let (cs, sn) = (T::lit(c64), T::lit(c64 * t));
                rotate(wp, wq, cs, sn);
                // The rotation moves t·γ of squared norm from w_p to w_q (or
                // back). A norm that shrank a lot has lost digits to
                // cancellation and is recomputed.
                let (alpha_new, beta_new) = (alpha - t * gamma, beta + t * gamma);
                sq[p] = if alpha_new > alpha * RECOMPUTE {
                    alpha_new
                } else {
                    dot(wp, wp)
                };
                sq[q] = if beta_new > beta * RECOMPUTE {
                    beta_new
                } else {
                    dot(wq, wq)
                };
                if let Some(v) = v.as_mut() {
                    let (vp, vq) = two_columns(v.as_mut_slice(), c, p, q);
                    rotate(vp, vq, cs, sn);
                }
            }
        }
        last_max_cos = max_cos;
        if !rotated {
            return Ok(sweeps);
        }
    }
    Err(Error::NoConvergence {
        method: Method::Jacobi,
        iterations: Some(sweeps),
        max_iterations: max_sweeps,
        // A cosine, so at most 1 (rounding of the f64 ratio can exceed it).
        off_diagonal: Some(last_max_cos.min(1.0)),
    })
}

/// A squared column norm updated by a rotation is recomputed from the
/// column when it fell to this fraction of its value before the rotation.
const RECOMPUTE: f64 = 1.0 / 16.0;

/// x ← c·x − s·y, y ← s·x + c·y.
#[inline]
fn rotate<T: Scalar>(x: &mut [T], y: &mut [T], c: T, s: T) {
    for (xi, yi) in x.iter_mut().zip(y.iter_mut()) {
        let (a, b) = (*xi, *yi);
        *xi = c * a - s * b;
        *yi = s * a + c * b;
    }
}

/// Fills the listed (zero) columns of `u`, whose other columns are
/// orthonormal, with unit vectors orthogonal to all the others: for each,
/// the standard basis vector with the largest component outside the span so
/// far, orthogonalised twice (classical Gram–Schmidt with reorthogonalisation).
pub(crate) fn complete_orthonormal<T: Scalar>(u: &mut DMatrix<T>, zero_cols: &[usize]) {
    if zero_cols.is_empty() {
        return;
    }
    let (r, c) = u.shape();
    let mut filled: Vec<bool> = vec![true; c];
    for &j in zero_cols {
        filled[j] = false;
    }
    // Squared norm of each row of the filled columns: e_i has residual
    // 1 − ‖row_i‖² outside their span; pick the largest each time.
    let mut row_weight = vec![T::zero(); r];
    for (j, &f) in filled.iter().enumerate() {
        if f {
            for (i, w) in row_weight.iter_mut().enumerate() {
                *w += u[(i, j)] * u[(i, j)];
            }
        }
    }
    for &j in zero_cols {
        let best = (0..r)
            .min_by(|&a, &b| row_weight[a].partial_cmp(&row_weight[b]).expect("finite"))
            .expect("r ≥ 1");
        let mut x = vec![T::zero(); r];
        x[best] = T::one();
        for _pass in 0..2 {
            for (l, &f) in filled.iter().enumerate() {
                if !f {
                    continue;
                }
                let col = &u.as_slice()[l * r..(l + 1) * r];
                let proj = col
                    .iter()
                    .zip(&x)
                    .fold(T::zero(), |a, (&ci, &xi)| a + ci * xi);
                for (xi, &ci) in x.iter_mut().zip(col) {
                    *xi -= proj * ci;
                }
            }
        }
        let norm = x.iter().fold(T::zero(), |a, &xi| a + xi * xi).sqrt();
        for (i, xi) in x.iter().enumerate() {
            u[(i, j)] = *xi / norm;
        }
        filled[j] = true;
        for (i, w) in row_weight.iter_mut().enumerate() {
            *w += u[(i, j)] * u[(i, j)];
        }
    }
}
