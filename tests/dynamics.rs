//! Rank collapse, rollout, logit rank and the factored SVD of QKᵀ, each tied
//! to its theorem in `docs/THEORY.md` (T8, T13, T15–T18), for f32 and f64.

use attention_svd::attention::Scale;
use attention_svd::attention::{Mask, softmax_rows};
use attention_svd::collapse::{
    attention_product, collapse_across_layers, composite_norm, rank_collapse, rollout,
};
use attention_svd::logits::LogitParams;
use attention_svd::logits::{factored_svd, logit_and_attention_ranks, temperature_sweep};
use attention_svd::stochastic::StochasticParams;
use attention_svd::stochastic::check_stochastic;
use attention_svd::stochastic::default_tolerance;
use attention_svd::svd::{Backend, singular_values};
use attention_svd::{Error, Scalar, Stack};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::common::{cast, fro, orthogonality_error, tol, values};

type Check = Result<(), TestCaseError>;

/// L square softmax matrices of one size n (half of the lists causal).
fn layers() -> impl Strategy<Value = Vec<DMatrix<f64>>> {
    (1usize..=12, 1usize..=4, prop::bool::ANY)
        .prop_flat_map(|(n, l, causal)| {
            (
                prop::collection::vec(values(n, n, -6.0..6.0), l),
                Just(causal),
            )
        })
        .prop_map(|(zs, causal)| {
            let mask = if causal { Mask::causal() } else { Mask::none() };
            zs.iter().map(|z| softmax_rows(z, &mask).unwrap()).collect()
        })
}

// T15: products of row-stochastic matrices, and rollouts, are row-stochastic.
fn products_stay_stochastic<T: Scalar>(mats: Vec<DMatrix<f64>>) -> Check {
    let mats: Vec<DMatrix<T>> = mats.iter().map(cast::<T>).collect();
    let n = mats[0].nrows();
    let l = mats.len();
    let tol_l = default_tolerance::<T>(n) * T::from_count(l + 1);
    let p = attention_product(&mats).unwrap();
    prop_assert!(check_stochastic(&p, StochasticParams::row().tolerance(tol_l)).is_ok());
    prop_assert!(p.iter().all(|&x| x >= T::zero()));
    let data: Vec<T> = mats
        .iter()
        .flat_map(|m| (0..n).flat_map(move |i| m.row(i).iter().copied().collect::<Vec<_>>()))
        .collect();
    let stack = Stack::new([l, 1, n, n], data).unwrap();
    for r in rollout(&stack).unwrap() {
        prop_assert!(check_stochastic(&r, StochasticParams::row().tolerance(tol_l)).is_ok());
    }
    Ok(())
}

mod t15_products_and_rollouts_are_row_stochastic {
    use super::*;
    proptest! {
        #[test]
        fn f32(m in layers()) { products_stay_stochastic::<f32>(m)?; }
        #[test]
        fn f64(m in layers()) { products_stay_stochastic::<f64>(m)?; }
    }
}

// T16: identical rows have zero residual; the Frobenius residual bounds the
// distance to the best rank-1 approximation from above (T8).
fn identical_rows<T: Scalar>(a: DMatrix<f64>) -> Check {
    let a = cast::<T>(&a);
    let (n, m) = a.shape();
    let t = tol::<T>(n.max(m)).to_f64();
    let same = DMatrix::from_fn(n, m, |_, j| a[(0, j)]);
    let c = rank_collapse(&same, Backend::Auto).unwrap();
    prop_assert!(c.residual_relative <= t, "{}", c.residual_relative);
    prop_assert!(c.residual_frobenius_relative <= t);
    prop_assert!(c.sigma_ratio <= t && c.rank_one_residual <= t);
    let c = rank_collapse(&a, Backend::Auto).unwrap();
    prop_assert!(c.rank_one_residual <= c.residual_frobenius_relative + t);
    prop_assert!(c.residual_relative >= 0.0 && c.sigma_ratio <= 1.0 + t);
    Ok(())
}

mod t16_identical_rows_have_zero_residual {
    use super::*;
    proptest! {
        #[test]
        fn f32(a in crate::common::row_stochastic::<f64>()) { identical_rows::<f32>(a)?; }
        #[test]
        fn f64(a in crate::common::row_stochastic::<f64>()) { identical_rows::<f64>(a)?; }
    }
}

/// Q (n×d), K (m×d) with small d.
fn thin_factors() -> impl Strategy<Value = (DMatrix<f64>, DMatrix<f64>)> {
    (1usize..=16, 1usize..=16, 1usize..=6)
        .prop_flat_map(|(n, m, d)| (values(n, d, -2.0..2.0), values(m, d, -2.0..2.0)))
}

// T17: the factored SVD of s·QKᵀ equals the dense one.
fn factored_equals_dense<T: Scalar>((q, k): (DMatrix<f64>, DMatrix<f64>)) -> Check {
    let (q, k) = (cast::<T>(&q), cast::<T>(&k));
    let (n, m, d) = (q.nrows(), k.nrows(), q.ncols());
    let t = tol::<T>(n.max(m).max(d)).to_f64();
    for s in [0.5, -2.0] {
        let z = &q * k.transpose() * T::lit(s);
        let f = factored_svd(
            &q,
            &k,
            LogitParams::default().scale(Scale::fixed(T::lit(s))),
        )
        .unwrap();
        prop_assert_eq!(f.rank(), n.min(m).min(d));
        let dense: Vec<T> = singular_values(&z, Backend::Auto).unwrap().into_vec();
        let s1 = dense[0].to_f64().max(f64::MIN_POSITIVE);
        for (i, x) in dense.iter().enumerate() {
            let y = f.singular_values().get(i).map_or(0.0, |v| v.to_f64());
            prop_assert!((x.to_f64() - y).abs() <= t * s1, "σ{i}: {:?} vs {y}", x);
        }
        prop_assert!(fro(&(&z - f.reconstruct())) <= t * fro(&z).max(f64::MIN_POSITIVE));
        prop_assert!(orthogonality_error(f.u()) <= t);
        prop_assert!(orthogonality_error(&f.v_t().transpose()) <= t);
    }
    Ok(())
}

