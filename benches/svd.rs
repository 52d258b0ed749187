//! SVD of n×n softmax attention matrices, backends side by side.
//!
//! Groups (benchmark ids are `<group>/<backend>[-causal]/<n>`, throughput n²
//! elements):
//!
//! - `svd/full`: [`svd`] (U, σ, Vᵀ) of dense attention, n ∈ {64, …, 1024}.
//! - `svd/values`: [`singular_values`] only, of dense (`jacobi`, `nalgebra`,
//!   `faer`, `auto`) and causal (`…-causal`, lower-triangular) attention.
//! - `svd/values-f32`: [`singular_values`] in f32 at n = 256, to set beside
//!   `svd/values/*/256` (the same matrix in f64).
//!
//! For the comparison with numpy/LAPACK on the same inputs see
//! `cargo run --release --example perf` (`docs/PERFORMANCE.md`); these
//! benches track the crate's own regressions.
//!
//! Inputs are A = softmax(QKᵀ/√d), Q and K seeded Gaussian n×64 (see
//! `benches/common/mod.rs`), built once outside the timed loop.
//!
//! Run with
//!
//! ```text
//! cargo bench --bench svd                          # all groups (slow: Jacobi at n = 512)
//! cargo bench --bench svd -- svd/full              # one group
//! cargo bench --bench svd -- 'svd/values/auto/'    # one backend
//! cargo bench --bench svd -- --quick '/64$'        # smallest size only, quick mode
//! ```

mod common;

use std::hint::black_box;

use attention_svd::svd::{Backend, singular_values, svd};
use attention_svd::{Result, Scalar};
use common::MaskKind;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use nalgebra::DMatrix;

/// Sizes of the size sweeps (ascending, see [`common::for_each_size`]).
const SIZES: &[usize] = &[64, 128, 256, 512, 1024];

/// Largest n at which Jacobi runs. One-sided Jacobi costs O(sweeps·n³) with
/// a sweep count that itself grows slowly with n, so each doubling of n
/// multiplies its time by eight or more: at n = 1024 it would dominate the
/// run time of the whole suite.
const JACOBI_MAX_N: usize = 512;

/// The backends compared at size n: Jacobi only up to [`JACOBI_MAX_N`].
/// The list is the crate's own, [`Backend::all`].
fn backends(n: usize) -> Vec<(&'static str, Backend)> {
    Backend::all()
        .iter()
        .filter(|b| n <= JACOBI_MAX_N || !matches!(b, Backend::Jacobi(_)))
        .map(|&b| (b.name(), b))
        .collect()
}

/// The benchmark name of `backend` on input `kind`: `auto`, `auto-causal`.
fn id_name(backend: &str, kind: MaskKind) -> String {
    match kind {
        MaskKind::None => backend.to_owned(),
        _ => format!("{backend}-{}", kind.name()),
    }
}

/// Benchmarks `routine` for every backend, input kind and size in one group.
fn compare_backends<T: Scalar, R>(
    c: &mut Criterion,
    group_name: &str,
    sizes: &[usize],
    kinds: &[MaskKind],
    routine: fn(&DMatrix<T>, Backend) -> Result<R>,
) {
    let mut group = c.benchmark_group(group_name);
    group.plot_config(common::log_scale());
    common::for_each_size(&mut group, sizes, |group, n| {
        for &kind in kinds {
            let a = common::attention::<T>(n, kind);
            for (backend_name, backend) in backends(n) {
                let id = BenchmarkId::new(id_name(backend_name, kind), n);
                group.bench_with_input(id, &a, |b, a| {
                    b.iter(|| {
                        routine(black_box(a), black_box(backend))
                            .expect("the SVD of an attention matrix succeeds")
                    })
                });
            }
        }
    });
    group.finish();
}

fn full(c: &mut Criterion) {
    compare_backends::<f64, _>(c, "svd/full", SIZES, &[MaskKind::None], svd);
}

fn values(c: &mut Criterion) {
    let kinds = [MaskKind::None, MaskKind::Causal];
    compare_backends::<f64, _>(c, "svd/values", SIZES, &kinds, singular_values);
}

fn values_f32(c: &mut Criterion) {
    compare_backends::<f32, _>(
        c,
        "svd/values-f32",
        &[256],
        &[MaskKind::None],
        singular_values,
    );
}

criterion_group!(benches, full, values, values_f32);
criterion_main!(benches);
