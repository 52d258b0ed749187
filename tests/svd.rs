//! The SVD backends: factor properties, special matrices, the all-ones trap,
//! iteration caps and error paths.

use attention_svd::svd::{Backend, JacobiParams, Method, NalgebraParams, singular_values, svd};
use attention_svd::{Error, Scalar};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::common::{fro, orthogonality_error, tol, uniform};
use crate::prop_f32_f64;

type Check = Result<(), TestCaseError>;

/// Sorted, non-negative σ; ‖A − UΣVᵀ‖_F ≤ tol·‖A‖_F; orthonormal U and V.
#[track_caller]
fn check_factorization<T: Scalar>(a: &DMatrix<T>, backend: Backend) -> Check {
    let (n, m) = a.shape();
    let k = n.min(m);
    let t = tol::<T>(n.max(m)).to_f64();
    let f = svd(a, backend).unwrap();
    let s = f.singular_values();
    prop_assert_eq!(s.len(), k);
    prop_assert_eq!(f.u().shape(), (n, k));
    prop_assert_eq!(f.v_t().shape(), (k, m));
    prop_assert!(s.iter().all(|&x| x >= T::zero()));
    prop_assert!(s.windows(2).all(|w| w[0] >= w[1]));
    let residual = fro(&(a - f.reconstruct()));
    prop_assert!(
        residual <= t * fro(a).max(f64::MIN_POSITIVE),
        "residual {residual:e}"
    );
    prop_assert!(
        orthogonality_error(f.u()) <= t,
        "U: {:e}",
        orthogonality_error(f.u())
    );
    prop_assert!(orthogonality_error(&f.v_t().transpose()) <= t);
    Ok(())
}

fn reconstruct_auto_jacobi<T: Scalar>(a: DMatrix<T>) -> Check {
    check_factorization(&a, Backend::Auto)?;
    check_factorization(&a, Backend::jacobi())
}
prop_f32_f64!(
    256,
    reconstruction_and_orthogonality,
    row_stochastic,
    reconstruct_auto_jacobi
);

/// The explicit nalgebra backend is not validated (it can be silently
/// inaccurate, which is why `Auto` exists): only its structural guarantees
/// are checked here.
fn reconstruct_all<T: Scalar>(a: DMatrix<T>) -> Check {
    check_factorization(&a, Backend::Auto)?;
    check_factorization(&a, Backend::jacobi())?;
    let (n, m) = a.shape();
    let k = n.min(m);
    let f = svd(&a, Backend::nalgebra()).unwrap();
    let s = f.singular_values();
    prop_assert!(s.iter().all(|&x| x >= T::zero()) && s.windows(2).all(|w| w[0] >= w[1]));
    prop_assert_eq!((f.u().shape(), f.v_t().shape()), ((n, k), (k, m)));
    Ok(())
}
prop_f32_f64!(256, reconstruction_general, general, reconstruct_all);

// The values-only run returns the same σ as the run with vectors.
fn values_only_matches<T: Scalar>(a: DMatrix<T>) -> Check {
    let (n, m) = a.shape();
    for backend in [Backend::Auto, Backend::jacobi()] {
        let full = svd(&a, backend).unwrap();
        let values = singular_values(&a, backend).unwrap();
        let s1 = values[0].to_f64();
        for (x, y) in full.singular_values().iter().zip(values.iter()) {
            let ts = crate::common::sigma_tol::<T>(n, m);
            prop_assert!((x.to_f64() - y.to_f64()).abs() <= ts * fro(&a).max(s1));
        }
    }
    Ok(())
}
prop_f32_f64!(
    256,
    values_only_equals_full,
    row_stochastic,
    values_only_matches
);

// T14: Jacobi's relative stopping rule gives orthonormal U even for tiny σ.
fn jacobi_orthonormal<T: Scalar>(a: DMatrix<T>) -> Check {
    let (n, m) = a.shape();
    // Grade the columns over ~4 (f32) or ~10 (f64) orders of magnitude.
    let decades = if T::MANTISSA_DIGITS > 30 { 10.0 } else { 4.0 };
    let graded = DMatrix::from_fn(n, m, |i, j| {
        a[(i, j)] * T::lit(10f64.powf(-decades * j as f64 / m.max(2) as f64))
    });
    let f = svd(&graded, Backend::jacobi()).unwrap();
    let k = n.min(m);
    let t = T::from_count(n.max(m)).sqrt().to_f64() * T::EPSILON.to_f64() * k as f64 * 4.0;
    prop_assert!(orthogonality_error(f.u()) <= t.max(tol::<T>(k).to_f64()));
    prop_assert!(orthogonality_error(&f.v_t().transpose()) <= tol::<T>(k).to_f64());
    Ok(())
}
prop_f32_f64!(
    128,
    jacobi_converges_with_orthonormal_u,
    general,
    jacobi_orthonormal
);

