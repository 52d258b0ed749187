//! Attention weights: masks, the KV-cache offset, multi-head splitting,
//! agreement across precisions, and every error path.

use attention_svd::Error;
use attention_svd::attention::Scale;
use attention_svd::attention::{
    Mask, multi_head, scaled_dot_product, scaled_dot_product_into, softmax_rows, split_heads,
};
use nalgebra::{DMatrix, dmatrix};

fn qk(n: usize, m: usize, d: usize) -> (DMatrix<f64>, DMatrix<f64>) {
    let q = DMatrix::from_fn(n, d, |i, j| ((i * d + j) as f64 * 0.37).sin());
    let k = DMatrix::from_fn(m, d, |i, j| ((i * d + j) as f64 * 0.23 + 1.0).cos());
    (q, k)
}

/// Reference: naive softmax of s·QKᵀ + bias over the allowed set, in f64.
fn reference(
    q: &DMatrix<f64>,
    k: &DMatrix<f64>,
    scale: f64,
    allowed: impl Fn(usize, usize) -> bool,
    bias: impl Fn(usize, usize) -> f64,
) -> DMatrix<f64> {
    let z = q * k.transpose() * scale;
    let mut a = DMatrix::zeros(z.nrows(), z.ncols());
    for i in 0..z.nrows() {
        let e: Vec<f64> = (0..z.ncols())
            .map(|j| {
                if allowed(i, j) {
                    (z[(i, j)] + bias(i, j)).exp()
                } else {
                    0.0
                }
            })
            .collect();
        let s: f64 = e.iter().sum();
        for j in 0..z.ncols() {
            a[(i, j)] = e[j] / s;
        }
    }
    a
}

fn assert_close(a: &DMatrix<f64>, b: &DMatrix<f64>) {
    assert_eq!(a.shape(), b.shape());
    let err = (a - b).amax();
    assert!(err <= 1e-14, "max abs error {err:e}");
}

#[test]
fn unmasked_matches_reference() {
    let (q, k) = qk(5, 7, 4);
    let a = scaled_dot_product(&q, &k, &Mask::none(), Scale::default()).unwrap();
    assert_close(&a, &reference(&q, &k, 0.5, |_, _| true, |_, _| 0.0));
}

#[test]
fn causal_square_is_lower_triangular() {
    let (q, k) = qk(6, 6, 3);
    let a = scaled_dot_product(&q, &k, &Mask::causal(), Scale::default()).unwrap();
    let s = 1.0 / 3f64.sqrt();
    assert_close(&a, &reference(&q, &k, s, |i, j| j <= i, |_, _| 0.0));
}

#[test]
fn causal_with_kv_cache_offset() {
    // 3 new queries against 8 cached keys: query i sits at position i + 5.
    let (q, k) = qk(3, 8, 4);
    let a = scaled_dot_product(&q, &k, &Mask::causal(), Scale::default()).unwrap();
    assert_close(&a, &reference(&q, &k, 0.5, |i, j| j <= i + 5, |_, _| 0.0));
    assert_eq!(a[(0, 6)], 0.0);
    assert!(a[(0, 5)] > 0.0);
}

#[test]
fn causal_with_more_queries_than_keys_masks_the_first_rows() {
    let (q, k) = qk(5, 3, 2);
    assert_eq!(
        scaled_dot_product(&q, &k, &Mask::causal(), Scale::default()),
        Err(Error::FullyMaskedRow { row: 0 })
    );
}

#[test]
fn sliding_window_keeps_the_last_w_keys() {
    let (q, k) = qk(7, 7, 3);
    for w in 1..=8 {
        let a = scaled_dot_product(&q, &k, &Mask::sliding_window(w), Scale::default()).unwrap();
        let s = 1.0 / 3f64.sqrt();
        assert_close(
            &a,
            &reference(&q, &k, s, |i, j| j <= i && j + w > i, |_, _| 0.0),
        );
    }
    // A window of one key is the identity.
    let a = scaled_dot_product(&q, &k, &Mask::sliding_window(1), Scale::default()).unwrap();
    assert_eq!(a, DMatrix::identity(7, 7));
}

