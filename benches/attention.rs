//! Masked softmax attention: computing A = softmax(QKᵀ/√d + mask).
//!
//! Groups (benchmark ids are `<group>/<mask>-<type>/<n>`, e.g.
//! `attention/scaled_dot_product/causal-f32/256`, throughput n² elements):
//!
//! - `attention/scaled_dot_product`: [`scaled_dot_product`] from Q, K (n×64),
//!   i.e. the QKᵀ product plus the masked softmax.
//! - `attention/softmax_rows`: [`softmax_rows`] alone, on the precomputed
//!   n×n logits QKᵀ/√d.
//!
//! - `attention/into`: [`scaled_dot_product`] (`fresh-…`, a new n×n result
//!   per call) against [`scaled_dot_product_into`] (`into-…`, one buffer
//!   reused), unmasked and causal, at n ∈ {1024, 2048}: what the fresh
//!   result's allocation and first-touch page faults cost.
//!
//! The first two run at n ∈ {64, 256, 1024} with the masks `none`, `causal` and
//! `causal+padding` (causal, and the last 10% of the keys are padding), in
//! f32 and f64. Q and K are seeded Gaussian (see `benches/common/mod.rs`);
//! every input is built once outside the timed loop.
//!
//! Run with
//!
//! ```text
//! cargo bench --bench attention                                  # all groups
//! cargo bench --bench attention -- attention/softmax_rows        # one group
//! cargo bench --bench attention -- 'scaled_dot_product/causal-'  # causal masks only
//! cargo bench --bench attention -- --quick '/64$'                # smallest size, quick mode
//! ```

mod common;

use attention_svd::attention::Scale;
use std::hint::black_box;

use attention_svd::Scalar;
use attention_svd::attention::{scaled_dot_product, scaled_dot_product_into, softmax_rows};
use common::MaskKind;
use criterion::measurement::Measurement;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use nalgebra::DMatrix;

/// Sizes of the size sweeps (ascending, see [`common::for_each_size`]).
const SIZES: &[usize] = &[64, 256, 1024];

/// The benchmark name of a mask kind in type `T`: `none-f32`, `causal-f64`.
fn id_name<T: Scalar>(kind: MaskKind) -> String {
    format!("{}-{}", kind.name(), T::NAME)
}

/// `scaled_dot_product` at size n for every mask kind, in type `T`.
fn bench_scaled_dot_product<T: Scalar, M: Measurement>(
    group: &mut BenchmarkGroup<'_, M>,
    n: usize,
) {
    let (q, k) = common::queries_keys::<T>(n);
    for kind in MaskKind::ALL {
        let input = (&q, &k, kind.mask::<T>(n));
        group.bench_with_input(
            BenchmarkId::new(id_name::<T>(kind), n),
            &input,
            |b, (q, k, mask)| {
                b.iter(|| {
                    scaled_dot_product(
                        black_box(*q),
                        black_box(*k),
                        black_box(mask),
                        Scale::default(),
                    )
                    .expect("seeded attention input is valid")
                })
            },
        );
    }
}

/// `softmax_rows` of the precomputed logits at size n for every mask kind,
/// in type `T`.
fn bench_softmax_rows<T: Scalar, M: Measurement>(group: &mut BenchmarkGroup<'_, M>, n: usize) {
    let logits = common::logits::<T>(n);
    for kind in MaskKind::ALL {
        let input = (&logits, kind.mask::<T>(n));
        group.bench_with_input(
            BenchmarkId::new(id_name::<T>(kind), n),
            &input,
            |b, (logits, mask)| {
                b.iter(|| {
                    softmax_rows(black_box(*logits), black_box(mask))
                        .expect("seeded logits are valid")
                })
            },
        );
    }
}

fn scaled_dot_product_group(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention/scaled_dot_product");
    group.plot_config(common::log_scale());
    common::for_each_size(&mut group, SIZES, |group, n| {
        bench_scaled_dot_product::<f32, _>(group, n);
        bench_scaled_dot_product::<f64, _>(group, n);
    });
    group.finish();
}

fn softmax_rows_group(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention/softmax_rows");
    group.plot_config(common::log_scale());
    common::for_each_size(&mut group, SIZES, |group, n| {
        bench_softmax_rows::<f32, _>(group, n);
        bench_softmax_rows::<f64, _>(group, n);
    });
    group.finish();
}

/// A fresh result per call against one reused buffer, at size n, in `T`.
fn bench_into<T: Scalar, M: Measurement>(group: &mut BenchmarkGroup<'_, M>, n: usize) {
    let (q, k) = common::queries_keys::<T>(n);
    for kind in [MaskKind::None, MaskKind::Causal] {
        let mask = kind.mask::<T>(n);
        group.bench_function(
            BenchmarkId::new(format!("fresh-{}", id_name::<T>(kind)), n),
            |b| {
                b.iter(|| {
                    scaled_dot_product(black_box(&q), black_box(&k), &mask, Scale::default())
                        .expect("seeded attention input is valid")
                })
            },
        );
        let mut out = DMatrix::<T>::zeros(n, n);
        group.bench_function(
            BenchmarkId::new(format!("into-{}", id_name::<T>(kind)), n),
            |b| {
                b.iter(|| {
                    scaled_dot_product_into(
                        black_box(&q),
                        black_box(&k),
                        &mask,
                        Scale::default(),
                        &mut out,
                    )
                    .expect("seeded attention input is valid")
                })
            },
        );
    }
}

fn into_group(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention/into");
    common::for_each_size(&mut group, &[1024, 2048], |group, n| {
        bench_into::<f32, _>(group, n);
        bench_into::<f64, _>(group, n);
    });
    group.finish();
}

criterion_group!(
    benches,
    scaled_dot_product_group,
    softmax_rows_group,
    into_group
);
criterion_main!(benches);
