//! Spectral metrics and low-rank truncation of softmax attention matrices.
//!
//! Groups:
//!
//! - `metrics/summarize`: [`summarize`] (a values-only SVD plus every metric)
//!   of dense (`auto`) and causal (`auto-causal`) n×n attention,
//!   n ∈ {64, 256, 512}; ids `<group>/<input>/<n>`, throughput n² elements.
//! - `metrics/from_singular_values`: the spectral functions alone on a
//!   precomputed σ of length k ∈ {1024, 4096}: the whole
//!   [`Summary::from_singular_values`] (`summary`) and single metrics; ids
//!   `<group>/<function>/<k>`, throughput k elements.
//! - `lowrank/truncate`: [`truncate`] (a full SVD, then keeping r
//!   directions) of n = 256 dense attention with r ∈ {1, 8, 32}; ids
//!   `<group>/<backend>/<r>`, throughput n² elements.
//!
//! Attention inputs are A = softmax(QKᵀ/√d), Q and K seeded Gaussian n×64
//! (see `benches/common/mod.rs`); all inputs are built once outside the timed
//! loop.
//!
//! Run with
//!
//! ```text
//! cargo bench --bench metrics                                     # all groups
//! cargo bench --bench metrics -- metrics/summarize                # one group
//! cargo bench --bench metrics -- --quick metrics/from_singular_values
//! cargo bench --bench metrics -- lowrank/truncate
//! ```

mod common;

use attention_svd::metrics::SummaryParams;
use std::hint::black_box;

use attention_svd::lowrank::{rank_for_energy, truncate};
use attention_svd::metrics::{
    RankTolerance, Summary, effective_rank, numerical_rank, stable_rank, summarize,
};
use attention_svd::svd::Backend;
use common::MaskKind;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::Rng;
use rand_distr::StandardNormal;

/// Sizes n of the `metrics/summarize` sweep (ascending).
const SUMMARIZE_SIZES: &[usize] = &[64, 256, 512];

/// Lengths k of the σ vectors of `metrics/from_singular_values`.
const SPECTRUM_LENGTHS: &[usize] = &[1024, 4096];

/// Size n of the `lowrank/truncate` input, and the ranks r kept.
const TRUNCATE_N: usize = 256;
const TRUNCATE_RANKS: &[usize] = &[1, 8, 32];

/// An attention-like spectrum of length k, sorted non-increasing: σ₁ = 1
/// (a row-stochastic matrix has σ₁ ≥ 1, since A·𝟙 = 𝟙)
/// above a seeded bulk |zᵢ|/√k, zᵢ standard normal. Computing the SVD of a
/// 4096×4096 matrix only to obtain σ would dominate the bench's start-up;
/// the spectral functions cost O(k) whatever the values.
fn spectrum(k: usize) -> Vec<f64> {
    let mut rng = common::rng();
    let scale = (k as f64).sqrt();
    let mut sigma: Vec<f64> = (0..k)
        .map(|i| {
            if i == 0 {
                1.0
            } else {
                rng.sample::<f64, _>(StandardNormal).abs() / scale
            }
        })
        .collect();
    sigma.sort_by(|a, b| b.total_cmp(a));
    sigma
}

fn summarize_group(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics/summarize");
    group.plot_config(common::log_scale());
    common::for_each_size(&mut group, SUMMARIZE_SIZES, |group, n| {
        for (name, kind) in [("auto", MaskKind::None), ("auto-causal", MaskKind::Causal)] {
            let a = common::attention::<f64>(n, kind);
            group.bench_with_input(BenchmarkId::new(name, n), &a, |b, a| {
                b.iter(|| {
                    summarize(
                        black_box(a),
                        SummaryParams::default().backend(Backend::Auto),
                    )
                    .expect("the summary of an attention matrix succeeds")
                })
            });
        }
    });
    group.finish();
}

fn from_singular_values_group(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics/from_singular_values");
    group.plot_config(common::log_scale());
    for &k in SPECTRUM_LENGTHS {
        let sigma = spectrum(k);
        group.throughput(Throughput::Elements(k as u64));
        // `from_singular_values` consumes σ: clone it outside the timing.
        group.bench_with_input(BenchmarkId::new("summary", k), &sigma, |b, sigma| {
            b.iter_batched(
                || sigma.clone(),
                |s| {
                    Summary::from_singular_values(s, (k, k), RankTolerance::default())
                        .expect("σ is a spectrum")
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_with_input(BenchmarkId::new("effective_rank", k), &sigma, |b, sigma| {
            b.iter(|| effective_rank(black_box(sigma)).expect("σ is a spectrum"))
        });
        group.bench_with_input(BenchmarkId::new("stable_rank", k), &sigma, |b, sigma| {
            b.iter(|| stable_rank(black_box(sigma)).expect("σ is a spectrum"))
        });
        group.bench_with_input(BenchmarkId::new("numerical_rank", k), &sigma, |b, sigma| {
            b.iter(|| {
                numerical_rank(black_box(sigma), (k, k), RankTolerance::default())
                    .expect("σ is a spectrum")
            })
        });
        group.bench_with_input(
            BenchmarkId::new("rank_for_energy", k),
            &sigma,
            |b, sigma| b.iter(|| rank_for_energy(black_box(sigma), 0.99).expect("σ is a spectrum")),
        );
    }
    group.finish();
}

fn truncate_group(c: &mut Criterion) {
    let mut group = c.benchmark_group("lowrank/truncate");
    let n = TRUNCATE_N;
    // The parameter is r; n is fixed, so the throughput is the same for all.
    group.throughput(Throughput::Elements((n * n) as u64));
    if n >= common::LARGE {
        group.sample_size(10);
    }
    let a = common::attention::<f64>(n, MaskKind::None);
    for &r in TRUNCATE_RANKS {
        for (name, backend) in [("nalgebra", Backend::nalgebra()), ("auto", Backend::Auto)] {
            group.bench_with_input(BenchmarkId::new(name, r), &a, |b, a| {
                b.iter(|| {
                    truncate(black_box(a), black_box(r), backend)
                        .expect("the truncation of an attention matrix succeeds")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    summarize_group,
    from_singular_values_group,
    truncate_group
);
criterion_main!(benches);
