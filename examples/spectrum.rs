//! The main job for now: attention from seeded random queries and keys,
//! under several masks, and its spectrum and rank metrics.
//!
//! Run with `cargo run --release --example spectrum` (optionally
//! `-- N D SEED`, default 128 64 42).
//!
//! Q and K have i.i.d. standard normal entries (n×d, seeded), so the logits
//! QKᵀ/√d have unit variance. The table shows, per mask, the largest and
//! smallest singular value, the effective, stable and numerical rank, the
//! ranks that capture 90 %, 99 % and 99.9 % of Σσ², the condition number,
//! the largest row-sum deviation |Σⱼ aᵢⱼ − 1|, and which SVD backend `Auto`
//! ended up using.

use attention_svd::attention::Scale;
use attention_svd::attention::{Mask, scaled_dot_product};
use attention_svd::lowrank::cumulative_energy;
use attention_svd::metrics::RankTolerance;
use attention_svd::metrics::Summary;
use attention_svd::stochastic::StochasticParams;
use attention_svd::stochastic::check_stochastic;
use attention_svd::stochastic::max_row_sum_deviation;
use attention_svd::svd::{Backend, svd};
use attention_svd::{Error, Scalar};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

fn gaussian(rng: &mut StdRng, n: usize, d: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, d, |_, _| StandardNormal.sample(rng))
}

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .map(|s| s.parse().expect("arguments are N D SEED (integers)"))
        .unwrap_or(default)
}

/// One table row: the summary of softmax(QKᵀ/√d + mask) in precision `T`.
fn row<T: Scalar>(
    label: &str,
    q: &DMatrix<f64>,
    k: &DMatrix<f64>,
    mask: &Mask<T>,
) -> Result<Vec<T>, Error> {
    let a = scaled_dot_product(&q.map(T::lit), &k.map(T::lit), mask, Scale::default())?;
    check_stochastic(&a, StochasticParams::row())?;
    let f = svd(&a, Backend::Auto)?;
    let (n, m) = a.shape();
    let sigma = f.singular_values().to_vec();
    let s = Summary::from_singular_values(sigma.clone(), (n, m), RankTolerance::default())?;
    println!(
        "{label:<18} {:>4} {:>8.4} {:>9.2e} {:>7.2} {:>6.2} {:>5} {:>4} {:>4} {:>5} {:>9.2e} {:>9.1e}  {}",
        T::NAME,
        s.spectral_norm.to_f64(),
        sigma[sigma.len() - 1].to_f64(),
        s.effective_rank.to_f64(),
        s.stable_rank.to_f64(),
        s.numerical_rank,
        s.energy_rank_90,
        s.energy_rank_99,
        s.energy_rank_999,
        s.condition_number.to_f64(),
        max_row_sum_deviation(&a)?.to_f64(),
        f.method(),
    );
    Ok(sigma)
}

fn main() -> Result<(), Error> {
    let n = arg(1, 128) as usize;
    let d = arg(2, 64) as usize;
    let seed = arg(3, 42);
    let mut rng = StdRng::seed_from_u64(seed);
    let q = gaussian(&mut rng, n, d);
    let k = gaussian(&mut rng, n, d);

    println!("attention-svd: softmax(QKᵀ/√d + mask), Q, K ~ N(0, 1) of size {n}×{d}, seed {seed}");
    println!();
    println!(
        "{:<18} {:>4} {:>8} {:>9} {:>7} {:>6} {:>5} {:>4} {:>4} {:>5} {:>9} {:>9}  svd",
        "mask",
        "type",
        "σ₁",
        "σ_min",
        "erank",
        "srank",
        "rank",
        "r90",
        "r99",
        "r999",
        "κ₂",
        "row dev"
    );
    row::<f64>("none", &q, &k, &Mask::none())?;
    let causal = row::<f64>("causal", &q, &k, &Mask::causal())?;
    row::<f32>("causal", &q, &k, &Mask::causal())?;
    row::<f64>("sliding window 16", &q, &k, &Mask::sliding_window(16))?;
    let padding: Vec<bool> = (0..n).map(|j| j < n - n / 4).collect();
    row::<f64>(
        "causal + padding",
        &q,
        &k,
        &Mask::causal().and(Mask::key_padding(padding)),
    )
    .or_else(|e| match e {
        // With causal masking the first query sees only key 0, so padding
        // never empties a row here; report anything else.
        Error::FullyMaskedRow { row } => {
            println!("causal + padding: row {row} fully masked");
            Ok(Vec::new())
        }
        other => Err(other),
    })?;

    // Causal attention is lower-triangular with a positive diagonal, so it is
    // nonsingular in exact arithmetic (docs/THEORY.md, T3); its determinant
    // can nevertheless be far below what floating point resolves.
    let a = scaled_dot_product(&q, &k, &Mask::<f64>::causal(), Scale::default())?;
    let log_det: f64 = (0..n).map(|i| a[(i, i)].log10()).sum();
    let floor = causal[0] * n as f64 * f64::EPSILON;
    let below = causal.iter().filter(|&&s| s <= floor).count();
    println!();
    println!(
        "causal, f64: det A = Π aᵢᵢ = 10^{log_det:.1} > 0 (nonsingular), but {below} of {n} \
         singular values lie below the round-off floor σ₁·n·ε = {floor:.2e}"
    );
    println!();
    println!("causal, f64: normalised spectrum σᵢ/σ₁ and cumulative energy E(i)");
    let energy = cumulative_energy(&causal)?;
    let shown: Vec<usize> = [1, 2, 3, 4, 5, 8, 16, 32, 64, 128, 256, 512]
        .into_iter()
        .filter(|&i| i <= causal.len())
        .collect();
    for i in shown {
        println!(
            "  i = {i:>4}   σᵢ/σ₁ = {:>9.3e}   E(i) = {:.6}",
            causal[i - 1] / causal[0],
            energy[i - 1]
        );
    }
    Ok(())
}
