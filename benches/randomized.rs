//! Randomized top-k SVD (k = 32, default parameters) beside the full
//! values-only SVD, on n×n softmax attention.
//!
//! Group `randomized/top32`, ids `randomized/<n>` and `full-values/<n>`,
//! throughput n² elements, n ∈ {256, 1024}. Run with
//!
//! ```text
//! cargo bench --bench randomized
//! ```

mod common;

use std::hint::black_box;

use attention_svd::randomized::{RandomizedParams, randomized_svd};
use attention_svd::svd::{Backend, singular_values};
use common::MaskKind;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn top32(c: &mut Criterion) {
    let mut group = c.benchmark_group("randomized/top32");
    group.plot_config(common::log_scale());
    common::for_each_size(&mut group, &[256, 1024], |group, n| {
        let a = common::attention::<f64>(n, MaskKind::None);
        let params = RandomizedParams::default();
        group.bench_with_input(BenchmarkId::new("randomized", n), &n, |b, _| {
            b.iter(|| randomized_svd(black_box(&a), 32, params).expect("valid input"))
        });
        group.bench_with_input(BenchmarkId::new("full-values", n), &n, |b, _| {
            b.iter(|| singular_values(black_box(&a), Backend::Auto).expect("valid input"))
        });
    });
    group.finish();
}

criterion_group!(benches, top32);
criterion_main!(benches);