#[test]
fn key_padding_and_causal_combine() {
    let (q, k) = qk(4, 4, 2);
    let valid = vec![true, false, true, true];
    let mask = Mask::causal().and(Mask::key_padding(valid.clone()));
    let a = scaled_dot_product(&q, &k, &mask, Scale::default()).unwrap();
    let s = 1.0 / 2f64.sqrt();
    assert_close(
        &a,
        &reference(&q, &k, s, |i, j| j <= i && valid[j], |_, _| 0.0),
    );
    // Two paddings intersect.
    let mask = Mask::key_padding(vec![true, true, false, true])
        .and(Mask::key_padding(vec![false, true, true, true]));
    let a = scaled_dot_product(&q, &k, &mask, Scale::default()).unwrap();
    assert_eq!(a.column(0).amax() + a.column(2).amax(), 0.0);
}

#[test]
fn boolean_mask_and_bias() {
    let (q, k) = qk(3, 5, 2);
    let allowed = DMatrix::from_fn(3, 5, |i, j| (i + j) % 3 != 0 || j == 0);
    // ALiBi-style linear bias −0.5·|i − j|, with one −∞ entry.
    let mut bias = DMatrix::from_fn(3, 5, |i, j| -0.5 * (i as f64 - j as f64).abs());
    bias[(2, 4)] = f64::NEG_INFINITY;
    let mask = Mask::from_bool(allowed.clone()).and(Mask::bias(bias.clone()));
    let a = scaled_dot_product(&q, &k, &mask, Scale::default()).unwrap();
    let s = 1.0 / 2f64.sqrt();
    let expected = reference(
        &q,
        &k,
        s,
        |i, j| allowed[(i, j)] && bias[(i, j)].is_finite(),
        |i, j| bias[(i, j)],
    );
    assert_close(&a, &expected);
    assert_eq!(a[(2, 4)], 0.0);
    let b = mask.to_bool(3, 5).unwrap();
    assert!(!b[(2, 4)]);
    assert_eq!(b[(0, 0)], allowed[(0, 0)]);
    // Two biases add.
    let twice = Mask::bias(bias.clone()).and(Mask::bias(bias.clone()));
    let a2 = scaled_dot_product(&q, &k, &twice, Scale::default()).unwrap();
    let expected2 = reference(
        &q,
        &k,
        s,
        |i, j| bias[(i, j)].is_finite(),
        |i, j| 2.0 * bias[(i, j)],
    );
    assert_close(&a2, &expected2);
}

#[test]
fn mask_predicates() {
    assert!(Mask::<f64>::none().is_none());
    assert!(Mask::<f64>::default().is_none());
    assert!(Mask::<f64>::sliding_window(3).is_causal());
    assert!(!Mask::<f32>::key_padding(vec![true]).is_none());
    // The narrower of two windows wins.
    let m = Mask::<f64>::sliding_window(4).and(Mask::sliding_window(2));
    let b = m.to_bool(5, 5).unwrap();
    assert_eq!(b.row(4).iter().filter(|&&x| x).count(), 2);
}

#[test]
fn f32_agrees_with_f64() {
    let (q, k) = qk(16, 16, 8);
    let a64 = scaled_dot_product(&q, &k, &Mask::causal(), Scale::default()).unwrap();
    let a32 = scaled_dot_product(
        &q.cast::<f32>(),
        &k.cast::<f32>(),
        &Mask::causal(),
        Scale::default(),
    )
    .unwrap();
    let err = (a32.cast::<f64>() - a64).amax();
    assert!(err <= 1e-6, "{err:e}");
}

#[test]
fn overflowing_product_is_rescaled_or_reported() {
    // QKᵀ = 1.6e39 overflows f32, but the scaled logits 1.6e19 do not.
    let q = DMatrix::<f32>::from_element(2, 4, 2e19);
    let mut k = DMatrix::<f32>::from_element(2, 4, 2e19);
    k[(1, 0)] = -2e19;
    let a = scaled_dot_product(&q, &k, &Mask::none(), Scale::fixed(1e-20)).unwrap();
    assert_eq!(a, dmatrix![1.0, 0.0; 1.0, 0.0]);
    // With the default scale the logits themselves overflow.
    assert_eq!(
        scaled_dot_product(&q, &k, &Mask::none(), Scale::default()),
        Err(Error::Overflow {
            what: "scaled logits QKᵀ"
        })
    );
}

