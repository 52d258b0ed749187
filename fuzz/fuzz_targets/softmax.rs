//! `softmax_rows` of arbitrary logits under an arbitrary mask. Ok ⇒ n×m,
//! finite entries in [0, 1], row-stochastic within 4·m·ε, masked entries
//! exactly 0. Any Err is accepted.
#![no_main]

use attention_svd::attention::softmax_rows;
use fuzz_common::*;
use nalgebra::DMatrix;

fuzz_both_precisions!(run);

fn run<T: FuzzFloat>(u: &mut Unstructured) {
    let (n, m) = (dim(u), dim(u));
    let mut logits = matrix::<T>(u, n, m);
    // Sprinkle −∞ (weight 0) and huge logits.
    if flag(u) {
        let extra: DMatrix<u8> = DMatrix::from_fn(n, m, |_, _| byte(u));
        logits.zip_apply(&extra, |x, b| match b {
            0..=31 => *x = T::NEG_INFINITY,
            32..=39 => *x = T::lit(1e30),
            40..=47 => *x = T::lit(-1e30),
            _ => {}
        });
    }
    let mut mask_src = String::new();
    let mask = mask::<T>(u, n, m, &mut mask_src);
    let ctx = || format!("let logits = {};\nlet mask = {};", matrix_literal(&logits), mask_src);
    if verbose() {
        eprintln!("{}", ctx());
    }
    if let Ok(a) = softmax_rows(&logits, &mask) {
        check_attention(&a, &mask, n, m, &ctx);
    }
}
