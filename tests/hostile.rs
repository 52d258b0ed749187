//! Hostile input for every public call, in CI: matrices and spectra whose
//! entries are drawn from NaN, ±∞, ±0, subnormals, ±1e±300 (f64) or
//! ±1e±30 (f32) and ordinary numbers. Every call must return `Ok` with
//! finite, valid results or a typed `Err`; a panic fails the test.

use attention_svd::Precision;
use attention_svd::analysis::{AnalysisParams, analyze};
use attention_svd::attention::Scale;
use attention_svd::attention::scaled_dot_product;
use attention_svd::attention::{Mask, multi_head, softmax_rows};
use attention_svd::collapse::rank_collapse;
use attention_svd::logits::LogitParams;
use attention_svd::logits::factored_svd;
use attention_svd::lowrank::{
    cumulative_energy, energy_captured, frobenius_error, normalized_cumulative_singular_values,
    rank_for_energy, spectral_error,
};
use attention_svd::metrics::{
    RankTolerance, Summary, condition_number, effective_rank, numerical_rank, stable_rank,
};
use attention_svd::randomized::{RandomizedParams, randomized_svd};
use attention_svd::stochastic::StochasticParams;
use attention_svd::stochastic::check_stochastic;
use attention_svd::stochastic::{Stochasticity, max_row_sum_deviation, violations};
use attention_svd::svd::{Backend, singular_values, svd};
use attention_svd::{Scalar, Stack};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

type Check = Result<(), TestCaseError>;

/// One hostile or ordinary number.
fn hostile() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -3.0..3.0f64,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(0.0),
        1 => Just(-0.0),
        1 => Just(f64::MIN_POSITIVE / 4.0),
        1 => Just(1e-300),
        1 => Just(1e300),
        1 => Just(-1e300),
        1 => Just(1e30),
        1 => Just(-1e30),
        1 => Just(1e-30),
    ]
}

/// Finite but extreme numbers for a type whose largest finite magnitude is
/// about `big`, smallest normal about `tiny` and subnormals about `sub`.
fn extreme(big: f64, tiny: f64, sub: f64) -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => -3.0..3.0f64,
        1 => Just(0.0),
        1 => Just(-0.0),
        1 => Just(big),
        1 => Just(-big),
        1 => Just(tiny),
        1 => Just(sub),
        1 => Just(-sub),
    ]
}

fn extreme_matrix(big: f64, tiny: f64, sub: f64) -> impl Strategy<Value = DMatrix<f64>> {
    (1usize..=8, 1usize..=8).prop_flat_map(move |(n, m)| {
        prop::collection::vec(extreme(big, tiny, sub), n * m)
            .prop_map(move |v| DMatrix::from_vec(n, m, v))
    })
}

/// A 0..=8 × 0..=8 matrix of hostile numbers (as f64; cast per test).
fn hostile_matrix() -> impl Strategy<Value = DMatrix<f64>> {
    (0usize..=8, 0usize..=8).prop_flat_map(|(n, m)| {
        prop::collection::vec(hostile(), n * m).prop_map(move |v| DMatrix::from_vec(n, m, v))
    })
}

fn finite<T: Scalar>(x: T) -> bool {
    x.finite()
}

#[track_caller]
fn check_spectrum<T: Scalar>(s: &[T], k: usize) -> Check {
    prop_assert_eq!(s.len(), k);
    prop_assert!(s.iter().all(|&x| finite(x) && x >= T::zero()));
    prop_assert!(s.windows(2).all(|w| w[0] >= w[1]));
    Ok(())
}

fn svd_calls<T: Scalar>(a: DMatrix<f64>) -> Check {
    let a = a.map(T::lit);
    let k = a.nrows().min(a.ncols());
    for &backend in Backend::all() {
        if let Ok(s) = singular_values(&a, backend) {
            check_spectrum(&s, k)?;
        }
        if let Ok(f) = svd(&a, backend) {
            check_spectrum(f.singular_values(), k)?;
            prop_assert!(f.u().iter().chain(f.v_t().iter()).all(|&x| finite(x)));
        }
    }
    if k > 0
        && let Ok(r) = randomized_svd(&a, 1, RandomizedParams::default())
    {
        check_spectrum(r.singular_values(), 1)?;
    }
    if let Ok(c) = rank_collapse(&a, Backend::Auto) {
        prop_assert!(c.residual_relative.is_finite() && c.sigma_ratio.is_finite());
    }
    if let Ok(z) = factored_svd(&a, &a, LogitParams::default().scale(Scale::fixed(T::one()))) {
        prop_assert!(z.singular_values().iter().all(|&x| finite(x)));
    }
    Ok(())
}