#[test]
fn multi_head_matches_per_head_attention() {
    let (q, k) = qk(5, 6, 12);
    let heads = multi_head(&q, &k, 3, &Mask::causal(), Scale::default()).unwrap();
    let qs = split_heads(&q, 3).unwrap();
    let ks = split_heads(&k, 3).unwrap();
    assert_eq!(heads.len(), 3);
    for t in 0..3 {
        assert_eq!(qs[t].to_dmatrix(), q.columns(4 * t, 4).into_owned());
        assert_eq!(
            heads[t],
            scaled_dot_product(&qs[t], &ks[t], &Mask::causal(), Scale::default()).unwrap()
        );
    }
}

#[test]
fn softmax_rows_accepts_negative_infinity_only() {
    let z = dmatrix![0.0_f64, f64::NEG_INFINITY; 1.0, 1.0];
    assert_eq!(
        softmax_rows(&z, &Mask::none()).unwrap(),
        dmatrix![1.0, 0.0; 0.5, 0.5]
    );
    let z = dmatrix![0.0_f64, f64::INFINITY];
    assert_eq!(
        softmax_rows(&z, &Mask::none()),
        Err(Error::NonFinite {
            what: "logits",
            row: 0,
            col: 1
        })
    );
    let z = dmatrix![0.0_f32; f32::NAN];
    assert!(matches!(
        softmax_rows(&z, &Mask::none()),
        Err(Error::NonFinite { row: 1, col: 0, .. })
    ));
    let z = dmatrix![f64::NEG_INFINITY, f64::NEG_INFINITY];
    assert_eq!(
        softmax_rows(&z, &Mask::none()),
        Err(Error::FullyMaskedRow { row: 0 })
    );
}

#[test]
fn error_paths() {
    let (q, k) = qk(3, 4, 2);
    // Empty inputs, including d = 0.
    assert!(matches!(
        scaled_dot_product(
            &DMatrix::<f64>::zeros(0, 2),
            &k,
            &Mask::none(),
            Scale::default()
        ),
        Err(Error::Empty {
            what: "queries",
            ..
        })
    ));
    assert!(matches!(
        scaled_dot_product(
            &DMatrix::<f64>::zeros(3, 0),
            &DMatrix::zeros(4, 0),
            &Mask::none(),
            Scale::default()
        ),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        softmax_rows(&DMatrix::<f64>::zeros(0, 0), &Mask::none()),
        Err(Error::Empty { .. })
    ));
    // Width mismatch.
    assert_eq!(
        scaled_dot_product(&q, &DMatrix::zeros(4, 3), &Mask::none(), Scale::default()),
        Err(Error::ShapeMismatch {
            what: "keys",
            expected: (4, 2),
            found: (4, 3)
        })
    );
    // Non-finite inputs.
    let mut bad = q.clone();
    bad[(2, 1)] = f64::INFINITY;
    assert_eq!(
        scaled_dot_product(&bad, &k, &Mask::none(), Scale::default()),
        Err(Error::NonFinite {
            what: "queries",
            row: 2,
            col: 1
        })
    );
    let mut badk = k.clone();
    badk[(0, 0)] = f64::NAN;
    assert!(matches!(
        scaled_dot_product(&q, &badk, &Mask::none(), Scale::default()),
        Err(Error::NonFinite { what: "keys", .. })
    ));
    // Bad scale.
    assert!(matches!(
        scaled_dot_product(&q, &k, &Mask::none(), Scale::fixed(f64::NAN)),
        Err(Error::InvalidParameter { name: "scale", .. })
    ));
    // Mask shapes and parameters.
    assert!(matches!(
        scaled_dot_product(&q, &k, &Mask::key_padding(vec![true; 3]), Scale::default()),
        Err(Error::ShapeMismatch {
            what: "key padding mask",
            ..
        })
    ));
    assert!(matches!(
        scaled_dot_product(
            &q,
            &k,
            &Mask::from_bool(DMatrix::from_element(4, 3, true)),
            Scale::default()
        ),
        Err(Error::ShapeMismatch {
            what: "boolean mask",
            ..
        })
    ));
    assert!(matches!(
        scaled_dot_product(&q, &k, &Mask::bias(DMatrix::zeros(3, 3)), Scale::default()),
        Err(Error::ShapeMismatch { what: "bias", .. })
    ));
    assert!(matches!(
        scaled_dot_product(&q, &k, &Mask::sliding_window(0), Scale::default()),
        Err(Error::InvalidParameter { name: "window", .. })
    ));
    let mut nan_bias = DMatrix::zeros(3, 4);
    nan_bias[(1, 1)] = f64::NAN;
    assert_eq!(
        scaled_dot_product(&q, &k, &Mask::bias(nan_bias), Scale::default()),
        Err(Error::NonFinite {
            what: "bias",
            row: 1,
            col: 1
        })
    );
    let big = DMatrix::from_element(3, 4, f64::MAX);
    assert!(matches!(
        scaled_dot_product(
            &q,
            &k,
            &Mask::bias(big.clone()).and(Mask::bias(big)),
            Scale::default()
        ),
        Err(Error::Overflow { .. })
    ));
    // Logit plus bias overflowing.
    let z = dmatrix![f64::MAX, 0.0];
    assert!(matches!(
        softmax_rows(&z, &Mask::bias(dmatrix![f64::MAX, 0.0])),
        Err(Error::Overflow { .. })
    ));
    // A fully masked row.
    let mask = Mask::from_bool(DMatrix::from_fn(3, 4, |i, _| i != 1));
    assert_eq!(
        scaled_dot_product(&q, &k, &mask, Scale::default()),
        Err(Error::FullyMaskedRow { row: 1 })
    );
    // Heads.
    assert!(matches!(
        split_heads(&q, 0),
        Err(Error::InvalidParameter { name: "heads", .. })
    ));
    assert!(matches!(
        multi_head(
            &DMatrix::<f64>::zeros(3, 6),
            &DMatrix::zeros(3, 6),
            4,
            &Mask::none(),
            Scale::default()
        ),
        Err(Error::InvalidParameter { name: "heads", .. })
    ));
    assert!(matches!(
        multi_head(
            &DMatrix::<f64>::zeros(3, 6),
            &DMatrix::zeros(3, 4),
            2,
            &Mask::none(),
            Scale::default()
        ),
        Err(Error::ShapeMismatch { .. })
    ));
}

