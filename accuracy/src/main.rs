//! The LAPACK-style accuracy table of the SVD backends (`docs/ACCURACY.md`).
//!
//! Run with `cargo run --release -p attention-svd-accuracy`.
//!
//! For every matrix family (LAPACK's xDRVBD families plus attention
//! matrices), shape, precision and backend it computes LAPACK's test ratios
//! (reconstruction, orthogonality of U and V, order and sign of σ,
//! values-only σ against σ with vectors) and prints the worst ratio per
//! family and backend; LAPACK's pass threshold is 50. It then prints the
//! relative error of σ_min on graded matrices A = B·D (Demmel–Veselić).
//! The test `accuracy` in the integration suite asserts on the same runs.

use std::time::Instant;

use attention_svd_accuracy::{
    GRADED_KAPPA_B, GRADED_TRIALS, THRESHOLD, backend_name, fmt_ratio, graded, graded_table,
    nalgebra, ratio_table, run,
};

fn main() {
    let start = Instant::now();
    let reports = [run::<f32>(), run::<f64>()];
    println!(
        "Worst LAPACK test ratio per family and backend (pass: < {THRESHOLD}; \
         \"(k✗, e err)\": k matrices at or above it, e of them errors).\nAuto→Jacobi: matrices on which Auto \
         fell back to Jacobi (in parentheses: on which nalgebra's run with vectors \
         failed; each needs a fallback where Auto runs nalgebra first, max(n, m) ≤ 32).\n"
    );
    print!("{}", ratio_table(&reports));
    println!();
    for r in &reports {
        let cases: usize = r.families.iter().map(|f| f.cases).sum();
        let fallbacks: usize = r.families.iter().map(|f| f.fallbacks).sum();
        let wrong: usize = r
            .families
            .iter()
            .map(|f| f.nalgebra_wrong_with_vectors)
            .sum();
        let over: usize = r
            .families
            .iter()
            .map(|f| f.over_threshold[nalgebra()])
            .sum();
        let errors: usize = r.families.iter().map(|f| f.errors[nalgebra()]).sum();
        let missed: usize = r.families.iter().map(|f| f.missed_fallbacks.len()).sum();
        println!(
            "{}: {cases} matrices; nalgebra ≥ {THRESHOLD} on {over} ({wrong} with vectors, \
             {errors} errors); Auto fell back on {fallbacks}, missed {missed}; \
             Jacobi/Auto/faer ratios ≥ {THRESHOLD}: {}",
            r.type_name,
            r.violations.len()
        );
        for v in &r.violations {
            println!("  {v}");
        }
        for f in &r.families {
            if f.over_threshold[nalgebra()] > 0 {
                println!(
                    "  worst {}: {} {}",
                    backend_name(nalgebra()),
                    fmt_ratio(f.worst[nalgebra()]),
                    f.worst_at[nalgebra()]
                );
            }
        }
    }
    println!(
        "\nσ_min relative error on A = B·D (f64), κ(B) = {GRADED_KAPPA_B}, \
         worst of {GRADED_TRIALS} matrices per row:\n"
    );
    print!("{}", graded_table(&graded()));
    eprintln!("({:.1} s)", start.elapsed().as_secs_f64());
}
