//! Randomized truncated SVD: exactness on low-rank input, the compression
//! property σ̃ᵢ ≤ σᵢ, Eckart–Young optimality of the exact truncation,
//! determinism of the seed, accuracy on fast-decaying attention, errors.

use attention_svd::attention::{Mask, softmax_rows};
use attention_svd::lowrank::frobenius_error;
use attention_svd::randomized::{RandomizedParams, randomized_svd};
use attention_svd::svd::{Backend, svd};
use attention_svd::{Error, Scalar};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::common::{cast, fro, orthogonality_error, tol, values};

type Check = Result<(), TestCaseError>;

/// A matrix U·Vᵀ of rank ≤ r with r ≤ 4, and a target rank k ≥ r.
fn low_rank() -> impl Strategy<Value = (DMatrix<f64>, usize)> {
    (2usize..=20, 2usize..=20, 1usize..=4)
        .prop_flat_map(|(n, m, r)| {
            let r = r.min(n).min(m);
            (
                values(n, r, -1.0..1.0),
                values(m, r, -1.0..1.0),
                r..=n.min(m),
            )
        })
        .prop_map(|(u, v, k)| (&u * v.transpose(), k))
}

fn exact_on_low_rank<T: Scalar>((a, k): (DMatrix<f64>, usize)) -> Check {
    let a = cast::<T>(&a);
    let (n, m) = a.shape();
    let t = tol::<T>(n.max(m)).to_f64() * 4.0;
    let r = randomized_svd(&a, k, RandomizedParams::default()).unwrap();
    let exact = svd(&a, Backend::Auto).unwrap();
    let s1 = exact.singular_values()[0].to_f64();
    for (x, y) in r.singular_values().iter().zip(exact.singular_values()) {
        prop_assert!((x.to_f64() - y.to_f64()).abs() <= t * s1);
    }
    prop_assert!(fro(&(&a - r.reconstruct())) <= t * fro(&a).max(f64::MIN_POSITIVE));
    prop_assert!(orthogonality_error(r.u()) <= t);
    prop_assert!(orthogonality_error(&r.v_t().transpose()) <= t);
    Ok(())
}

mod exact_when_rank_is_within_the_sketch {
    use super::*;
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn f32(input in low_rank()) { exact_on_low_rank::<f32>(input)?; }
        #[test]
        fn f64(input in low_rank()) { exact_on_low_rank::<f64>(input)?; }
    }
}

/// Peaked attention (fast-decaying spectrum) of size 48×48 and a rank k.
fn attention_and_rank() -> impl Strategy<Value = (DMatrix<f64>, usize)> {
    (values(48, 48, -4.0..4.0), 1usize..=12)
        .prop_map(|(z, k)| (softmax_rows(&(z * 3.0), &Mask::none()).unwrap(), k))
}

fn compression_and_optimality<T: Scalar>((a, k): (DMatrix<f64>, usize)) -> Check {
    let a = cast::<T>(&a);
    let t = tol::<T>(48).to_f64();
    let exact = svd(&a, Backend::Auto).unwrap();
    let sigma = exact.singular_values();
    let s1 = sigma[0].to_f64();
    let params = RandomizedParams::default()
        .power_iterations(1)
        .oversampling(4);
    let r = randomized_svd(&a, k, params).unwrap();
    // σ̃ᵢ ≤ σᵢ: B = QᵀA is a compression of A.
    for (x, y) in r.singular_values().iter().zip(sigma) {
        prop_assert!(x.to_f64() <= y.to_f64() + t * s1);
    }
    // No rank-k matrix beats the exact truncation (Eckart–Young).
    let best = frobenius_error(sigma, k).unwrap().to_f64();
    prop_assert!(fro(&(&a - r.reconstruct())) >= best - t * s1);
    let exact_k = exact.truncate(k).unwrap();
    prop_assert!((fro(&(&a - exact_k.reconstruct())) - best).abs() <= t * s1 * 7.0);
    Ok(())
}

mod compression_and_eckart_young {
    use super::*;
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn f32(input in attention_and_rank()) { compression_and_optimality::<f32>(input)?; }
        #[test]
        fn f64(input in attention_and_rank()) { compression_and_optimality::<f64>(input)?; }
    }
}

#[test]
fn defaults_are_accurate_on_fast_decaying_attention() {
    // Softmax of logits of rank 2 scaled by 4: a fast-decaying spectrum.
    let n = 96;
    let q = DMatrix::<f64>::from_fn(n, 2, |i, j| ((i * 2 + j) as f64 * 0.7).sin());
    let z = &q * q.transpose() * 4.0;
    let a = softmax_rows(&z, &Mask::none()).unwrap();
    let exact = svd(&a, Backend::Auto).unwrap();
    let k = 8;
    let r = randomized_svd(&a, k, RandomizedParams::default()).unwrap();
    let s = exact.singular_values();
    let worst = r
        .singular_values()
        .iter()
        .zip(s)
        .map(|(x, y)| (x - y).abs() / y)
        .fold(0.0, f64::max);
    assert!(worst < 1e-6, "largest relative error of σ₁…σ₈: {worst:e}");
}

#[test]
fn the_seed_determines_the_result() {
    let a = DMatrix::<f64>::from_fn(30, 20, |i, j| 1.0 / (1 + i + 2 * j) as f64);
    let p = RandomizedParams::default()
        .seed(3)
        .power_iterations(0)
        .oversampling(2);
    let r1 = randomized_svd(&a, 4, p).unwrap();
    let r2 = randomized_svd(&a, 4, p).unwrap();
    assert_eq!(r1, r2);
    let r3 = randomized_svd(&a, 4, p.seed(4)).unwrap();
    assert_ne!(r1.singular_values(), r3.singular_values());
    let rj = randomized_svd(&a, 4, p.backend(Backend::jacobi())).unwrap();
    for (x, y) in rj.singular_values().iter().zip(r1.singular_values()) {
        assert!((x - y).abs() < 1e-13);
    }
}

#[test]
fn error_paths() {
    let a = DMatrix::<f64>::identity(4, 3);
    for k in [0, 4] {
        assert_eq!(
            randomized_svd(&a, k, RandomizedParams::default()),
            Err(Error::InvalidRank {
                rank: k,
                min: 1,
                max: 3
            })
        );
    }
    let mut b = a.clone();
    b[(0, 0)] = f64::NAN;
    assert!(matches!(
        randomized_svd(&b, 1, RandomizedParams::default()),
        Err(Error::NonFinite { .. })
    ));
    let z = randomized_svd(&DMatrix::<f32>::zeros(5, 4), 2, RandomizedParams::default()).unwrap();
    assert_eq!(z.singular_values(), &[0.0, 0.0]);
    assert!(matches!(
        randomized_svd(&DMatrix::<f64>::zeros(0, 4), 1, RandomizedParams::default()),
        Err(Error::Empty { .. })
    ));
}
