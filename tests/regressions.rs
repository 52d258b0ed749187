//! Regressions found in review, one test each.

use attention_svd::Error;
use attention_svd::attention::Scale;
use attention_svd::attention::{Mask, softmax_rows};
use attention_svd::logits::LogitParams;
use attention_svd::lowrank::{
    cumulative_energy, energy_captured, frobenius_error, rank_for_energy,
};
use attention_svd::metrics::{RankTolerance, effective_rank, stable_rank};
use attention_svd::randomized::{RandomizedParams, randomized_svd};
use attention_svd::stochastic::StochasticParams;
use attention_svd::stochastic::check_stochastic;
use attention_svd::stochastic::{Violation, default_tolerance, max_row_sum_deviation};
use attention_svd::svd::{Backend, JacobiParams, NalgebraParams, singular_values, svd};
use nalgebra::{DMatrix, dmatrix};

#[test]
fn overflowing_row_sums_are_violations_not_passes() {
    let a = dmatrix![f64::MAX, f64::MAX];
    assert!(matches!(
        check_stochastic(&a, StochasticParams::row()),
        Err(Error::NotStochastic {
            violation: Violation::RowSum { row: 0, .. },
            ..
        })
    ));
    assert_eq!(
        max_row_sum_deviation(&a),
        Err(Error::Overflow { what: "row sum" })
    );
    assert!(check_stochastic(&dmatrix![f32::MAX; f32::MAX], StochasticParams::row()).is_err());
}

#[test]
fn effective_rank_ignores_underflowing_probabilities() {
    let e = effective_rank(&[1.0_f64, 1.0, 1.0, 5e-324]).unwrap();
    assert!((e - 3.0).abs() < 1e-12, "{e}");
    let e = effective_rank(&[1.0_f32, 1.0, 1.0, 1e-45]).unwrap();
    assert!((e - 3.0).abs() < 1e-5, "{e}");
}

#[test]
fn rank_chain_holds_exactly_after_rounding() {
    for n in 1..=64 {
        let s = vec![1.0_f64; n];
        let (er, sr) = (effective_rank(&s).unwrap(), stable_rank(&s).unwrap());
        assert!(
            sr <= er && er <= n as f64,
            "n = {n}: srank {sr}, erank {er}"
        );
        let s32 = vec![1.0_f32; n];
        assert!(stable_rank(&s32).unwrap() <= effective_rank(&s32).unwrap());
    }
    // erank never exceeds the exact rank #{σ > 0}.
    assert!(effective_rank(&[1.0_f64, 1e-17]).unwrap() <= 2.0);
    assert_eq!(effective_rank(&[1.0_f64, 0.0]).unwrap(), 1.0);
}

#[test]
fn no_infinity_or_nan_inside_ok() {
    assert_eq!(
        frobenius_error(&[f64::MAX, f64::MAX], 0),
        Err(Error::Overflow {
            what: "Frobenius error"
        })
    );
    assert!(matches!(
        RankTolerance::<f64>::default().threshold(f64::NAN, (2, 2)),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        RankTolerance::<f64>::default().threshold(-1.0, (2, 2)),
        Err(Error::InvalidSpectrum { .. })
    ));
    assert!(matches!(
        RankTolerance::relative(2.0).threshold(f64::MAX, (2, 2)),
        Err(Error::Overflow { .. })
    ));
}

#[test]
fn huge_arguments_do_not_panic() {
    let t = default_tolerance::<f64>(usize::MAX);
    assert!(t.is_finite() && t > 0.0);
    assert!(matches!(
        Mask::<f64>::none().to_bool(4, usize::MAX / 2),
        Err(Error::InvalidParameter { name: "shape", .. })
    ));
}

#[test]
fn negative_overflow_of_logit_plus_bias_is_reported() {
    let z = dmatrix![-f64::MAX, -f64::MAX];
    let bias = Mask::bias(dmatrix![-f64::MAX, -f64::MAX]);
    assert_eq!(
        softmax_rows(&z, &bias),
        Err(Error::Overflow {
            what: "logit plus bias"
        })
    );
}

