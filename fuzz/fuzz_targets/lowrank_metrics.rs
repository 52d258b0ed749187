//! Every function of `lowrank` and `metrics` on arbitrary spectra (sorted or
//! not, with NaN/±∞/subnormals/extremes) and arbitrary ranks, energy targets
//! and tolerances, plus `summarize` on a small arbitrary matrix.
//!
//! Ok ⇒ no NaN (condition_number may be +∞, as documented), ranks ≤ len,
//! energies in [0, 1], norms finite and ≥ 0.
#![no_main]

use attention_svd::metrics::SummaryParams;
use attention_svd::lowrank::{
    cumulative_energy, energy_captured, frobenius_error, normalized_cumulative_singular_values,
    rank_for_energy, spectral_error,
};
use attention_svd::metrics::{
    condition_number, effective_rank, frobenius_norm, nuclear_norm, numerical_rank, spectral_norm,
    stable_rank, summarize, RankTolerance, Summary,
};
use fuzz_common::*;

fuzz_both_precisions!(run);

fn unit<T: FuzzFloat>(x: T) -> bool {
    x.finite() && x >= T::zero() && x <= T::one()
}

fn run<T: FuzzFloat>(u: &mut Unstructured) {
    let len = match byte(u) {
        0..=223 => (byte(u) % 13) as usize,
        _ => (byte(u) % 41) as usize,
    };
    let mut sigma: Vec<T> = (0..len).map(|_| float(u)).collect();
    match byte(u) % 4 {
        // A valid spectrum: |σ| sorted non-increasing (NaN stays, to be rejected).
        0 | 1 => {
            sigma.iter_mut().for_each(|x| *x = x.abs());
            sigma.sort_by(|a, b| b.to_f64().total_cmp(&a.to_f64()));
        }
        2 => sigma.sort_by(|a, b| b.to_f64().total_cmp(&a.to_f64())),
        _ => {}
    }
    let r = (byte(u) as usize) % (len + 2);
    let target = match byte(u) % 4 {
        0 => T::lit([0.9, 0.99, 0.999, 1.0][(byte(u) % 4) as usize]),
        _ => float(u),
    };
    let tol_a = float::<T>(u);
    let tol_r = float::<T>(u);
    let tolerance = match byte(u) % 5 {
        0 => RankTolerance::default(),
        1 => RankTolerance::absolute(tol_a),
        2 => RankTolerance::relative(tol_r),
        3 => RankTolerance::absolute(tol_a).with_rtol(tol_r),
        _ => RankTolerance::relative(tol_r).with_atol(tol_a),
    };
    // The shape the spectrum belongs to: k = len, other side ≥ len (or wrong).
    let other = len + (byte(u) % 5) as usize;
    let shape = if flag(u) { (len, other) } else { (other, len) };
    let shape = if byte(u) < 16 { (dim(u), dim(u)) } else { shape };
    let (mn, mm) = (dim(u) % 9, dim(u) % 9);
    let a = matrix::<T>(u, mn, mm);
    let backend = backend(u);

    let ctx = || {
        format!(
            "let sigma: Vec<{}> = {};\nlet r = {r};\nlet target: {} = {};\nlet tolerance = {tolerance:?};\nlet shape = {shape:?};\nlet a = {};\nlet backend = {backend:?};",
            T::RUST,
            slice_literal(&sigma),
            T::RUST,
            target.literal(),
            matrix_literal(&a)
        )
    };
    if verbose() {
        eprintln!("{}", ctx());
    }

    // lowrank
    if let Ok(e) = energy_captured(&sigma, r) {
        ensure!(unit(e), ctx, "energy_captured(σ, {r}) = {e:?}");
    }
    if let Ok(c) = cumulative_energy(&sigma) {
        ensure!(c.len() == len, ctx, "cumulative_energy has {} entries", c.len());
        ensure!(c.iter().all(|&x| unit(x)), ctx, "cumulative_energy = {c:?}");
        ensure!(c.windows(2).all(|w| w[0] <= w[1]), ctx, "cumulative_energy decreases: {c:?}");
    }
    if let Ok(k) = rank_for_energy(&sigma, target) {
        ensure!(k <= len, ctx, "rank_for_energy = {k} > len {len}");
    }
    if let Ok(e) = frobenius_error(&sigma, r) {
        ensure!(e.finite() && e >= T::zero(), ctx, "frobenius_error(σ, {r}) = {e:?}");
    }
    if let Ok(e) = spectral_error(&sigma, r) {
        ensure!(e.finite() && e >= T::zero(), ctx, "spectral_error(σ, {r}) = {e:?}");
    }
    if let Ok(c) = normalized_cumulative_singular_values(&sigma) {
        ensure!(c.len() == len, ctx, "normalized_cumulative has {} entries", c.len());
        ensure!(c.iter().all(|&x| unit(x)), ctx, "normalized_cumulative_singular_values = {c:?}");
        ensure!(c.windows(2).all(|w| w[0] <= w[1]), ctx, "normalized cumulative decreases: {c:?}");
    }

    // metrics
    let bound = T::from_count(len);
    let erank = effective_rank(&sigma);
    if let Ok(x) = erank {
        ensure!(x.finite() && x >= T::zero() && x <= bound, ctx, "effective_rank = {x:?} (len {len})");
    }
    let srank = stable_rank(&sigma);
    if let Ok(x) = srank {
        ensure!(x.finite() && x >= T::zero() && x <= bound, ctx, "stable_rank = {x:?} (len {len})");
    }
    if let (Ok(e), Ok(s)) = (erank, srank) {
        let slack = T::one() + T::lit(4.0) * bound * T::EPSILON;
        ensure!(s <= e * slack, ctx, "stable_rank {s:?} > effective_rank {e:?}");
    }
    if let Ok(k) = numerical_rank(&sigma, shape, tolerance) {
        ensure!(k <= len, ctx, "numerical_rank = {k} > len {len}");
    }
    if let Some(&s0) = sigma.first() {
        if let Ok(t) = tolerance.threshold(s0, shape) {
            ensure!(t.finite() && t >= T::zero(), ctx, "threshold = {t:?}");
        }
    }
    for (name, res) in [
        ("spectral_norm", spectral_norm(&sigma)),
        ("nuclear_norm", nuclear_norm(&sigma)),
        ("frobenius_norm", frobenius_norm(&sigma)),
    ] {
        if let Ok(x) = res {
            ensure!(x.finite() && x >= T::zero(), ctx, "{name} = {x:?}");
        }
    }
    if let Ok(x) = condition_number(&sigma) {
        ensure!(!x.is_nan_value() && x >= T::one(), ctx, "condition_number = {x:?}");
    }
    if let Ok(s) = Summary::from_singular_values(sigma.clone(), (shape.0, shape.1), RankTolerance::default()) {
        check_summary(&s, &ctx);
    }
    if let Ok(s) = summarize(&a, SummaryParams::default().backend(backend)) {
        check_summary(&s, &ctx);
    }
}

