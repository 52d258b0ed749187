//! Shared helpers: tolerances, proptest strategies for row-stochastic
//! matrices, and checks used by several test modules.

#![allow(dead_code)]

use attention_svd::Scalar;
use attention_svd::attention::{Mask, softmax_rows};
use nalgebra::DMatrix;
use proptest::prelude::*;

/// The one tolerance helper: c·k·ε of `T` with c = 16.
pub fn tol<T: Scalar>(k: usize) -> T {
    T::lit(16.0) * T::from_count(k.max(1)) * T::EPSILON
}

/// Bound on |σ̃ᵢ − σᵢ| for a result of `Auto`, in units of ‖A‖_F: its checks
/// bound the residual and the orthogonality of U and V by 8·max(n, m)·ε
/// each, so σ moves by at most 24·max(n, m)·ε·‖A‖_F (T12); 3·tol covers it.
pub fn sigma_tol<T: Scalar>(n: usize, m: usize) -> f64 {
    3.0 * tol::<T>(n.max(m)).to_f64()
}

/// Bound on the change of an effective rank when every σᵢ moves by at most
/// t·σ₁: the entropy's derivative −(1 + ln pᵢ) grows like ln(1/t) for the
/// tiny pᵢ of round-off singular values, so the bound is t·k·(1 + ln(1/t)).
pub fn erank_tol(t: f64, k: usize) -> f64 {
    t * k as f64 * (1.0 + (1.0 / t).ln())
}

/// Largest dimension drawn by the strategies.
pub const MAX_DIM: usize = 16;

/// A matrix of f64 values drawn from `range`, shape (n, m).
pub fn values(
    n: usize,
    m: usize,
    range: std::ops::Range<f64>,
) -> impl Strategy<Value = DMatrix<f64>> {
    prop::collection::vec(range, n * m).prop_map(move |v| DMatrix::from_vec(n, m, v))
}

/// Casts an f64 matrix to `T`.
pub fn cast<T: Scalar>(a: &DMatrix<f64>) -> DMatrix<T> {
    a.map(T::lit)
}

/// Divides every row by its sum (rows must have a positive sum).
pub fn normalize_rows<T: Scalar>(mut a: DMatrix<T>) -> DMatrix<T> {
    for mut row in a.row_iter_mut() {
        let s = row.sum();
        row /= s;
    }
    a
}

/// (n, m) with 1 ≤ n, m ≤ MAX_DIM.
pub fn dims() -> impl Strategy<Value = (usize, usize)> {
    (1..=MAX_DIM, 1..=MAX_DIM)
}

/// (a) Softmax of logits in −8..8.
pub fn softmax_family<T: Scalar>() -> impl Strategy<Value = DMatrix<T>> {
    dims()
        .prop_flat_map(|(n, m)| values(n, m, -8.0..8.0))
        .prop_map(|z| softmax_rows(&cast::<T>(&z), &Mask::none()).expect("valid logits"))
}

/// (b) Sparse non-negative weights, one forced positive entry per row.
pub fn sparse_family<T: Scalar>() -> impl Strategy<Value = DMatrix<T>> {
    dims()
        .prop_flat_map(|(n, m)| {
            (
                values(n, m, 0.0..1.0),
                prop::collection::vec(0..m, n),
                prop::collection::vec(prop::bool::weighted(0.6), n * m),
            )
        })
        .prop_map(|(w, keep, zero)| {
            let (n, m) = w.shape();
            let mut a =
                DMatrix::from_fn(n, m, |i, j| if zero[i + n * j] { 0.0 } else { w[(i, j)] });
            for (i, &j) in keep.iter().enumerate() {
                a[(i, j)] = 0.5 + w[(i, j)];
            }
            normalize_rows(cast::<T>(&a))
        })
}

/// (c) One-hot rows: row i is e_{π(i)} for a random map π.
pub fn one_hot_family<T: Scalar>() -> impl Strategy<Value = DMatrix<T>> {
    dims()
        .prop_flat_map(|(n, m)| (Just(m), prop::collection::vec(0..m, n)))
        .prop_map(|(m, pi)| one_hot::<T>(&pi, m))
}

