//! `analysis::analyze` on small arbitrary stacks (f32 and f64 storage, both
//! precisions, every backend), plus `Stack::new` / `Stack::from_matrices`
//! with arbitrary (including huge) shapes.
//!
//! Ok ⇒ every number of the report is finite, one summary per head and per
//! layer.
#![no_main]

use attention_svd::Precision;
use attention_svd::analysis::{analyze, ModelReport, AnalysisParams};
use attention_svd::Stack;
use fuzz_common::*;
use nalgebra::DMatrix;

fuzz_both_precisions!(run);

fn count(u: &mut Unstructured) -> usize {
    match byte(u) {
        0..=7 => 0,
        8..=239 => 1 + (byte(u) % 3) as usize,
        240..=247 => u.arbitrary::<usize>().unwrap_or(0),
        _ => usize::MAX,
    }
}

fn run<T: FuzzFloat>(u: &mut Unstructured) {
    let (l, h) = (count(u), count(u));
    let (n, m) = (dim(u) % 9, dim(u) % 9);
    let precision = if flag(u) { Precision::F64 } else { Precision::F32 };
    let backend = backend(u);
    let options = AnalysisParams::default().precision(precision).backend(backend);
    let heads = l.saturating_mul(h).min(9);
    let mats: Vec<DMatrix<T>> = (0..heads).map(|_| matrix::<T>(u, n, m)).collect();
    let ctx = || {
        let ms: Vec<String> = mats.iter().map(matrix_literal).collect();
        format!(
            "let layers = {l}usize;\nlet heads = {h}usize;\nlet matrices = vec![{}];\nlet options = AnalysisParams::default().precision(Precision::{precision:?}).backend({backend:?});",
            ms.join(",\n    ")
        )
    };
    if verbose() {
        eprintln!("{}", ctx());
    }
    // Both constructors must reject bad shapes with a typed error.
    let data: Vec<T> = mats.iter().flat_map(row_major).collect();
    let _ = Stack::new([l, h, n, m], data);
    let stack = match Stack::from_matrices(l, h, &mats) {
        Ok(s) => s,
        Err(_) => return,
    };
    if let Ok(report) = analyze(&stack, options) {
        check(&report, l, h, &ctx);
    }
}

fn check(r: &ModelReport, l: usize, h: usize, ctx: &dyn Fn() -> String) {
    ensure!(r.heads.len() == l * h, ctx, "{} head summaries", r.heads.len());
    ensure!(r.layers.len() == l, ctx, "{} layer summaries", r.layers.len());
    for hs in &r.heads {
        let k = hs.n.min(hs.m);
        for (name, x) in [
            ("sigma_max", hs.sigma_max),
            ("sigma_min", hs.sigma_min),
            ("noise_floor", hs.noise_floor),
            ("effective_rank", hs.effective_rank),
            ("stable_rank", hs.stable_rank),
            ("max_row_sum_deviation", hs.max_row_sum_deviation),
            ("frobenius_norm", hs.frobenius_norm),
            ("nuclear_norm", hs.nuclear_norm),
        ] {
            ensure!(x.is_finite(), ctx, "head ({}, {}): {name} = {x:?}", hs.layer, hs.head);
        }
        ensure!(
            hs.singular_values.len() == k && hs.singular_values.iter().all(|x| x.is_finite()),
            ctx,
            "head ({}, {}): singular values {:?}",
            hs.layer,
            hs.head,
            hs.singular_values
        );
        for (name, rank) in [
            ("numerical_rank", hs.numerical_rank),
            ("energy_rank_90", hs.energy_rank_90),
            ("energy_rank_99", hs.energy_rank_99),
            ("energy_rank_999", hs.energy_rank_999),
        ] {
            ensure!(rank <= k, ctx, "head ({}, {}): {name} = {rank} > {k}", hs.layer, hs.head);
        }
    }
    for ls in &r.layers {
        for (name, s) in [
            ("sigma_max", &ls.sigma_max),
            ("sigma_min", &ls.sigma_min),
            ("effective_rank", &ls.effective_rank),
            ("stable_rank", &ls.stable_rank),
            ("numerical_rank", &ls.numerical_rank),
            ("energy_rank_90", &ls.energy_rank_90),
            ("energy_rank_99", &ls.energy_rank_99),
            ("energy_rank_999", &ls.energy_rank_999),
        ] {
            // Every aggregate is finite (the median once overflowed; see
            // fuzz/regressions/analysis/stats_median_overflow).
            ensure!(
                s.median.is_finite() && s.min.is_finite() && s.max.is_finite(),
                ctx,
                "layer {}: {name} = {s:?}",
                ls.layer
            );
        }
        ensure!(
            ls.max_row_sum_deviation.is_finite(),
            ctx,
            "layer {}: max_row_sum_deviation = {:?}",
            ls.layer,
            ls.max_row_sum_deviation
        );
    }
}