#[test]
fn empty_spectra_are_errors_in_lowrank_too() {
    let empty: [f64; 0] = [];
    assert!(matches!(
        energy_captured(&empty, 0),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        rank_for_energy(&empty, 0.5),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        cumulative_energy(&empty),
        Err(Error::Empty { .. })
    ));
}

#[test]
fn zero_iteration_caps_are_errors() {
    let a = DMatrix::<f64>::identity(3, 3);
    assert!(matches!(
        svd(&a, Backend::Jacobi(JacobiParams::default().max_sweeps(0))),
        Err(Error::InvalidParameter {
            name: "max_sweeps",
            ..
        })
    ));
    assert!(matches!(
        singular_values(
            &a,
            Backend::Nalgebra(NalgebraParams::default().max_iterations(0))
        ),
        Err(Error::InvalidParameter {
            name: "max_iterations",
            ..
        })
    ));
}

#[test]
fn jacobi_keeps_small_singular_values_to_relative_accuracy() {
    // Graded diagonal-dominant matrices: σ_min is resolved relatively.
    for (small, tol) in [(1e-12_f64, 1e-14), (1e-140, 1e-14)] {
        let a = dmatrix![1.0, 0.5 * small; 0.25, small];
        let s = singular_values(&a, Backend::jacobi()).unwrap();
        // det = 0.875·small = σ₁σ₂ and σ₁² + σ₂² = 1.0625 + 1.25·small².
        let expected = 0.875 * small / s[0];
        assert!(
            (s[1] - expected).abs() <= tol * expected,
            "{small:e}: {:e}",
            s[1]
        );
    }
    let a = dmatrix![1.0_f32, 0.0; 0.0, 1e-12];
    let s = singular_values(&a, Backend::jacobi()).unwrap();
    assert!((s[1] - 1e-12).abs() <= 1e-6 * 1e-12, "{:e}", s[1]);
}

#[test]
fn rollout_and_head_average_reject_non_finite_stacks() {
    use attention_svd::Stack;
    use attention_svd::collapse::{head_average, rollout};
    let s = Stack::new([1, 1, 2, 2], vec![f64::NAN, 1.0, 0.5, 0.5]).unwrap();
    assert!(matches!(rollout(&s), Err(Error::NonFinite { .. })));
    // Averaging two huge finite heads does not overflow.
    let big = Stack::new([1, 2, 1, 1], vec![1e308_f64, 1e308]).unwrap();
    assert_eq!(head_average(&big, 0).unwrap()[(0, 0)], 1e308);
}

#[test]
fn medians_of_huge_values_stay_finite() {
    use attention_svd::analysis::Stats;
    let s = Stats::of(&[f64::MAX, f64::MAX]).unwrap();
    assert_eq!(s.median, f64::MAX);
    assert_eq!(Stats::of(&[-f64::MAX, f64::MAX]).unwrap().median, 0.0);
}

#[test]
fn huge_oversampling_is_capped() {
    let a = DMatrix::<f64>::from_fn(6, 5, |i, j| 1.0 / (1 + i + j) as f64);
    let p = RandomizedParams::default().oversampling(usize::MAX);
    assert_eq!(randomized_svd(&a, 2, p).unwrap().rank(), 2);
}

#[test]
fn factored_svd_scales_without_spurious_overflow() {
    use attention_svd::logits::factored_svd;
    let q = DMatrix::<f64>::from_fn(4, 2, |i, j| 1.0 + (i * 2 + j) as f64) * 1e200;
    let z = factored_svd(&q, &q, LogitParams::default().scale(Scale::fixed(1e-300))).unwrap();
    let reference = factored_svd(
        &(&q / 1e200),
        &(&q / 1e200),
        LogitParams::default().scale(Scale::fixed(1.0)),
    )
    .unwrap();
    let expected = reference.singular_values()[0] * 1e100;
    assert!((z.singular_values()[0] - expected).abs() <= 1e-14 * expected);
}

#[test]
fn rank_collapse_residual_never_exceeds_one() {
    use attention_svd::collapse::rank_collapse;
    let c = rank_collapse(&DMatrix::<f64>::identity(64, 64), Backend::Auto).unwrap();
    assert!(c.residual_relative <= 1.0, "{}", c.residual_relative);
}
