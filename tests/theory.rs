//! One test per theorem of `docs/THEORY.md`; each runs for f32 and f64.

use attention_svd::Scalar;
use attention_svd::attention::Scale;
use attention_svd::attention::scaled_dot_product;
use attention_svd::attention::{Mask, softmax_rows};
use attention_svd::lowrank::{
    cumulative_energy, energy_captured, frobenius_error, normalized_cumulative_singular_values,
    rank_for_energy, spectral_error,
};
use attention_svd::metrics::{RankTolerance, effective_rank, numerical_rank, stable_rank};
use attention_svd::stochastic::StochasticParams;
use attention_svd::stochastic::check_stochastic;
use attention_svd::svd::{Backend, singular_values, svd};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::common::{cast, tol, values};
use crate::prop_f32_f64;

type Check = Result<(), TestCaseError>;

fn sv<T: Scalar>(a: &DMatrix<T>) -> Vec<f64> {
    singular_values(a, Backend::Auto)
        .expect("valid input")
        .iter()
        .map(|s| s.to_f64())
        .collect()
}

/// Logits with a random key-padding and boolean mask that leaves every row
/// at least one key.
fn masked_logits() -> impl Strategy<Value = (DMatrix<f64>, DMatrix<bool>)> {
    crate::common::dims()
        .prop_flat_map(|(n, m)| {
            (
                values(n, m, -30.0..30.0),
                prop::collection::vec(prop::bool::ANY, n * m),
                prop::collection::vec(0..m, n),
            )
        })
        .prop_map(|(z, allowed, keep)| {
            let (n, m) = z.shape();
            let mut mask = DMatrix::from_vec(n, m, allowed);
            for (i, &j) in keep.iter().enumerate() {
                mask[(i, j)] = true;
            }
            (z, mask)
        })
}

// T1: softmax output is row-stochastic, within 4·m·ε.
fn softmax_row_stochastic<T: Scalar>((z, allowed): (DMatrix<f64>, DMatrix<bool>)) -> Check {
    let a = softmax_rows(&cast::<T>(&z), &Mask::from_bool(allowed)).unwrap();
    prop_assert!(a.iter().all(|&x| x >= T::zero() && x <= T::one()));
    prop_assert!(check_stochastic(&a, StochasticParams::row()).is_ok());
    Ok(())
}

mod t1_softmax_is_row_stochastic {
    use super::*;
    proptest! {
        #[test]
        fn f32(input in masked_logits()) { softmax_row_stochastic::<f32>(input)?; }
        #[test]
        fn f64(input in masked_logits()) { softmax_row_stochastic::<f64>(input)?; }
    }
}

// T2: masked entries are exactly zero, causal or pointwise.
fn masked_zero<T: Scalar>((z, allowed): (DMatrix<f64>, DMatrix<bool>)) -> Check {
    let (n, m) = z.shape();
    // Pointwise mask.
    let a = softmax_rows(&cast::<T>(&z), &Mask::from_bool(allowed.clone())).unwrap();
    for i in 0..n {
        for j in 0..m {
            if !allowed[(i, j)] {
                prop_assert!(a[(i, j)] == T::zero(), "entry ({i}, {j}) = {:?}", a[(i, j)]);
            }
        }
    }
    // Causal (square part of the logits), exactly lower-triangular.
    let s = n.min(m);
    let zs = cast::<T>(&z.view((0, 0), (s, s)).into_owned());
    let c = softmax_rows(&zs, &Mask::causal()).unwrap();
    for i in 0..s {
        for j in i + 1..s {
            prop_assert!(c[(i, j)] == T::zero());
        }
        prop_assert!(c[(i, i)] > T::zero());
    }
    Ok(())
}

mod t2_masked_entries_are_exact_zeros {
    use super::*;
    proptest! {
        #[test]
        fn f32(input in masked_logits()) { masked_zero::<f32>(input)?; }
        #[test]
        fn f64(input in masked_logits()) { masked_zero::<f64>(input)?; }
    }
}

fn huge_logits<T: Scalar>() {
    let big = T::MAX;
    let z = DMatrix::from_row_slice(
        3,
        3,
        &[
            T::lit(1e30),
            T::zero(),
            T::NEG_INFINITY,
            -big,
            big,
            big,
            T::lit(-1e30),
            T::lit(-1e30),
            T::NEG_INFINITY,
        ],
    );
    let a = softmax_rows(&z, &Mask::none()).unwrap();
    let half = T::lit(0.5);
    let expected = DMatrix::from_row_slice(
        3,
        3,
        &[
            T::one(),
            T::zero(),
            T::zero(),
            T::zero(),
            half,
            half,
            half,
            half,
            T::zero(),
        ],
    );
    assert_eq!(a, expected);
}