mod t17_factored_svd_equals_dense {
    use super::*;
    proptest! {
        #[test]
        fn f32(qk in thin_factors()) { factored_equals_dense::<f32>(qk)?; }
        #[test]
        fn f64(qk in thin_factors()) { factored_equals_dense::<f64>(qk)?; }
    }
}

// T18: rank(QKᵀ/√d) ≤ d, and the attention's rank is what softmax makes it.
fn logit_rank_bound<T: Scalar>((q, k): (DMatrix<f64>, DMatrix<f64>)) -> Check {
    let (q, k) = (cast::<T>(&q), cast::<T>(&k));
    let r = logit_and_attention_ranks(
        &q,
        &k,
        &Mask::none(),
        LogitParams::default().backend(Backend::Auto),
    )
    .unwrap();
    prop_assert!(r.logit_numerical_rank <= r.head_dim);
    prop_assert!(r.logit_effective_rank <= r.head_dim as f64 + 1e-9);
    prop_assert!(r.attention_numerical_rank <= q.nrows().min(k.nrows()));
    Ok(())
}

mod t18_logit_rank_at_most_head_dim {
    use super::*;
    proptest! {
        #[test]
        fn f32(qk in thin_factors()) { logit_rank_bound::<f32>(qk)?; }
        #[test]
        fn f64(qk in thin_factors()) { logit_rank_bound::<f64>(qk)?; }
    }
}

// T13: the sweep's s = 0 end is uniform attention, rank one.
fn sweep_limits<T: Scalar>((q, k): (DMatrix<f64>, DMatrix<f64>)) -> Check {
    let (q, k) = (cast::<T>(&q), cast::<T>(&k));
    let sweep = temperature_sweep(
        &q,
        &k,
        &Mask::none(),
        &[T::zero(), T::one()],
        LogitParams::default().backend(Backend::Auto),
    )
    .unwrap();
    prop_assert_eq!(sweep[0].numerical_rank, 1);
    prop_assert!((sweep[0].effective_rank - 1.0).abs() <= 1e-3);
    prop_assert_eq!(sweep[0].energy_rank_99, 1);
    Ok(())
}

mod t13_sweep_starts_at_rank_one {
    use super::*;
    proptest! {
        #[test]
        fn f32(qk in thin_factors()) { sweep_limits::<f32>(qk)?; }
        #[test]
        fn f64(qk in thin_factors()) { sweep_limits::<f64>(qk)?; }
    }
}

#[test]
fn uniform_layers_collapse_immediately_and_identity_layers_never() {
    let n = 5;
    let uniform = Stack::new([3, 2, n, n], vec![1.0_f64 / n as f64; 3 * 2 * n * n]).unwrap();
    for d in collapse_across_layers(&uniform, Backend::Auto).unwrap() {
        assert!(d.per_head.iter().all(|c| c.residual_relative < 1e-14));
        assert!(d.head_average.sigma_ratio < 1e-14);
    }
    let eye = DMatrix::<f64>::identity(n, n);
    let id = Stack::from_matrices(3, 2, &vec![eye; 6]).unwrap();
    let c = collapse_across_layers(&id, Backend::Auto).unwrap();
    assert_eq!(c.len(), 3);
    for d in &c {
        assert!((d.per_head[1].sigma_ratio - 1.0).abs() < 1e-14);
        assert!((d.rollout.effective_rank - n as f64).abs() < 1e-12);
    }
}

#[test]
fn error_paths() {
    let wide = Stack::new([1, 1, 2, 3], vec![1.0_f64 / 3.0; 6]).unwrap();
    assert_eq!(rollout(&wide), Err(Error::NotSquare { rows: 2, cols: 3 }));
    assert!(matches!(
        collapse_across_layers(&wide, Backend::Auto),
        Err(Error::NotSquare { .. })
    ));
    let a = DMatrix::<f64>::identity(2, 2);
    let b = DMatrix::<f64>::identity(3, 3);
    assert!(matches!(
        attention_product(&[a.clone(), b]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        attention_product::<f64, DMatrix<f64>>(&[]),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        composite_norm(&DMatrix::from_element(1, 2, f64::MAX)),
        Err(Error::Overflow { .. })
    ));
    let q = DMatrix::<f64>::zeros(3, 2);
    assert!(matches!(
        factored_svd(
            &q,
            &DMatrix::zeros(3, 4),
            LogitParams::default().scale(Scale::fixed(1.0))
        ),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        factored_svd(
            &q,
            &q,
            LogitParams::default().scale(Scale::fixed(f64::INFINITY))
        ),
        Err(Error::InvalidParameter { .. })
    ));
    // The zero product: rank-r factors with zero singular values.
    let z = factored_svd(&q, &q, LogitParams::default().scale(Scale::fixed(1.0))).unwrap();
    assert!(z.singular_values().iter().all(|&s| s == 0.0));
    assert!(matches!(
        temperature_sweep(
            &a,
            &a,
            &Mask::none(),
            &[f64::NAN],
            LogitParams::default().backend(Backend::Auto)
        ),
        Err(Error::InvalidParameter { .. })
    ));
}
