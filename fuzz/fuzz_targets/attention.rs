//! Attention from arbitrary Q/K/mask bytes: `scaled_dot_product_with_scale`
//! and `multi_head`. Ok ⇒ n×m, finite entries in [0, 1], row-stochastic
//! within 4·m·ε, masked entries exactly 0. Any Err is accepted.
#![no_main]

use attention_svd::attention::Scale;
use attention_svd::attention::scaled_dot_product;
use attention_svd::attention::multi_head;
use fuzz_common::*;

fuzz_both_precisions!(run);

fn run<T: FuzzFloat>(u: &mut Unstructured) {
    let (n, m, d) = (dim(u), dim(u), dim(u));
    let q = matrix::<T>(u, n, d);
    // Sometimes a key width that does not match (a typed error).
    let kd = if byte(u) < 240 { d } else { dim(u) };
    let k = matrix::<T>(u, m, kd);
    let mut mask_src = String::new();
    let mask = mask::<T>(u, n, m, &mut mask_src);
    let scale = match byte(u) % 4 {
        0 if d > 0 => T::one() / T::from_count(d).sqrt(),
        1 => T::zero(),
        _ => float(u),
    };
    let heads = match byte(u) % 4 {
        0 => 1,
        1 => (byte(u) % 13) as usize,
        _ => (1..=d.max(1)).filter(|h| d % h == 0).nth((byte(u) % 4) as usize).unwrap_or(1),
    };
    let ctx = || {
        format!(
            "let q = {};\nlet k = {};\nlet mask = {};\nlet scale: {} = {};\nlet heads = {heads};",
            matrix_literal(&q),
            matrix_literal(&k),
            mask_src,
            T::RUST,
            scale.literal()
        )
    };
    if verbose() {
        eprintln!("{}", ctx());
    }

    if let Ok(a) = scaled_dot_product(&q, &k, &mask, Scale::fixed(scale)) {
        check_attention(&a, &mask, n, m, &ctx);
    }
    if let Ok(ws) = multi_head(&q, &k, heads, &mask, Scale::default()) {
        ensure!(ws.len() == heads, ctx, "multi_head returned {} heads, not {heads}", ws.len());
        for a in &ws {
            check_attention(a, &mask, n, m, &ctx);
        }
    }
}