mod t2_huge_logits_do_not_overflow {
    #[test]
    fn f32() {
        super::huge_logits::<f32>();
    }
    #[test]
    fn f64() {
        super::huge_logits::<f64>();
    }
}

// T3: causal attention is lower-triangular with positive diagonal, hence
// nonsingular, and σ_min ≤ min aᵢᵢ.
fn causal_nonsingular<T: Scalar>(a: DMatrix<T>) -> Check {
    let n = a.nrows();
    for i in 0..n {
        prop_assert!(a[(i, i)] > T::zero());
        for j in i + 1..n {
            prop_assert!(a[(i, j)] == T::zero());
        }
    }
    let s = sv(&a);
    let min_diag = (0..n)
        .map(|i| a[(i, i)].to_f64())
        .fold(f64::INFINITY, f64::min);
    let t: f64 = tol::<T>(n).to_f64();
    prop_assert!(s[n - 1] <= min_diag * (1.0 + t) + t * s[0]);
    Ok(())
}
prop_f32_f64!(
    256,
    t3_causal_attention_is_nonsingular,
    causal_family,
    causal_nonsingular
);

// T4: max(√(n/m), max row norm) ≤ σ₁ ≤ √(max column sum) ≤ √n.
fn sigma1_bounds<T: Scalar>(a: DMatrix<T>) -> Check {
    let (n, m) = a.shape();
    let a64 = a.map(|x| x.to_f64());
    let s1 = sv(&a)[0];
    let t = tol::<T>(n.max(m)).to_f64();
    let max_row = a64.row_iter().map(|r| r.norm()).fold(0.0, f64::max);
    let max_col_sum = a64.column_iter().map(|c| c.sum()).fold(0.0, f64::max);
    let lower = (n as f64 / m as f64).sqrt().max(max_row);
    prop_assert!(s1 >= lower * (1.0 - t), "σ₁ = {s1} < {lower}");
    prop_assert!(
        s1 <= max_col_sum.sqrt() * (1.0 + t),
        "σ₁ = {s1} > √{max_col_sum}"
    );
    prop_assert!(max_col_sum <= n as f64 * (1.0 + t));
    if n >= m {
        prop_assert!(s1 >= 1.0 - t);
    }
    Ok(())
}
prop_f32_f64!(
    256,
    t4_sigma1_bounds_for_row_stochastic,
    row_stochastic,
    sigma1_bounds
);

// T5: Σσᵢ² = ‖A‖²_F, for both backends.
fn energy_identity<T: Scalar>(a: DMatrix<T>) -> Check {
    let (n, m) = a.shape();
    let fro2: f64 = a.iter().map(|x| x.to_f64().powi(2)).sum();
    let t = tol::<T>(n.max(m)).to_f64();
    for backend in [Backend::Auto, Backend::jacobi()] {
        let s: f64 = singular_values(&a, backend)
            .unwrap()
            .iter()
            .map(|x| x.to_f64().powi(2))
            .sum();
        prop_assert!((s - fro2).abs() <= t * fro2, "{s} vs {fro2}");
    }
    Ok(())
}
prop_f32_f64!(256, t5_energy_identity, row_stochastic, energy_identity);

/// Doubly stochastic matrices as convex combinations of permutations
/// (Birkhoff–von Neumann).
fn doubly_stochastic<T: Scalar>() -> impl Strategy<Value = DMatrix<T>> {
    (1..=crate::common::MAX_DIM)
        .prop_flat_map(|n| {
            (
                Just(n),
                prop::collection::vec(
                    (
                        Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
                        0.05..1.0,
                    ),
                    1..5,
                ),
            )
        })
        .prop_map(|(n, terms)| {
            let total: f64 = terms.iter().map(|t| t.1).sum();
            let mut a = DMatrix::<f64>::zeros(n, n);
            for (perm, w) in &terms {
                for (i, &j) in perm.iter().enumerate() {
                    a[(i, j)] += w / total;
                }
            }
            cast::<T>(&a)
        })
}

// T6: doubly stochastic ⇒ σ₁ = 1.
fn doubly_unit_norm<T: Scalar>(a: DMatrix<T>) -> Check {
    let s1 = sv(&a)[0];
    prop_assert!(
        (s1 - 1.0).abs() <= tol::<T>(a.nrows()).to_f64(),
        "σ₁ = {s1}"
    );
    Ok(())
}