/// The one-hot matrix with row i = e_{pi[i]}ᵀ.
pub fn one_hot<T: Scalar>(pi: &[usize], m: usize) -> DMatrix<T> {
    DMatrix::from_fn(
        pi.len(),
        m,
        |i, j| if pi[i] == j { T::one() } else { T::zero() },
    )
}

/// (d) Uniform rows (1/m)·11ᵀ.
pub fn uniform_family<T: Scalar>() -> impl Strategy<Value = DMatrix<T>> {
    dims().prop_map(|(n, m)| uniform::<T>(n, m))
}

/// (1/m)·1_n·1_mᵀ.
pub fn uniform<T: Scalar>(n: usize, m: usize) -> DMatrix<T> {
    DMatrix::from_element(n, m, T::one() / T::from_count(m))
}

/// (e) Causal attention: square softmax with the causal mask (logits in −4..4).
pub fn causal_family<T: Scalar>() -> impl Strategy<Value = DMatrix<T>> {
    (1..=MAX_DIM)
        .prop_flat_map(|n| values(n, n, -4.0..4.0))
        .prop_map(|z| softmax_rows(&cast::<T>(&z), &Mask::causal()).expect("valid logits"))
}

/// (f) Near-duplicate rows: one base distribution plus 1e-6 relative noise.
pub fn near_duplicate_family<T: Scalar>() -> impl Strategy<Value = DMatrix<T>> {
    dims()
        .prop_flat_map(|(n, m)| (values(1, m, 0.1..1.0), values(n, m, -1.0..1.0)))
        .prop_map(|(base, noise)| {
            let (n, m) = noise.shape();
            let a = DMatrix::from_fn(n, m, |i, j| base[(0, j)] * (1.0 + 1e-6 * noise[(i, j)]));
            normalize_rows(cast::<T>(&a))
        })
}

/// (g) Temperature-peaked rows: softmax of logits in −8..8 scaled by 25.
pub fn peaked_family<T: Scalar>() -> impl Strategy<Value = DMatrix<T>> {
    dims()
        .prop_flat_map(|(n, m)| values(n, m, -8.0..8.0))
        .prop_map(|z| softmax_rows(&cast::<T>(&(z * 25.0)), &Mask::none()).expect("valid logits"))
}

/// Any of the row-stochastic families (a)–(g).
pub fn row_stochastic<T: Scalar>() -> impl Strategy<Value = DMatrix<T>> {
    prop_oneof![
        3 => softmax_family::<T>(),
        1 => sparse_family::<T>(),
        1 => one_hot_family::<T>(),
        1 => uniform_family::<T>(),
        2 => causal_family::<T>(),
        1 => near_duplicate_family::<T>(),
        1 => peaked_family::<T>(),
    ]
}

/// A general (not stochastic) matrix with entries in −1..1.
pub fn general<T: Scalar>() -> impl Strategy<Value = DMatrix<T>> {
    dims()
        .prop_flat_map(|(n, m)| values(n, m, -1.0..1.0))
        .prop_map(|a| cast::<T>(&a))
}

/// ‖X‖_F computed in f64.
pub fn fro<T: Scalar>(a: &DMatrix<T>) -> f64 {
    a.iter()
        .map(|x| x.to_f64() * x.to_f64())
        .sum::<f64>()
        .sqrt()
}

/// ‖XᵀX − I‖_F for a matrix with orthonormal columns (computed in f64).
pub fn orthogonality_error<T: Scalar>(x: &DMatrix<T>) -> f64 {
    let x = x.map(|v| v.to_f64());
    let g = x.tr_mul(&x) - DMatrix::<f64>::identity(x.ncols(), x.ncols());
    g.norm()
}

/// Runs a proptest property for f32 and f64 as two tests `f32` and `f64`
/// inside a module named after the property.
#[macro_export]
macro_rules! prop_f32_f64 {
    ($cases:expr, $name:ident, $strategy:ident, $check:ident) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            proptest! {
                #![proptest_config(ProptestConfig::with_cases($cases))]
                #[test]
                fn f32(a in $crate::common::$strategy::<f32>()) { $check::<f32>(a)?; }
                #[test]
                fn f64(a in $crate::common::$strategy::<f64>()) { $check::<f64>(a)?; }
            }
        }
    };
}