fn check_summary<T: FuzzFloat>(s: &Summary<T>, ctx: &dyn Fn() -> String) {
    let k = s.singular_values.len();
    for (name, x) in [
        ("spectral_norm", s.spectral_norm),
        ("nuclear_norm", s.nuclear_norm),
        ("frobenius_norm", s.frobenius_norm),
        ("effective_rank", s.effective_rank),
        ("stable_rank", s.stable_rank),
        ("rank_threshold", s.rank_threshold),
    ] {
        ensure!(x.finite() && x >= T::zero(), ctx, "Summary.{name} = {x:?}: {s:?}");
    }
    ensure!(
        !s.condition_number.is_nan_value() && s.condition_number >= T::one(),
        ctx,
        "Summary.condition_number = {:?}",
        s.condition_number
    );
    for (name, r) in [
        ("numerical_rank", s.numerical_rank),
        ("energy_rank_90", s.energy_rank_90),
        ("energy_rank_99", s.energy_rank_99),
        ("energy_rank_999", s.energy_rank_999),
    ] {
        ensure!(r <= k, ctx, "Summary.{name} = {r} > {k}");
    }
    ensure!(
        s.energy_rank_90 <= s.energy_rank_99 && s.energy_rank_99 <= s.energy_rank_999,
        ctx,
        "energy ranks not monotone: {s:?}"
    );
}