// ---------------------------------------------------------------------------
// The fused row-block kernel against the naive reference: every mask kind,
// f32 and f64, shapes that are not multiples of the block size, n ≠ m, 1×1.
// ---------------------------------------------------------------------------

/// The bias used by the mask kinds (−∞ entries are masked).
fn kind_bias(n: usize, m: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, m, |i, j| {
        if (i + j) % 5 == 2 && j != m - 1 {
            f64::NEG_INFINITY
        } else {
            ((i * m + j) as f64 * 0.61).sin()
        }
    })
}

/// Every mask kind for n queries and m keys (no row fully masked when
/// n ≤ m), and whether it carries `kind_bias`.
fn mask_kinds<T: attention_svd::Scalar>(n: usize, m: usize) -> Vec<(&'static str, Mask<T>, bool)> {
    let valid: Vec<bool> = (0..m).map(|j| j % 4 != 1 || j == m - 1).collect();
    let allowed = DMatrix::from_fn(n, m, |i, j| (i + 2 * j) % 3 != 0 || j == m - 1);
    let bias = kind_bias(n, m).map(T::lit);
    vec![
        ("none", Mask::none(), false),
        ("causal", Mask::causal(), false),
        ("window", Mask::sliding_window(5), false),
        ("padding", Mask::key_padding(valid.clone()), false),
        ("bool", Mask::from_bool(allowed), false),
        ("bias", Mask::bias(bias.clone()), true),
        (
            "all",
            Mask::causal()
                .and(Mask::key_padding(valid))
                .and(Mask::bias(bias)),
            true,
        ),
    ]
}

