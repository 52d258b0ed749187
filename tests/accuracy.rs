//! The LAPACK-style accuracy suite (`docs/ACCURACY.md`): every test ratio
//! of Jacobi and Auto below 50 on every family, shape and precision; Auto
//! falls back to Jacobi wherever nalgebra's factors fail the threshold; and
//! Jacobi computes σ_min of graded matrices B·D to high relative accuracy
//! (Demmel–Veselić). The generators and ratios live in the workspace crate
//! `attention-svd-accuracy` (`accuracy/`), whose binary prints the table.

use attention_svd::Scalar;
use nalgebra::DMatrix;

use attention_svd_accuracy::{
    Ratios, THRESHOLD, backend_name, graded, graded_table, jacobi, nalgebra, ratio_table,
    ratios_of, run,
};

/// Jacobi and Auto pass every ratio; Auto falls back on every matrix where
/// nalgebra's run with vectors does not. nalgebra's own failures are
/// reported, not required.
fn lapack_ratios<T: Scalar>() {
    let report = run::<T>();
    eprintln!("{}", ratio_table(std::slice::from_ref(&report)));
    assert!(
        report.violations.is_empty(),
        "{} Jacobi/Auto/faer ratios ≥ {THRESHOLD}:\n{}",
        report.violations.len(),
        report.violations.join("\n")
    );
    let missed: Vec<&String> = report
        .families
        .iter()
        .flat_map(|f| &f.missed_fallbacks)
        .collect();
    assert!(
        missed.is_empty(),
        "Auto kept nalgebra's failing factors on:\n{missed:#?}"
    );
    for f in &report.families {
        // Every backend but nalgebra (whose failures are known, and which
        // Auto guards) passes every ratio.
        for (b, &worst) in f.worst.iter().enumerate() {
            if b != nalgebra() {
                assert!(worst < THRESHOLD, "{} {}: {worst}", backend_name(b), f.name);
            }
        }
        if f.over_threshold[nalgebra()] > 0 {
            eprintln!(
                "{} {}: nalgebra ≥ {THRESHOLD} on {} of {} (worst {:.1e}, {}); \
                 Auto fell back on {}",
                T::NAME,
                f.name,
                f.over_threshold[nalgebra()],
                f.cases,
                f.worst[nalgebra()],
                f.worst_at[nalgebra()],
                f.fallbacks
            );
        }
    }
}

#[test]
fn lapack_ratios_f32() {
    lapack_ratios::<f32>();
}

#[test]
fn lapack_ratios_f64() {
    lapack_ratios::<f64>();
}

/// Demmel–Veselić: for A = B·D with κ(B) = 10 and D from 1e-1 down to
/// 1e-15 (in decreasing, increasing and random column order), Jacobi's
/// σ_min has relative error ≤ 1e-10. nalgebra's and Auto's are reported,
/// not required.
#[test]
fn graded_matrices_jacobi_sigma_min_is_relatively_accurate() {
    let rows = graded();
    eprintln!("{}", graded_table(&rows));
    for r in &rows {
        assert!(
            r.rel_err[jacobi()] <= 1e-10,
            "n = {}, {:?} D down to {:e}: Jacobi σ_min relative error {:e}",
            r.n,
            r.grading,
            r.d_min,
            r.rel_err[jacobi()]
        );
    }
}

/// The ratios themselves: an exact SVD scores ≈ 0; a perturbed factor, an
/// unsorted or negative σ and a differing values-only run are flagged.
fn ratios_detect_bad_factors<T: Scalar>() {
    let ulp = T::EPSILON.to_f64();
    let lit = |x: f64| T::lit(x);
    // A = diag(3, 2) embedded in 3×2: U = I₃ₓ₂, σ = (3, 2), Vᵀ = I₂.
    let a = DMatrix::from_fn(3, 2, |i, j| match (i, j) {
        (0, 0) => lit(3.0),
        (1, 1) => lit(2.0),
        _ => T::zero(),
    });
    let u = DMatrix::<T>::identity(3, 2);
    let v_t = DMatrix::<T>::identity(2, 2);
    let sigma = [lit(3.0), lit(2.0)];
    let good = ratios_of(&a, &u, &sigma, &v_t, &sigma);
    assert!(good.all().iter().all(|&r| r == 0.0), "{good:?}");

    let mut u_bad = u.clone();
    u_bad[(1, 0)] = lit(1e3 * ulp);
    let r = ratios_of(&a, &u_bad, &sigma, &v_t, &sigma);
    assert!(r.reconstruction >= THRESHOLD && r.orthogonality_u >= THRESHOLD);
    assert!(r.orthogonality_v == 0.0);

    let unsorted = [lit(2.0), lit(3.0)];
    let r = ratios_of(&a, &u, &sigma, &v_t, &unsorted);
    assert_eq!(r.order, 1.0 / ulp);
    assert!(r.values_only >= THRESHOLD);
    let negative = [lit(3.0), lit(-2.0)];
    assert_eq!(ratios_of(&a, &u, &negative, &v_t, &sigma).order, 1.0 / ulp);

    let off = [lit(3.0), lit(2.0) + lit(200.0 * ulp)];
    let r = ratios_of(&a, &u, &sigma, &v_t, &off);
    assert!(r.values_only >= THRESHOLD, "{r:?}");

    // A = 0: absolute residual; zero values agree.
    let z = DMatrix::<T>::zeros(3, 2);
    let zs = [T::zero(), T::zero()];
    assert!(ratios_of(&z, &u, &zs, &v_t, &zs).worst().0 == 0.0);
    assert!(ratios_of(&z, &u, &sigma, &v_t, &zs).reconstruction >= THRESHOLD);
    assert_eq!(Ratios::failed(ulp).worst().0, 1.0 / ulp);

    // Near overflow and underflow the power-of-two scaling keeps norms finite.
    for s in [T::MAX / lit(8.0), T::MIN_POSITIVE * lit(8.0)] {
        let big = a.map(|x| x * s);
        let sig = [lit(3.0) * s, lit(2.0) * s];
        let r = ratios_of(&big, &u, &sig, &v_t, &sig);
        assert!(r.worst().0 < 1.0, "scale {s:?}: {r:?}");
    }
}

#[test]
fn ratios_detect_bad_factors_f32() {
    ratios_detect_bad_factors::<f32>();
}

#[test]
fn ratios_detect_bad_factors_f64() {
    ratios_detect_bad_factors::<f64>();
}
