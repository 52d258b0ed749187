//! Bounded under hostile input (the library side; file formats are in
//! `io`): caller-given counts and sizes are checked, narrowing never flushes
//! silently, overflow rules are the same for one term and for sums, answers
//! that fit are returned, and messages say what is wrong.

use std::time::{Duration, Instant};

use attention_svd::analysis::{AnalysisParams, analyze};
use attention_svd::attention::{Mask, softmax_rows};
use attention_svd::collapse::rank_collapse;
use attention_svd::randomized::{RandomizedParams, randomized_svd};
use attention_svd::stochastic::max_row_sum_deviation;
use attention_svd::svd::{Backend, JacobiParams, NalgebraParams, svd};
use attention_svd::{Error, Precision, Stack};
use nalgebra::{DMatrix, dmatrix};

/// Runs `f` and fails if it takes longer than `limit`.
fn within<R>(limit: Duration, f: impl FnOnce() -> R) -> R {
    let t = Instant::now();
    let r = f();
    assert!(t.elapsed() < limit, "took {:?}", t.elapsed());
    r
}

#[test]
fn caller_given_counts_are_capped() {
    let a = DMatrix::<f64>::from_fn(20, 10, |i, j| ((i * 10 + j) as f64).sin());
    let r = within(Duration::from_secs(5), || {
        randomized_svd(
            &a,
            2,
            RandomizedParams::default().power_iterations(usize::MAX),
        )
    });
    assert!(matches!(
        r,
        Err(Error::InvalidParameter {
            name: "power_iterations",
            ..
        })
    ));
    let j = svd(
        &a,
        Backend::Jacobi(JacobiParams::default().max_sweeps(usize::MAX)),
    );
    assert!(matches!(
        j,
        Err(Error::InvalidParameter {
            name: "max_sweeps",
            ..
        })
    ));
    let n = svd(
        &a,
        Backend::Nalgebra(NalgebraParams::default().max_iterations(usize::MAX)),
    );
    assert!(matches!(
        n,
        Err(Error::InvalidParameter {
            name: "max_iterations",
            ..
        })
    ));
    // Sibling: a rank beyond the matrix is an error with its range.
    let e = randomized_svd(&a, 0, RandomizedParams::default()).unwrap_err();
    assert_eq!(e.to_string(), "rank 0 is out of range 1..=10");
}

#[test]
fn huge_masks_are_errors_not_aborts() {
    let big = within(Duration::from_secs(5), || {
        Mask::<f32>::causal().to_bool(1 << 20, 1 << 20)
    });
    assert!(matches!(
        big,
        Err(Error::InvalidParameter { name: "shape", .. })
    ));
    assert!(Mask::<f32>::none().to_bool(usize::MAX, 2).is_err());
}

#[test]
fn a_sum_of_biases_follows_the_rule_of_one_bias() {
    let logits = dmatrix![0.0_f64, 0.0];
    let one = Mask::bias(dmatrix![-f64::MAX, 0.0]);
    // One bias of −MAX: finite logit plus finite bias, representable.
    assert!(softmax_rows(&logits, &one).is_ok());
    // Two of them sum to −∞ from finite terms: an overflow, not a mask.
    let two = Mask::bias(dmatrix![-f64::MAX, 0.0]).and(Mask::bias(dmatrix![-f64::MAX, 0.0]));
    assert_eq!(
        softmax_rows(&logits, &two),
        Err(Error::Overflow {
            what: "sum of biases"
        })
    );
    // An explicit −∞ still masks.
    let masked = Mask::bias(dmatrix![f64::NEG_INFINITY, 0.0]).and(Mask::bias(dmatrix![-1.0, 0.0]));
    assert_eq!(softmax_rows(&logits, &masked).unwrap(), dmatrix![0.0, 1.0]);
}