/// Nalgebra issue #1172: wrong σ with vectors on all-ones-like matrices.
/// Uniform attention (1/m)·11ᵀ of every shape up to 29×29: `Auto` and
/// `Jacobi` must be right; the number of nalgebra failures Auto caught is
/// reported.
fn all_ones_shapes<T: Scalar>() {
    let mut nalgebra_wrong = 0;
    let mut fallbacks = 0;
    for n in 1..=29 {
        for m in 1..=29 {
            let a = uniform::<T>(n, m);
            let exact = (n as f64 / m as f64).sqrt();
            let t = tol::<T>(n.max(m)).to_f64();
            let nal = svd(&a, Backend::nalgebra()).unwrap();
            if (nal.singular_values()[0].to_f64() - exact).abs() > t * exact
                || fro(&(&a - nal.reconstruct())) > t * fro(&a)
            {
                nalgebra_wrong += 1;
            }
            for backend in [Backend::Auto, Backend::jacobi()] {
                let f = svd(&a, backend).unwrap();
                if backend == Backend::Auto && f.method() == Method::Jacobi {
                    fallbacks += 1;
                }
                let s = f.singular_values();
                assert!(
                    (s[0].to_f64() - exact).abs() <= t * exact,
                    "{n}×{m} {backend:?}: σ₁ = {:?}",
                    s[0]
                );
                assert!(s[1..].iter().all(|x| x.to_f64() <= t * exact));
                assert!(
                    fro(&(&a - f.reconstruct())) <= t * fro(&a),
                    "{n}×{m} {backend:?}"
                );
                assert!(orthogonality_error(f.u()) <= t, "{n}×{m} {backend:?}");
                assert!(orthogonality_error(&f.v_t().transpose()) <= t);
                let values = singular_values(&a, backend).unwrap();
                assert!((values[0].to_f64() - exact).abs() <= t * exact);
            }
        }
    }
    eprintln!(
        "{}: nalgebra wrong on {nalgebra_wrong} of 841 all-ones shapes; Auto fell back on {fallbacks}",
        T::NAME
    );
    assert!(fallbacks >= nalgebra_wrong);
}

#[test]
fn all_ones_shapes_f32() {
    all_ones_shapes::<f32>();
}

#[test]
fn all_ones_shapes_f64() {
    all_ones_shapes::<f64>();
}

fn special_matrices<T: Scalar>() {
    for &backend in Backend::all() {
        // Zero matrices: σ = 0, U and V still orthonormal.
        for (n, m) in [(1, 1), (3, 3), (5, 2), (2, 5)] {
            let z = DMatrix::<T>::zeros(n, m);
            let f = svd(&z, backend).unwrap();
            assert!(f.singular_values().iter().all(|&s| s == T::zero()));
            assert!(orthogonality_error(f.u()) <= tol::<T>(n).to_f64());
            assert!(orthogonality_error(&f.v_t().transpose()) <= tol::<T>(m).to_f64());
        }
        // Identity, square, tall and wide.
        for (n, m) in [(4, 4), (6, 3), (3, 6)] {
            let i = DMatrix::<T>::identity(n, m);
            let s = singular_values(&i, backend).unwrap();
            assert!(
                s.iter()
                    .all(|&x| (x - T::one()).abs() <= tol::<T>(n.max(m)))
            );
        }
        // 1×1, 1×m, n×1.
        let s = singular_values(&DMatrix::from_element(1, 1, T::lit(-2.5)), backend).unwrap();
        assert_eq!(&s[..], &[T::lit(2.5)]);
        let row = DMatrix::from_row_slice(1, 2, &[T::lit(3.0), T::lit(4.0)]);
        let f = svd(&row, backend).unwrap();
        assert!((f.singular_values()[0] - T::lit(5.0)).abs() <= tol::<T>(2));
        assert!(fro(&(&row - f.reconstruct())) <= tol::<T>(2).to_f64() * 5.0);
        let col = row.transpose();
        let f = svd(&col, backend).unwrap();
        assert!((f.singular_values()[0] - T::lit(5.0)).abs() <= tol::<T>(2));
        assert!(fro(&(&col - f.reconstruct())) <= tol::<T>(2).to_f64() * 5.0);
    }
}

