//! The SVD of the logits s·QKᵀ (Q, K n×64): from the thin factors
//! (`logits::factored_svd`, O(n·d²)) beside the values-only SVD of the
//! formed n×n product (`svd::singular_values`, O(n³)).
//!
//! Group `logits/svd_of_qk`, ids `factored/<n>` and `dense/<n>`, throughput
//! n² elements, n ∈ {64, 256, 1024}. Run with
//!
//! ```text
//! cargo bench --bench logits
//! ```

mod common;

use attention_svd::attention::Scale;
use attention_svd::logits::LogitParams;
use std::hint::black_box;

use attention_svd::logits::factored_svd;
use attention_svd::svd::{Backend, singular_values};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn svd_of_qk(c: &mut Criterion) {
    let mut group = c.benchmark_group("logits/svd_of_qk");
    group.plot_config(common::log_scale());
    common::for_each_size(&mut group, &[64, 256, 1024], |group, n| {
        let (q, k) = common::queries_keys::<f64>(n);
        let scale = 1.0 / (common::HEAD_DIM as f64).sqrt();
        group.bench_with_input(BenchmarkId::new("factored", n), &n, |b, _| {
            b.iter(|| {
                factored_svd(
                    black_box(&q),
                    black_box(&k),
                    LogitParams::default().scale(Scale::fixed(scale)),
                )
                .expect("valid input")
            })
        });
        let z = common::logits::<f64>(n);
        group.bench_with_input(BenchmarkId::new("dense", n), &n, |b, _| {
            b.iter(|| singular_values(black_box(&z), Backend::Auto).expect("valid input"))
        });
    });
    group.finish();
}

criterion_group!(benches, svd_of_qk);
criterion_main!(benches);
