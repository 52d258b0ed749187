//! Low-rank truncation and energy functions: conventions and error paths.

use attention_svd::Error;
use attention_svd::lowrank::{
    cumulative_energy, energy_captured, frobenius_error, normalized_cumulative_singular_values,
    rank_for_energy, spectral_error, truncate,
};
use attention_svd::svd::{Backend, svd};
use nalgebra::DMatrix;

#[test]
fn truncation_shapes_and_values() {
    let a = DMatrix::<f64>::from_fn(6, 4, |i, j| 1.0 / (1.0 + i as f64 + 2.0 * j as f64));
    let f = svd(&a, Backend::Auto).unwrap();
    for r in 0..=4 {
        let lr = f.truncate(r).unwrap();
        assert_eq!(lr.rank(), r);
        assert_eq!(lr.shape(), (6, 4));
        assert_eq!(lr.u().shape(), (6, r));
        assert_eq!(lr.v_t().shape(), (r, 4));
        assert_eq!(lr.singular_values(), &f.singular_values()[..r]);
        let err = (&a - lr.reconstruct()).norm();
        let pred = frobenius_error(f.singular_values(), r).unwrap();
        assert!((err - pred).abs() <= 1e-14);
    }
    assert!((f.truncate(4).unwrap().reconstruct() - &a).norm() < 1e-14);
    assert_eq!(f.truncate(0).unwrap().reconstruct(), DMatrix::zeros(6, 4));
    let direct = truncate(&a, 2, Backend::jacobi()).unwrap();
    assert!((direct.reconstruct() - f.truncate(2).unwrap().reconstruct()).norm() < 1e-13);
}

#[test]
fn rank_out_of_range_is_an_error() {
    let a = DMatrix::<f32>::identity(3, 5);
    let f = svd(&a, Backend::Auto).unwrap();
    assert_eq!(
        f.truncate(4),
        Err(Error::InvalidRank {
            rank: 4,
            min: 0,
            max: 3
        })
    );
    assert_eq!(
        truncate(&a, 9, Backend::Auto).map(|_| ()),
        Err(Error::InvalidRank {
            rank: 9,
            min: 0,
            max: 3
        })
    );
    let s = [2.0_f64, 1.0];
    assert_eq!(
        energy_captured(&s, 3),
        Err(Error::InvalidRank {
            rank: 3,
            min: 0,
            max: 2
        })
    );
    assert_eq!(
        frobenius_error(&s, 3),
        Err(Error::InvalidRank {
            rank: 3,
            min: 0,
            max: 2
        })
    );
    assert_eq!(
        spectral_error(&s, 3),
        Err(Error::InvalidRank {
            rank: 3,
            min: 0,
            max: 2
        })
    );
}

#[test]
fn energy_targets_outside_the_unit_interval_are_errors() {
    let s = [2.0_f64, 1.0];
    for bad in [0.0, -0.5, 1.0 + 1e-12, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            rank_for_energy(&s, bad),
            Err(Error::InvalidEnergy { .. })
        ));
    }
    assert_eq!(rank_for_energy(&s, 1.0), Ok(2));
    assert_eq!(rank_for_energy(&s, 0.8), Ok(1));
    assert_eq!(rank_for_energy(&s, 0.81), Ok(2));
}

#[test]
fn spectra_must_be_sorted_non_negative_and_finite() {
    assert_eq!(
        energy_captured(&[1.0_f64, 2.0], 1),
        Err(Error::InvalidSpectrum {
            index: 1,
            value: 2.0
        })
    );
    assert_eq!(
        cumulative_energy(&[1.0_f64, -1.0]),
        Err(Error::InvalidSpectrum {
            index: 1,
            value: -1.0
        })
    );
    assert!(matches!(
        normalized_cumulative_singular_values(&[f32::NAN]),
        Err(Error::NonFinite { row: 0, .. })
    ));
    assert!(matches!(
        rank_for_energy(&[f64::INFINITY, 1.0], 0.5),
        Err(Error::NonFinite { .. })
    ));
}

#[test]
fn zero_matrix_conventions() {
    let z = [0.0_f64; 3];
    assert_eq!(energy_captured(&z, 0), Ok(1.0));
    assert_eq!(cumulative_energy(&z), Ok(vec![1.0; 3]));
    assert_eq!(rank_for_energy(&z, 0.99), Ok(0));
    assert_eq!(frobenius_error(&z, 0), Ok(0.0));
    assert_eq!(normalized_cumulative_singular_values(&z), Ok(vec![1.0; 3]));
    // A nonzero spectrum keeps nothing at r = 0.
    assert_eq!(energy_captured(&[1.0_f64], 0), Ok(0.0));
}

#[test]
fn no_overflow_for_huge_singular_values() {
    let s = [1e300_f64, 1e300, 1e299];
    assert!((frobenius_error(&s, 0).unwrap() / 1e300 - 201f64.sqrt() / 10.0).abs() < 1e-14);
    assert!((energy_captured(&s, 2).unwrap() - 200.0 / 201.0).abs() < 1e-15);
}
