//! Rank metrics: known values, conventions, tolerances and error paths.

use attention_svd::Error;
use attention_svd::metrics::SummaryParams;
use attention_svd::metrics::{
    RankTolerance, Summary, condition_number, effective_rank, frobenius_norm, nuclear_norm,
    numerical_rank, spectral_norm, stable_rank, summarize,
};
use attention_svd::svd::Backend;
use nalgebra::DMatrix;

#[test]
fn known_values() {
    let s = [4.0_f64, 2.0, 2.0, 0.0];
    // p = (1/2, 1/4, 1/4): H = (3/2)·ln 2, erank = 2^{3/2}.
    assert!((effective_rank(&s).unwrap() - 2f64.powf(1.5)).abs() < 1e-14);
    assert_eq!(stable_rank(&s).unwrap(), 1.5);
    assert_eq!(spectral_norm(&s).unwrap(), 4.0);
    assert_eq!(nuclear_norm(&s).unwrap(), 8.0);
    assert_eq!(frobenius_norm(&s).unwrap(), 24f64.sqrt());
    assert_eq!(condition_number(&s).unwrap(), f64::INFINITY);
    assert_eq!(condition_number(&s[..3]).unwrap(), 2.0);
    assert_eq!(
        numerical_rank(&s, (4, 4), RankTolerance::default()).unwrap(),
        3
    );
}

#[test]
fn zero_matrix_conventions() {
    let z = [0.0_f32; 2];
    assert_eq!(effective_rank(&z), Ok(0.0));
    assert_eq!(stable_rank(&z), Ok(0.0));
    assert_eq!(numerical_rank(&z, (2, 5), RankTolerance::default()), Ok(0));
    assert_eq!(condition_number(&z), Ok(f32::INFINITY));
    let sum = summarize(
        &DMatrix::<f32>::zeros(2, 5),
        SummaryParams::default().backend(Backend::Auto),
    )
    .unwrap();
    assert_eq!((sum.numerical_rank, sum.energy_rank_99), (0, 0));
}

#[test]
fn rank_tolerances() {
    let s = [1.0_f64, 1e-8, 1e-14, 1e-17];
    let shape = (4, 4);
    // Default: τ = 4·ε·σ₁ ≈ 8.9e-16.
    assert_eq!(
        numerical_rank(&s, shape, RankTolerance::default()).unwrap(),
        3
    );
    assert_eq!(
        numerical_rank(&s, shape, RankTolerance::relative(1e-10)).unwrap(),
        2
    );
    assert_eq!(
        numerical_rank(&s, shape, RankTolerance::absolute(1e-16)).unwrap(),
        3
    );
    // Both: τ = max(atol, rtol·σ₁).
    let both = RankTolerance::absolute(1e-7).with_rtol(1e-15);
    assert_eq!(numerical_rank(&s, shape, both).unwrap(), 1);
    let both = RankTolerance::relative(1e-20).with_atol(1e-15);
    assert_eq!(numerical_rank(&s, shape, both).unwrap(), 3);
    assert_eq!(
        RankTolerance::<f64>::default()
            .threshold(2.0, (3, 7))
            .unwrap(),
        2.0 * 7.0 * f64::EPSILON
    );
    for bad in [0.0, -1e-3, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            numerical_rank(&s, shape, RankTolerance::absolute(bad)),
            Err(Error::InvalidTolerance { name: "atol", .. })
        ));
        assert!(matches!(
            numerical_rank(&s, shape, RankTolerance::relative(bad)),
            Err(Error::InvalidTolerance { name: "rtol", .. })
        ));
    }
    assert!(matches!(
        numerical_rank(&s, (3, 5), RankTolerance::default()),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn invalid_spectra_are_errors() {
    let empty: [f64; 0] = [];
    for result in [
        effective_rank(&empty),
        stable_rank(&empty),
        spectral_norm(&empty),
        nuclear_norm(&empty),
        frobenius_norm(&empty),
        condition_number(&empty),
    ] {
        assert!(matches!(result, Err(Error::Empty { .. })));
    }
    assert!(matches!(
        effective_rank(&[1.0, 2.0]),
        Err(Error::InvalidSpectrum { index: 1, .. })
    ));
    assert!(matches!(
        stable_rank(&[-1.0_f32]),
        Err(Error::InvalidSpectrum { index: 0, .. })
    ));
    assert!(matches!(
        nuclear_norm(&[f64::NAN]),
        Err(Error::NonFinite { .. })
    ));
    assert_eq!(
        nuclear_norm(&[f64::MAX, f64::MAX]),
        Err(Error::Overflow {
            what: "nuclear norm"
        })
    );
}

#[test]
fn summary_agrees_with_the_individual_metrics() {
    let a = DMatrix::<f64>::from_fn(7, 5, |i, j| ((i + 1) as f64).powi(-(j as i32)));
    let s = summarize(&a, SummaryParams::default().backend(Backend::Auto)).unwrap();
    let sigma = &s.singular_values;
    assert_eq!((s.rows, s.cols, sigma.len()), (7, 5, 5));
    assert_eq!(s.effective_rank, effective_rank(sigma).unwrap());
    assert_eq!(s.stable_rank, stable_rank(sigma).unwrap());
    assert_eq!(s.spectral_norm, sigma[0]);
    assert_eq!(s.nuclear_norm, nuclear_norm(sigma).unwrap());
    assert_eq!(s.frobenius_norm, frobenius_norm(sigma).unwrap());
    assert_eq!(s.condition_number, condition_number(sigma).unwrap());
    assert_eq!(s.rank_threshold, 7.0 * f64::EPSILON * sigma[0]);
    assert!(s.energy_rank_90 <= s.energy_rank_99 && s.energy_rank_99 <= s.energy_rank_999);
    assert!((s.frobenius_norm - a.norm()).abs() <= 1e-14 * a.norm());
    let again =
        Summary::from_singular_values(sigma.clone(), (7, 5), RankTolerance::default()).unwrap();
    assert_eq!(again, s);
    assert!(matches!(
        Summary::from_singular_values(vec![1.0_f64], (2, 2), RankTolerance::default()),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        summarize(
            &DMatrix::<f64>::zeros(0, 0),
            SummaryParams::default().backend(Backend::Auto)
        ),
        Err(Error::Empty { .. })
    ));
}
