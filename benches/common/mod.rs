//! Shared, seeded inputs and size handling for the criterion benches.
//!
//! Every input is attention-like: A = softmax(QKᵀ/√d + mask) computed with the
//! crate's own [`scaled_dot_product`] from Gaussian Q, K (n×d, d = 64,
//! entries drawn from `StandardNormal` with `StdRng::seed_from_u64(42)`).
//! The same f64 draws are rounded to f32 for the f32 variants, so both
//! precisions see the same matrix.

// Each bench binary compiles this module and uses only part of it.
#![allow(dead_code)]

use attention_svd::Scalar;
use attention_svd::attention::Scale;
use attention_svd::attention::{Mask, scaled_dot_product};
use criterion::measurement::Measurement;
use criterion::{AxisScale, BenchmarkGroup, PlotConfiguration, Throughput};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// Seed of every random input.
pub const SEED: u64 = 42;

/// Head dimension d of Q and K.
pub const HEAD_DIM: usize = 64;

/// From this size on a group runs with `sample_size(10)`: one iteration of an
/// O(n³) routine takes tens of milliseconds or more, and 100 samples would
/// make a single benchmark run for minutes.
pub const LARGE: usize = 256;

/// The seeded generator all inputs are drawn from.
pub fn rng() -> StdRng {
    StdRng::seed_from_u64(SEED)
}

/// A rows×cols matrix of independent standard normal entries.
pub fn gaussian<T: Scalar>(rng: &mut StdRng, rows: usize, cols: usize) -> DMatrix<T> {
    DMatrix::from_fn(rows, cols, |_, _| {
        T::lit(rng.sample::<f64, _>(StandardNormal))
    })
}

/// Seeded Gaussian queries and keys, both n×d with d = [`HEAD_DIM`].
pub fn queries_keys<T: Scalar>(n: usize) -> (DMatrix<T>, DMatrix<T>) {
    let mut rng = rng();
    let q = gaussian(&mut rng, n, HEAD_DIM);
    let k = gaussian(&mut rng, n, HEAD_DIM);
    (q, k)
}

/// The attention logits QKᵀ/√d of [`queries_keys`], n×n.
pub fn logits<T: Scalar>(n: usize) -> DMatrix<T> {
    let (q, k) = queries_keys::<T>(n);
    (q * k.transpose()) / T::from_count(HEAD_DIM).sqrt()
}

/// The masks the attention benches compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskKind {
    /// Every query attends to every key.
    None,
    /// Query i attends to keys j ≤ i.
    Causal,
    /// Causal, and the last 10% of the keys are padding.
    CausalPadding,
}

impl MaskKind {
    /// All kinds, in the order they appear in reports.
    pub const ALL: [MaskKind; 3] = [MaskKind::None, MaskKind::Causal, MaskKind::CausalPadding];

    /// The name used in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            MaskKind::None => "none",
            MaskKind::Causal => "causal",
            MaskKind::CausalPadding => "causal+padding",
        }
    }

    /// The mask for n queries and n keys. Key 0 is never padding, so no row
    /// is fully masked.
    pub fn mask<T: Scalar>(self, n: usize) -> Mask<T> {
        match self {
            MaskKind::None => Mask::none(),
            MaskKind::Causal => Mask::causal(),
            MaskKind::CausalPadding => {
                let valid = n - n / 10;
                let keys = (0..n).map(|j| j < valid).collect();
                Mask::causal().and(Mask::key_padding(keys))
            }
        }
    }
}

/// The n×n attention matrix softmax(QKᵀ/√d + mask) of [`queries_keys`].
pub fn attention<T: Scalar>(n: usize, kind: MaskKind) -> DMatrix<T> {
    let (q, k) = queries_keys::<T>(n);
    scaled_dot_product(&q, &k, &kind.mask(n), Scale::default())
        .expect("seeded attention input is valid")
}

/// A log-scale summary plot, for groups whose parameter grows geometrically.
pub fn log_scale() -> PlotConfiguration {
    PlotConfiguration::default().summary_scale(AxisScale::Logarithmic)
}

/// Runs `bench(group, n)` for each size, after declaring the throughput of an
/// n×n input (n² elements) and, from n = [`LARGE`] on, `sample_size(10)`.
///
/// Criterion reads a group's configuration when each benchmark starts, so the
/// sample size can change between sizes; but it cannot be reset to the
/// default, so `sizes` must be ascending.
pub fn for_each_size<M: Measurement>(
    group: &mut BenchmarkGroup<'_, M>,
    sizes: &[usize],
    mut bench: impl FnMut(&mut BenchmarkGroup<'_, M>, usize),
) {
    assert!(sizes.is_sorted(), "sizes must be ascending: {sizes:?}");
    for &n in sizes {
        group.throughput(Throughput::Elements((n * n) as u64));
        if n >= LARGE {
            group.sample_size(10);
        }
        bench(group, n);
    }
}