#[test]
fn special_matrices_f32() {
    special_matrices::<f32>();
}

#[test]
fn special_matrices_f64() {
    special_matrices::<f64>();
}

/// Entries near underflow and overflow: the scaling by max|a| keeps norms
/// and rotations finite.
fn extreme_scales<T: Scalar>() {
    let base = DMatrix::<f64>::from_fn(5, 4, |i, j| ((i * 4 + j) as f64 * 0.7).sin());
    let s_base: Vec<f64> = singular_values(&base, Backend::Auto).unwrap().into_vec();
    let (tiny, huge) = if T::MANTISSA_DIGITS > 30 {
        (1e-300, 1e300)
    } else {
        (1e-36, 1e36)
    };
    for scale in [tiny, huge] {
        let a = base.map(|x| T::lit(x * scale));
        for &backend in Backend::all() {
            let f = svd(&a, backend).unwrap();
            for (x, y) in f.singular_values().iter().zip(&s_base) {
                let rel = (x.to_f64() / scale - y).abs() / s_base[0];
                assert!(
                    rel <= tol::<T>(5).to_f64(),
                    "{backend:?} scale {scale:e}: {rel:e}"
                );
            }
        }
    }
}

#[test]
fn extreme_scales_f32() {
    extreme_scales::<f32>();
}

#[test]
fn extreme_scales_f64() {
    extreme_scales::<f64>();
}

#[test]
fn sigma_overflow_is_an_error() {
    // Every entry is finite, but σ₁ = 4·1e308 is not representable.
    let a = DMatrix::<f64>::from_element(4, 4, 1e308);
    assert_eq!(
        singular_values(&a, Backend::jacobi()),
        Err(Error::Overflow {
            what: "singular value"
        })
    );
    assert!(singular_values(&a, Backend::Auto).is_err());
    assert!(svd(&a, Backend::Auto).is_err());
}

#[test]
fn jacobi_sweep_cap_reports_no_convergence() {
    let a = DMatrix::<f64>::from_fn(12, 10, |i, j| ((i * 10 + j) as f64 * 1.3).sin());
    let err = svd(&a, Backend::Jacobi(JacobiParams::default().max_sweeps(1))).unwrap_err();
    match err {
        Error::NoConvergence {
            method,
            iterations,
            max_iterations,
            off_diagonal,
        } => {
            assert_eq!(method, Method::Jacobi);
            assert_eq!((iterations, max_iterations), (Some(1), 1));
            let threshold = 12f64.sqrt() * f64::EPSILON;
            assert!(off_diagonal.unwrap() > threshold);
        }
        other => panic!("expected NoConvergence, got {other:?}"),
    }
    // The default cap converges.
    assert!(svd(&a, Backend::jacobi()).is_ok());
    assert_eq!(JacobiParams::default_max_sweeps::<f32>(), 30);
    assert_eq!(JacobiParams::default_max_sweeps::<f64>(), 53);
}

#[test]
fn nalgebra_iteration_cap_reports_no_convergence() {
    let a = DMatrix::<f64>::from_fn(20, 20, |i, j| ((i * 20 + j) as f64 * 0.9).cos());
    let err = singular_values(
        &a,
        Backend::Nalgebra(NalgebraParams::default().max_iterations(1)),
    );
    assert!(matches!(
        err,
        Err(Error::NoConvergence {
            method: Method::Nalgebra,
            max_iterations: 1,
            ..
        })
    ));
    assert_eq!(NalgebraParams::default_max_iterations::<f64>(20), 600);
}

#[test]
fn invalid_input_is_an_error() {
    for &backend in Backend::all() {
        let empty = DMatrix::<f64>::zeros(0, 3);
        assert!(matches!(
            svd(&empty, backend),
            Err(Error::Empty {
                rows: 0,
                cols: 3,
                ..
            })
        ));
        assert!(matches!(
            singular_values(&DMatrix::<f32>::zeros(2, 0), backend),
            Err(Error::Empty { .. })
        ));
        let mut a = DMatrix::<f64>::identity(3, 3);
        a[(1, 2)] = f64::NAN;
        assert_eq!(
            svd(&a, backend).unwrap_err(),
            Error::NonFinite {
                what: "matrix",
                row: 1,
                col: 2
            }
        );
        a[(1, 2)] = f64::NEG_INFINITY;
        assert!(matches!(
            singular_values(&a, backend),
            Err(Error::NonFinite { row: 1, col: 2, .. })
        ));
    }
}