/// The fused attention (and `softmax_rows`) for every mask kind, in f64 and
/// f32, against the f64 reference: entries within 4·m·ε of the type, masked
/// entries exactly 0, rows summing to 1 within m·ε.
fn check_fused(n: usize, m: usize, d: usize) {
    let (q, k) = qk(n, m, d);
    let scale = 1.0 / (d as f64).sqrt();
    let kb = kind_bias(n, m);
    let (q32, k32) = (q.map(|x| x as f32), k.map(|x| x as f32));
    let (q32w, k32w) = (q32.map(f64::from), k32.map(f64::from));
    let kinds64 = mask_kinds::<f64>(n, m);
    let kinds32 = mask_kinds::<f32>(n, m);
    for ((name, mask, has_bias), (_, mask32, _)) in kinds64.into_iter().zip(kinds32) {
        let allowed = mask.to_bool(n, m).unwrap();
        let bias = |i: usize, j: usize| if has_bias { kb[(i, j)] } else { 0.0 };
        let check = |got: &DMatrix<f64>, want: &DMatrix<f64>, eps: f64, what: &str| {
            let err = (got - want).amax();
            let tol = 4.0 * m as f64 * eps;
            assert!(err <= tol, "{what} {name} {n}×{m}: {err:e} > {tol:e}");
            for i in 0..n {
                let s = got.row(i).sum();
                assert!(
                    (s - 1.0).abs() <= m as f64 * eps,
                    "{what} {name} row {i}: {s}"
                );
                for j in 0..m {
                    if !allowed[(i, j)] {
                        assert_eq!(got[(i, j)], 0.0, "{what} {name} ({i}, {j})");
                    }
                }
            }
        };
        let want = reference(&q, &k, scale, |i, j| allowed[(i, j)], bias);
        let got = scaled_dot_product(&q, &k, &mask, Scale::fixed(scale)).unwrap();
        check(&got, &want, f64::EPSILON, "f64");
        // Into a buffer of stale NaNs, and into one of another shape: the
        // same kernel, so the same bits (exact comparison on purpose),
        // every entry written.
        for mut buf in [DMatrix::from_element(n, m, f64::NAN), DMatrix::zeros(1, 2)] {
            scaled_dot_product_into(&q, &k, &mask, Scale::fixed(scale), &mut buf).unwrap();
            assert_eq!(buf, got, "into {name} {n}×{m}");
        }
        // softmax_rows runs the same kernel on given logits.
        let z = &q * k.transpose() * scale;
        check(
            &softmax_rows(&z, &mask).unwrap(),
            &want,
            f64::EPSILON,
            "rows f64",
        );
        // f32: the reference from the f32 inputs, widened exactly.
        let want = reference(&q32w, &k32w, scale, |i, j| allowed[(i, j)], bias);
        let got = scaled_dot_product(&q32, &k32, &mask32, Scale::fixed(scale as f32)).unwrap();
        check(&got.map(f64::from), &want, f64::from(f32::EPSILON), "f32");
        let mut buf = DMatrix::from_element(n, m, f32::NAN);
        scaled_dot_product_into(&q32, &k32, &mask32, Scale::fixed(scale as f32), &mut buf).unwrap();
        assert_eq!(buf, got, "into f32 {name} {n}×{m}");
        let z32 = (&q32 * k32.transpose()) * (scale as f32);
        let rows = softmax_rows(&z32, &mask32).unwrap().map(f64::from);
        check(&rows, &want, f64::from(f32::EPSILON), "rows f32");
    }
}

#[test]
fn fused_kernel_matches_reference_for_every_mask_on_small_shapes() {
    for (n, m) in [(1, 1), (1, 7), (2, 3), (5, 5), (7, 19)] {
        check_fused(n, m, 4);
    }
}

#[test]
fn fused_kernel_matches_reference_across_block_boundaries() {
    // Blocks hold ⌊2²⁰ / (m·size)⌋ rows clamped to [128, 512] and rounded
    // down to a multiple of 8: several blocks, the last one partial, for
    // both types (f64 / f32 rows per block: 128 / 184, 128 / 128,
    // 128 / 216 and 128 / 128, the floor where 1 MB holds fewer rows).
    check_fused(403, 1400, 16);
    check_fused(250, 3001, 8);
    check_fused(1100, 1203, 4);
    check_fused(130, 5000, 2);
}

#[test]
fn fused_kernel_reports_the_first_bad_row_in_a_later_block() {
    // Row 300 (in the third block of 128 rows) fully masked by the boolean mask.
    let (q, k) = qk(400, 2000, 8);
    let allowed = DMatrix::from_fn(400, 2000, |i, _| i != 300);
    let err = scaled_dot_product(&q, &k, &Mask::from_bool(allowed), Scale::default()).unwrap_err();
    assert!(matches!(err, Error::FullyMaskedRow { row: 300 }), "{err:?}");
    // More queries than keys under a causal mask: the first rows have no key.
    let (q, k) = qk(600, 500, 8);
    let err = scaled_dot_product(&q, &k, &Mask::causal(), Scale::default()).unwrap_err();
    assert!(matches!(err, Error::FullyMaskedRow { row: 0 }), "{err:?}");
}