mod t6_doubly_stochastic_has_unit_norm {
    use super::*;
    proptest! {
        #[test]
        fn f32(a in doubly_stochastic::<f32>()) { doubly_unit_norm::<f32>(a)?; }
        #[test]
        fn f64(a in doubly_stochastic::<f64>()) { doubly_unit_norm::<f64>(a)?; }
    }
}

// T7a: uniform attention is rank one with σ₁ = √(n/m), with vectors too.
fn uniform_rank_one<T: Scalar>(a: DMatrix<T>) -> Check {
    let (n, m) = a.shape();
    let t = tol::<T>(n.max(m)).to_f64();
    let exact = (n as f64 / m as f64).sqrt();
    for backend in [Backend::Auto, Backend::jacobi()] {
        let f = svd(&a, backend).unwrap();
        let s: Vec<f64> = f.singular_values().iter().map(|x| x.to_f64()).collect();
        prop_assert!(
            (s[0] - exact).abs() <= t * exact,
            "{backend:?}: σ₁ = {}",
            s[0]
        );
        prop_assert!(s[1..].iter().all(|&x| x <= t * exact));
        let r = numerical_rank(f.singular_values(), (n, m), RankTolerance::default()).unwrap();
        prop_assert_eq!(r, 1);
    }
    Ok(())
}
prop_f32_f64!(
    128,
    t7_uniform_attention_is_rank_one,
    uniform_family,
    uniform_rank_one
);

// T7b: one-hot rows have σ = √(column counts); permutations have all σ = 1.
fn one_hot_sigma<T: Scalar>(a: DMatrix<T>) -> Check {
    let (n, m) = a.shape();
    let k = n.min(m);
    let mut expected: Vec<f64> = a.column_iter().map(|c| c.sum().to_f64().sqrt()).collect();
    expected.sort_by(|x, y| y.partial_cmp(x).unwrap());
    expected.resize(k, 0.0);
    let s = sv(&a);
    let t = tol::<T>(n.max(m)).to_f64();
    let ts = crate::common::sigma_tol::<T>(n, m) * crate::common::fro(&a);
    for (x, y) in s.iter().zip(&expected) {
        prop_assert!((x - y).abs() <= ts, "{s:?} vs {expected:?}");
    }
    // Permutations: every σ = 1, effective rank = stable rank = n.
    if n == m && expected.iter().all(|&e| e == 1.0) {
        let sigma: Vec<T> = singular_values(&a, Backend::Auto).unwrap().into_vec();
        prop_assert!((effective_rank(&sigma).unwrap().to_f64() - n as f64).abs() <= t * n as f64);
        prop_assert!((stable_rank(&sigma).unwrap().to_f64() - n as f64).abs() <= t * n as f64);
    }
    Ok(())
}
prop_f32_f64!(256, t7_one_hot_rows, one_hot_family, one_hot_sigma);