fn attention_calls<T: Scalar>(z: DMatrix<f64>) -> Check {
    let z = z.map(T::lit);
    let (n, m) = z.shape();
    let masks = [
        Mask::none(),
        Mask::causal(),
        Mask::sliding_window(2),
        Mask::bias(z.clone()),
    ];
    for mask in &masks {
        if let Ok(a) = softmax_rows(&z, mask) {
            prop_assert_eq!(a.shape(), (n, m));
            prop_assert!(check_stochastic(&a, StochasticParams::row()).is_ok());
            let allowed = mask.to_bool(n, m).unwrap();
            for (x, ok) in a.iter().zip(allowed.iter()) {
                prop_assert!(*ok || *x == T::zero());
            }
        }
        if let Ok(a) = scaled_dot_product(&z, &z, mask, Scale::fixed(T::lit(0.5))) {
            prop_assert!(check_stochastic(&a, StochasticParams::row()).is_ok());
        }
    }
    if let Ok(heads) = multi_head(&z, &z, 2, &Mask::none(), Scale::default()) {
        for a in heads {
            prop_assert!(check_stochastic(&a, StochasticParams::row()).is_ok());
        }
    }
    let _ = violations(&z, StochasticParams::default().kind(Stochasticity::Doubly));
    if let Ok(d) = max_row_sum_deviation(&z) {
        prop_assert!(finite(d));
    }
    Ok(())
}

fn spectrum_calls<T: Scalar>(v: Vec<f64>) -> Check {
    let s: Vec<T> = v.iter().map(|&x| T::lit(x)).collect();
    let k = s.len();
    let finite_ok = |r: attention_svd::Result<T>| r.map_or(true, |x| finite(x));
    prop_assert!(finite_ok(effective_rank(&s)));
    prop_assert!(finite_ok(stable_rank(&s)));
    prop_assert!(finite_ok(frobenius_error(&s, k / 2)));
    prop_assert!(finite_ok(spectral_error(&s, k / 2)));
    prop_assert!(finite_ok(energy_captured(&s, k / 2)));
    if let Ok(c) = condition_number(&s) {
        prop_assert!(!c.is_nan_value());
    }
    for curve in [
        cumulative_energy(&s),
        normalized_cumulative_singular_values(&s),
    ]
    .into_iter()
    .flatten()
    {
        prop_assert!(curve.iter().all(|&x| x >= T::zero() && x <= T::one()));
    }
    if let Ok(r) = rank_for_energy(&s, T::lit(0.99)) {
        prop_assert!(r <= k);
    }
    for tol in [
        RankTolerance::default(),
        RankTolerance::absolute(T::lit(1e-3)),
        RankTolerance::relative(T::lit(0.5)),
    ] {
        if let Ok(r) = numerical_rank(&s, (k, k + 1), tol) {
            prop_assert!(r <= k);
        }
    }
    if let Ok(sum) = Summary::from_singular_values(s.clone(), (k, k), RankTolerance::default()) {
        prop_assert!(finite(sum.effective_rank) && finite(sum.nuclear_norm));
    }
    Ok(())
}

fn analysis_calls<T: Scalar>(a: DMatrix<f64>) -> Check {
    let a = a.map(T::lit);
    if let Ok(stack) = Stack::from_matrices(1, 1, &[a]) {
        for precision in [Precision::F32, Precision::F64] {
            if let Ok(r) = analyze(&stack, AnalysisParams::default().precision(precision)) {
                for h in &r.heads {
                    prop_assert!(h.effective_rank.is_finite() && h.noise_floor.is_finite());
                    prop_assert!(h.singular_values.iter().all(|x| x.is_finite()));
                    prop_assert!(h.max_row_sum_deviation.is_finite());
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn svd_f32(a in hostile_matrix()) { svd_calls::<f32>(a)?; }
    #[test]
    fn svd_f64(a in hostile_matrix()) { svd_calls::<f64>(a)?; }
    #[test]
    fn attention_f32(z in hostile_matrix()) { attention_calls::<f32>(z)?; }
    #[test]
    fn attention_f64(z in hostile_matrix()) { attention_calls::<f64>(z)?; }
    #[test]
    fn spectra_f32(v in prop::collection::vec(hostile(), 0..8)) { spectrum_calls::<f32>(v)?; }
    #[test]
    fn spectra_f64(v in prop::collection::vec(hostile(), 0..8)) { spectrum_calls::<f64>(v)?; }
    #[test]
    fn analysis_f32(a in hostile_matrix()) { analysis_calls::<f32>(a)?; }
    #[test]
    fn analysis_f64(a in hostile_matrix()) { analysis_calls::<f64>(a)?; }

    // Finite extremes: no NaN/∞ to bail out on, so the calls run to the end.
    #[test]
    fn extreme_svd_f32(a in extreme_matrix(1e37, 1e-37, 1e-42)) { svd_calls::<f32>(a)?; }
    #[test]
    fn extreme_svd_f64(a in extreme_matrix(1e300, 1e-300, 1e-315)) { svd_calls::<f64>(a)?; }
    #[test]
    fn extreme_attention_f32(z in extreme_matrix(1e37, 1e-37, 1e-42)) { attention_calls::<f32>(z)?; }
    #[test]
    fn extreme_attention_f64(z in extreme_matrix(1e300, 1e-300, 1e-315)) { attention_calls::<f64>(z)?; }
    #[test]
    fn extreme_analysis_f64(a in extreme_matrix(1e300, 1e-300, 1e-315)) { analysis_calls::<f64>(a)?; }
}