#[test]
fn narrowing_reports_overflow_and_underflow() {
    let big = Stack::new([1, 1, 1, 2], vec![1e300_f64, 0.5]).unwrap();
    assert!(matches!(big.cast::<f32>(), Err(Error::Overflow { .. })));
    let tiny = Stack::new([1, 1, 2, 2], vec![1e-50_f64, 0.0, 0.0, 1e-50]).unwrap();
    assert!(matches!(tiny.cast::<f32>(), Err(Error::Underflow { .. })));
    // The analysis in f32 of f64 data of 1e-50: reported, not σ₁ = 0.
    let r = analyze(&tiny, AnalysisParams::default().precision(Precision::F32));
    match r {
        Err(Error::AtHead {
            layer: 0,
            head: 0,
            source,
        }) => {
            assert!(matches!(*source, Error::Underflow { .. }))
        }
        other => panic!("{other:?}"),
    }
    // f64 arithmetic sees the data as it is.
    let ok = analyze(&tiny, AnalysisParams::default()).unwrap();
    assert_eq!(ok.heads[0].numerical_rank, 2);
    // Subnormal results keep their value's nonzero-ness.
    let sub = Stack::new([1, 1, 1, 1], vec![1e-40_f64]).unwrap();
    assert!(sub.cast::<f32>().unwrap().as_slice()[0] > 0.0);
}

#[test]
fn representable_answers_are_returned() {
    let m = f64::MAX;
    assert_eq!(max_row_sum_deviation(&dmatrix![m, m, -m]).unwrap(), m);
    let col = DMatrix::from_column_slice(4, 1, &[0.9 * m, 0.0, 0.0, 0.0]);
    let c = rank_collapse(&col, Backend::Auto).unwrap();
    assert!(c.residual_composite.is_finite() && c.residual_relative <= 1.0);
    // f32 data near its maximum: the f64 residual holds what f32 cannot.
    let col32 = DMatrix::from_column_slice(4, 1, &[0.9 * f32::MAX, 0.0, 0.0, 0.0]);
    assert!(
        rank_collapse(&col32, Backend::Auto)
            .unwrap()
            .residual_composite
            .is_finite()
    );
}

#[test]
fn messages_are_precise() {
    let a = DMatrix::<f64>::from_fn(12, 10, |i, j| ((i * 10 + j) as f64 * 1.3).sin());
    let e = svd(&a, Backend::Jacobi(JacobiParams::default().max_sweeps(1))).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("Jacobi SVD did not converge after 1 sweep (cap 1)"),
        "{text}"
    );
    match e {
        Error::NoConvergence {
            off_diagonal: Some(c),
            ..
        } => assert!(c <= 1.0),
        other => panic!("{other:?}"),
    }
}

/// Errors of a stack-wide computation name where they happened: a per-head
/// product that overflows names its (layer, head); the head average and the
/// rollout name their layer.
#[test]
fn collapse_errors_name_layer_and_head() {
    use attention_svd::collapse::collapse_across_layers;
    let s = Stack::new([2, 1, 4, 4], vec![1e300_f64; 32]).unwrap();
    match collapse_across_layers(&s, Backend::Auto).unwrap_err() {
        Error::AtHead {
            layer: 1,
            head: 0,
            source,
        } => assert!(matches!(*source, Error::Overflow { .. }), "{source:?}"),
        other => panic!("{other:?}"),
    }
    // Per-head products that vanish (diag(M,0)·diag(0,M) = 0) while the
    // head averages multiply to M²/4: the layer is named, not a head.
    let m = 1e300_f64;
    #[rustfmt::skip]
    let v = vec![
        m, 0.0, 0.0, 0.0,   0.0, 0.0, 0.0, m, // layer 0: heads diag(M, 0), diag(0, M)
        0.0, 0.0, 0.0, m,   m, 0.0, 0.0, 0.0, // layer 1: heads diag(0, M), diag(M, 0)
    ];
    let s = Stack::new([2, 2, 2, 2], v).unwrap();
    let e = collapse_across_layers(&s, Backend::Auto).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("layer 1: head-averaged attention product overflows"),
        "{e}"
    );
}
