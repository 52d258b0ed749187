//! KV-cache compression fidelity of one head (n = m = 1024, d = d_v = 64):
//! the full sweep r = 1..=d of every method (`compression::head_fidelity`,
//! fitted and evaluated on the same seeded Gaussian head, so each set is
//! evaluated twice: in-sample and held-out), beside one
//! `scaled_dot_product` of that size, the unit of the ratios in
//! docs/PERFORMANCE.md (an exact sweep costs at least 2·d products of the
//! size of A·V per evaluation set).
//!
//! Group `compress/sweep`, throughput n² elements. Run with
//!
//! ```text
//! cargo bench --bench compress -- --warm-up-time 1 --measurement-time 5
//! ```

mod common;

use std::hint::black_box;

use attention_svd::attention::{Mask, Scale, scaled_dot_product};
use attention_svd::compression::{Method, Qkv, head_fidelity};
use attention_svd::svd::Backend;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn sweep(c: &mut Criterion) {
    let mut group = c.benchmark_group("compress/sweep");
    common::for_each_size(&mut group, &[1024], |group, n| {
        let (q, k) = common::queries_keys::<f64>(n);
        let v = common::gaussian::<f64>(&mut common::rng(), n, common::HEAD_DIM);
        group.bench_with_input(BenchmarkId::new("scaled_dot_product", n), &n, |b, _| {
            b.iter(|| {
                scaled_dot_product(
                    black_box(&q),
                    black_box(&k),
                    &Mask::none(),
                    Scale::default(),
                )
                .expect("valid input")
            })
        });
        let x = Qkv::new(&q, &k, &v);
        for (name, methods) in [
            ("all_methods", &Method::ALL[..]),
            (
                "key_methods",
                &[Method::KeyOnly, Method::KqSvd, Method::KeysAndValues][..],
            ),
            ("attention_truncation", &[Method::AttentionTruncation][..]),
        ] {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    head_fidelity(
                        std::slice::from_ref(black_box(&x)),
                        std::slice::from_ref(&x),
                        &Mask::none(),
                        Scale::default(),
                        methods,
                        Backend::Auto,
                    )
                    .expect("valid input")
                })
            });
        }
    });
    group.finish();
}

criterion_group!(benches, sweep);
criterion_main!(benches);