/// Permutation matrices of size 1..=16.
fn permutations<T: Scalar>() -> impl Strategy<Value = DMatrix<T>> {
    (1..=crate::common::MAX_DIM)
        .prop_flat_map(|n| Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
        .prop_map(|pi| crate::common::one_hot::<T>(&pi, pi.len()))
}

// T7b for permutations: every σ = 1, effective rank = stable rank = n.
fn permutation_sigma<T: Scalar>(a: DMatrix<T>) -> Check {
    let n = a.nrows();
    let t = tol::<T>(n).to_f64();
    let sigma: Vec<T> = singular_values(&a, Backend::Auto).unwrap().into_vec();
    prop_assert!(sigma.iter().all(|s| (s.to_f64() - 1.0).abs() <= t));
    prop_assert!((effective_rank(&sigma).unwrap().to_f64() - n as f64).abs() <= t * n as f64);
    prop_assert!((stable_rank(&sigma).unwrap().to_f64() - n as f64).abs() <= t * n as f64);
    Ok(())
}

mod t7_permutations {
    use super::*;
    proptest! {
        #[test]
        fn f32(a in permutations::<f32>()) { permutation_sigma::<f32>(a)?; }
        #[test]
        fn f64(a in permutations::<f64>()) { permutation_sigma::<f64>(a)?; }
    }
}

// T8: Eckart–Young–Mirsky errors for every r.
fn eckart_young<T: Scalar>(a: DMatrix<T>) -> Check {
    let (n, m) = a.shape();
    let f = svd(&a, Backend::Auto).unwrap();
    let sigma = f.singular_values();
    let fa = crate::common::fro(&a);
    let t = tol::<T>(n.max(m)).to_f64();
    for r in 0..=sigma.len() {
        let ar = f.truncate(r).unwrap().reconstruct();
        let diff = &a - ar;
        let fro = crate::common::fro(&diff);
        let fro_pred = frobenius_error(sigma, r).unwrap().to_f64();
        // T12: the backward error is bounded in ‖A‖_F.
        prop_assert!((fro - fro_pred).abs() <= t * fa);
        let spec = sv(&diff)[0];
        let spec_pred = spectral_error(sigma, r).unwrap().to_f64();
        prop_assert!(
            (spec - spec_pred).abs() <= t * fa,
            "r={r}: {spec} vs {spec_pred}"
        );
    }
    Ok(())
}
prop_f32_f64!(128, t8_eckart_young, row_stochastic, eckart_young);

// T9: the energy profile is non-decreasing and ends at exactly 1;
// rank_for_energy(τ) never exceeds the rank.
fn energy_profile<T: Scalar>(a: DMatrix<T>) -> Check {
    let (n, m) = a.shape();
    let sigma: Vec<T> = singular_values(&a, Backend::Auto).unwrap().into_vec();
    let e = cumulative_energy(&sigma).unwrap();
    let c = normalized_cumulative_singular_values(&sigma).unwrap();
    for curve in [&e, &c] {
        prop_assert!(curve.windows(2).all(|w| w[0] <= w[1]));
        prop_assert!(*curve.last().unwrap() == T::one());
    }
    for (r, &er) in e.iter().enumerate() {
        prop_assert!(energy_captured(&sigma, r + 1).unwrap() == er);
    }
    let nonzero = sigma.iter().filter(|&&s| s > T::zero()).count();
    let rank = numerical_rank(&sigma, (n, m), RankTolerance::default()).unwrap();
    for target in [0.5, 0.9, 0.99] {
        let r = rank_for_energy(&sigma, T::lit(target)).unwrap();
        prop_assert!(r >= 1 && r <= rank, "r({target}) = {r} > rank {rank}");
    }
    prop_assert!(rank_for_energy(&sigma, T::one()).unwrap() <= nonzero);
    Ok(())
}
prop_f32_f64!(256, t9_energy_profile, row_stochastic, energy_profile);

// T10: 1 ≤ srank ≤ erank ≤ rank ≤ min(n, m).
fn rank_inequalities<T: Scalar>(a: DMatrix<T>) -> Check {
    let (n, m) = a.shape();
    let sigma: Vec<T> = singular_values(&a, Backend::Auto).unwrap().into_vec();
    let t = tol::<T>(n.max(m)).to_f64();
    let sr = stable_rank(&sigma).unwrap().to_f64();
    let er = effective_rank(&sigma).unwrap().to_f64();
    let rank = numerical_rank(&sigma, (n, m), RankTolerance::default()).unwrap() as f64;
    prop_assert!(sr >= 1.0);
    prop_assert!(sr <= er * (1.0 + t), "srank {sr} > erank {er}");
    let te = crate::common::erank_tol(crate::common::sigma_tol::<T>(n, m), n.min(m));
    prop_assert!(er <= rank * (1.0 + te), "erank {er} > rank {rank}");
    prop_assert!(rank <= n.min(m) as f64);
    Ok(())
}
prop_f32_f64!(
    256,
    t10_rank_inequalities,
    row_stochastic,
    rank_inequalities
);

// T11: erank and srank are scale-invariant; σ is permutation-invariant.
fn invariances<T: Scalar>(a: DMatrix<T>) -> Check {
    let (n, m) = a.shape();
    let t = tol::<T>(n.max(m)).to_f64();
    let sigma: Vec<T> = singular_values(&a, Backend::Auto).unwrap().into_vec();
    let (er, sr) = (
        effective_rank(&sigma).unwrap(),
        stable_rank(&sigma).unwrap(),
    );
    for c in [-3.5, 1e-3, 1e3] {
        let s: Vec<T> = singular_values(&(&a * T::lit(c)), Backend::Auto)
            .unwrap()
            .into_vec();
        let (er2, sr2) = (effective_rank(&s).unwrap(), stable_rank(&s).unwrap());
        let te = crate::common::erank_tol(crate::common::sigma_tol::<T>(n, m), n.min(m));
        prop_assert!((er2 - er).abs().to_f64() <= te * er.to_f64());
        prop_assert!((sr2 - sr).abs().to_f64() <= t * sr.to_f64());
    }
    // Reverse the rows and rotate the columns.
    let p = DMatrix::from_fn(n, m, |i, j| a[(n - 1 - i, (j + 1) % m)]);
    let s1 = sv(&a);
    let s2 = sv(&p);
    for (x, y) in s1.iter().zip(&s2) {
        prop_assert!((x - y).abs() <= crate::common::sigma_tol::<T>(n, m) * crate::common::fro(&a));
    }
    Ok(())
}
prop_f32_f64!(256, t11_invariances, row_stochastic, invariances);

// T12: backends agree within c·max(n,m)·ε·σ₁ (Weyl), values-only included.
fn backends_agree<T: Scalar>(a: DMatrix<T>) -> Check {
    let (n, m) = a.shape();
    let reference = sv(&a);
    let jac = svd(&a, Backend::jacobi()).unwrap();
    let jac_values: Vec<T> = singular_values(&a, Backend::jacobi()).unwrap().into_vec();
    // nalgebra values-only: when it answers at all (on some f32 inputs with
    // subnormal entries it breaks down with NaN, reported as an error).
    let nal_values: Vec<T> = singular_values(&a, Backend::nalgebra())
        .map_or_else(|_| jac_values.clone(), |s| s.into_vec());
    let auto = svd(&a, Backend::Auto).unwrap();
    for s in [
        jac.singular_values(),
        &jac_values,
        &nal_values,
        auto.singular_values(),
    ] {
        for (x, y) in s.iter().zip(&reference) {
            prop_assert!(
                (x.to_f64() - y).abs()
                    <= crate::common::sigma_tol::<T>(n, m) * crate::common::fro(&a)
            );
        }
    }
    Ok(())
}
prop_f32_f64!(256, t12_backends_agree, row_stochastic, backends_agree);

mod t12_backends_agree_general {
    use super::*;
    proptest! {
        #[test]
        fn f32(a in crate::common::general::<f32>()) { backends_agree::<f32>(a)?; }
        #[test]
        fn f64(a in crate::common::general::<f64>()) { backends_agree::<f64>(a)?; }
    }
}

/// Queries and keys whose logits have a unique row maximum with gap ≥ 1/2:
/// k_j = e_j, q_i = ½·(a permutation of 0..m).
fn separated_logits() -> impl Strategy<Value = (DMatrix<f64>, DMatrix<f64>)> {
    crate::common::dims()
        .prop_flat_map(|(n, m)| {
            prop::collection::vec(Just((0..m).collect::<Vec<usize>>()).prop_shuffle(), n)
        })
        .prop_map(|perms| {
            let (n, m) = (perms.len(), perms[0].len());
            let q = DMatrix::from_fn(n, m, |i, j| 0.5 * perms[i][j] as f64);
            let k = DMatrix::<f64>::identity(m, m);
            (q, k)
        })
}

// T13: scale 0 gives uniform rows (rank 1); a large scale gives one-hot rows.
fn temperature_limits<T: Scalar>((q, k): (DMatrix<f64>, DMatrix<f64>)) -> Check {
    let (q, k) = (cast::<T>(&q), cast::<T>(&k));
    let (n, m) = (q.nrows(), k.nrows());
    let t = tol::<T>(n.max(m)).to_f64();
    let a0 = scaled_dot_product(&q, &k, &Mask::none(), Scale::fixed(T::zero())).unwrap();
    let inv_m = T::one() / T::from_count(m);
    prop_assert!(a0.iter().all(|&x| x == inv_m));
    let s = sv(&a0);
    prop_assert!((s[0] - (n as f64 / m as f64).sqrt()).abs() <= t * s[0]);
    prop_assert!(s[1..].iter().all(|&x| x <= t * s[0]));
    let scale = 60.0;
    let a = scaled_dot_product(&q, &k, &Mask::none(), Scale::fixed(T::lit(scale))).unwrap();
    let bound = (m as f64 - 1.0) * (-scale * 0.5).exp();
    for i in 0..n {
        let argmax = (0..m)
            .max_by(|&x, &y| q[(i, x)].partial_cmp(&q[(i, y)]).unwrap())
            .unwrap();
        prop_assert!(1.0 - a[(i, argmax)].to_f64() <= bound + t);
    }
    Ok(())
}

mod t13_temperature_limits {
    use super::*;
    proptest! {
        #[test]
        fn f32(input in separated_logits()) { temperature_limits::<f32>(input)?; }
        #[test]
        fn f64(input in separated_logits()) { temperature_limits::<f64>(input)?; }
    }
}