#[test]
fn tall_and_wide_factors_have_thin_shapes() {
    for (n, m) in [(7, 3), (3, 7), (1, 9), (9, 1)] {
        let a = DMatrix::<f64>::from_fn(n, m, |i, j| 1.0 + (i as f64) - 0.5 * j as f64);
        for &backend in Backend::all() {
            let f = svd(&a, backend).unwrap();
            let k = n.min(m);
            assert_eq!(f.shape(), (n, m));
            assert_eq!(f.u().shape(), (n, k));
            assert_eq!(f.v_t().shape(), (k, m));
            let (u, s, v_t) = f.clone().into_parts();
            assert_eq!((u.ncols(), s.len(), v_t.nrows()), (k, k, k));
        }
    }
}

/// Regression: on this 12×10 f32 matrix (a residual A − A₈ of a peaked
/// attention matrix: entries from 6e-8 down to subnormals), nalgebra's SVD
/// with vectors produces NaN, and its own sort then panics. The nalgebra
/// backend must report it as an error and `Auto` must recover.
#[test]
fn nalgebra_nan_on_tiny_graded_entries_is_caught() {
    let data: Vec<f32> = vec![
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        2.7091922e-22,
        -1.4111458e-31,
        2.7091922e-22,
        0.0,
        2.7478196e-22,
        8.2781925e-21,
        -8.9840037e-35,
        -5.244218e-35,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        5.9604645e-8,
        0.0,
        0.0,
        0.0,
        5.9604645e-8,
        0.0,
        5.9604645e-8,
        4.2695333e-29,
        0.0,
        1.4794675e-34,
        0.0,
        0.0,
        0.0,
        0.0,
        5.684347e-14,
        5.684347e-14,
        0.0,
        0.0,
        5.7821527e-29,
        0.0,
        0.0,
        2.34691e-40,
        -5.9604645e-8,
        0.0,
        0.0,
        -1.10645e-14,
        5.9604645e-8,
        5.9604645e-8,
        0.0,
        0.0,
        0.0,
        7.72e-43,
        0.0,
        0.0,
        2.7380221e-28,
        0.0,
        0.0,
        0.0,
        2.7105054e-20,
        2.7105054e-20,
        0.0,
        0.0,
        -1.2621768e-29,
        5.04871e-29,
        0.0,
        3.637979e-12,
        1.4136387e-27,
        3.637979e-12,
        0.0,
        -3.3090621e-32,
        0.0,
        1e-45,
        0.0,
        0.0,
        0.0,
        0.0,
        3.9581786e-26,
        1.0388e-41,
        0.0,
        1e-45,
        0.0,
        0.0,
        0.0,
        3.0961996e-19,
        0.0,
        0.0,
        0.0,
        0.0,
        -1.8274663e-23,
        -1.5399865e-26,
        4.8203003e-36,
        -1.5399865e-26,
        0.0,
        -1.2924697e-26,
        -2.827731e-25,
        0.0,
        5.18817e-40,
        0.0,
        0.0,
        -2.0958895e-33,
        3.637979e-12,
        5.9604645e-8,
        2.646978e-23,
        5.9604645e-8,
        0.0,
        -9.7e-44,
        5.169879e-26,
        0.0,
        0.0,
        0.0,
        0.0,
    ];
    let a = DMatrix::from_column_slice(12, 10, &data);
    assert_eq!(
        svd(&a, Backend::nalgebra()).unwrap_err(),
        Error::Breakdown {
            method: Method::Nalgebra,
            reason: "non-finite output"
        }
    );
    let f = svd(&a, Backend::Auto).unwrap();
    assert_eq!(f.method(), Method::Jacobi);
    let t = tol::<f32>(12).to_f64();
    assert!(fro(&(&a - f.reconstruct())) <= t * fro(&a));
    assert!(orthogonality_error(f.u()) <= t);
    assert!(orthogonality_error(&f.v_t().transpose()) <= t);
}
