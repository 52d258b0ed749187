//! Relative accuracy of σ_min on graded matrices A = B·D at the sizes where
//! the Jacobi backend runs its preconditioned, blocked path (the accuracy
//! suite's graded table stops at n = 20).
//!
//! ```text
//! cargo run --release --example jacobi_graded
//! ```
//!
//! B = Q₁·diag(c)·Q₂ᵀ with Haar-random Q₁, Q₂ and c evenly spaced in [1, 10]
//! (κ₂(B) = 10); D = diag(dⱼ) geometric from 1e-1 down to `d_min`, placed in
//! decreasing, increasing or random column order. The reference
//! σ_min(A) = 1/σ_max(D⁻¹·B⁻¹), with B⁻¹ from an LU factorisation of the
//! stored B (a largest singular value is relatively accurate from any
//! backward-stable SVD). Worst relative error of 3 matrices per row.

use attention_svd::svd::{Backend, singular_values};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};

fn haar(n: usize, rng: &mut StdRng) -> DMatrix<f64> {
    let g = DMatrix::from_fn(n, n, |_, _| {
        <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)
    });
    g.qr().q()
}

fn main() {
    let other = if cfg!(feature = "faer") {
        "faer"
    } else {
        "nalgebra"
    };
    println!("| D order | n | D range | Jacobi rel. err of σ_min | {other} rel. err |");
    println!("|:--|--:|--:|--:|--:|");
    for order in ["decreasing", "increasing", "random"] {
        for n in [64, 128, 256] {
            for d_min in [1e-5, 1e-10, 1e-15] {
                let mut worst = [0.0f64; 2];
                for seed in 0..3u64 {
                    let mut rng = StdRng::seed_from_u64(1000 * n as u64 + seed);
                    let (q1, q2) = (haar(n, &mut rng), haar(n, &mut rng));
                    let c = DMatrix::from_diagonal(&nalgebra::DVector::from_fn(n, |i, _| {
                        1.0 + 9.0 * i as f64 / (n - 1) as f64
                    }));
                    let b = &q1 * c * q2.transpose();
                    let mut d: Vec<f64> = (0..n)
                        .map(|j| 1e-1 * (d_min / 1e-1f64).powf(j as f64 / (n - 1) as f64))
                        .collect();
                    match order {
                        "increasing" => d.reverse(),
                        "random" => d.shuffle(&mut rng),
                        _ => {}
                    }
                    let a = DMatrix::from_fn(n, n, |i, j| b[(i, j)] * d[j]);
                    let binv = b.clone().lu().try_inverse().expect("B is invertible");
                    let ainv = DMatrix::from_fn(n, n, |i, j| binv[(i, j)] / d[i]);
                    let smax_inv = ainv.singular_values().max();
                    let reference = 1.0 / smax_inv;
                    #[cfg(feature = "faer")]
                    let backends = [Backend::jacobi(), Backend::Faer];
                    #[cfg(not(feature = "faer"))]
                    let backends = [Backend::jacobi(), Backend::nalgebra()];
                    for (k, backend) in backends.into_iter().enumerate() {
                        let s = singular_values(&a, backend).expect("converges");
                        let err = ((s[n - 1] - reference) / reference).abs();
                        worst[k] = worst[k].max(err);
                    }
                }
                println!(
                    "| {order} | {n} | 1e-1 … {d_min:.0e} | {:.1e} | {:.1e} |",
                    worst[0], worst[1]
                );
            }
        }
    }
}
