//! The text tables. Every number comes from the [`Report`], so `--json`
//! holds all of them.

use std::io::{Result, Write};

use attention_svd::analysis::{HeadSummary, Stats};
use attention_svd::report::{PromptReport, Report};

fn ellipsize(s: &str, max: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() <= max {
        s
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// "median [min–max]" with `digits` decimals.
fn range(s: &Stats, digits: usize) -> String {
    format!("{:.d$} [{:.d$}–{:.d$}]", s.median, s.min, s.max, d = digits)
}

/// "median [q1–q3]" with `digits` decimals.
fn quartiles(s: &Stats, digits: usize) -> String {
    format!("{:.d$} [{:.d$}–{:.d$}]", s.median, s.q1, s.q3, d = digits)
}

/// Integer-valued statistics: "median [min–max]" without needless zeros.
fn int_range(s: &Stats) -> String {
    format!("{} [{}–{}]", s.median, s.min, s.max)
}

/// The whole report: one prompt in detail, or a population.
pub fn report(out: &mut impl Write, r: &Report, layers_only: bool) -> Result<()> {
    let m = &r.model;
    if let [p] = r.prompts.as_slice() {
        let [_, _, n, _] = p.spectra.shape;
        writeln!(
            out,
            "attention-svd analyze: {} ({} layers × {} heads), input `{}`: {n} tokens{}",
            m.name,
            m.layers,
            m.heads,
            p.name,
            p.text.as_ref().map_or(String::new(), |t| format!(
                " of\n  \"{}\"",
                ellipsize(t, 110)
            ))
        )?;
        writeln!(out, "  {}, mask {}", p.attention, p.mask)?;
        prompt(out, p, layers_only)?;
        return Ok(());
    }
    let ns: Vec<String> = r
        .prompts
        .iter()
        .map(|p| p.spectra.shape[2].to_string())
        .collect();
    writeln!(
        out,
        "attention-svd analyze: {} ({} layers × {} heads), {} prompts (n = {})",
        m.name,
        m.layers,
        m.heads,
        r.prompts.len(),
        ns.join(", ")
    )?;
    writeln!(
        out,
        "\nper prompt (median over its heads):\n{:<24} {:>5}  {:>7}  {:>7}  {:>7}  attention, mask",
        "prompt", "n", "σ₁", "erank", "r99/k"
    )?;
    for p in &r.prompts {
        let k = p.spectra.shape[2].min(p.spectra.shape[3]) as f64;
        let med = |f: fn(&HeadSummary) -> f64| {
            Stats::of(&p.spectra.heads.iter().map(f).collect::<Vec<_>>())
                .map_or(f64::NAN, |s| s.median)
        };
        writeln!(
            out,
            "{:<24} {:>5}  {:>7.3}  {:>7.2}  {:>7.3}  {}, {}",
            ellipsize(&p.name, 24),
            p.spectra.shape[2],
            med(|h| h.sigma_max),
            med(|h| h.effective_rank),
            med(|h| h.energy_rank_99 as f64) / k,
            p.attention,
            p.mask
        )?;
    }
    let Some(pop) = &r.population else {
        writeln!(
            out,
            "\n(no population table: the prompts cover different layers or heads; merge the shards first)"
        )?;
        return Ok(());
    };
    writeln!(
        out,
        "\npopulation per layer (median [q1–q3] over {} prompts × heads; ranks as fractions of k = min(n, m)):",
        pop.prompts
    )?;
    writeln!(
        out,
        "{:>5}  {:>22}  {:>22}  {:>20}  {:>20}  {:>20}  {:>20}",
        "layer", "σ₁", "effective rank", "stable rank", "rank/k", "r90/k", "r99/k"
    )?;
    for l in &pop.layers {
        writeln!(
            out,
            "{:>5}  {:>22}  {:>22}  {:>20}  {:>20}  {:>20}  {:>20}",
            l.layer,
            quartiles(&l.sigma_max, 3),
            quartiles(&l.effective_rank, 2),
            quartiles(&l.stable_rank, 2),
            quartiles(&l.numerical_rank_fraction, 3),
            quartiles(&l.energy_rank_90_fraction, 3),
            quartiles(&l.energy_rank_99_fraction, 3),
        )?;
    }
    if layers_only {
        return Ok(());
    }
    writeln!(out, "\npopulation per head (median [q1–q3] over prompts):")?;
    writeln!(
        out,
        "{:>5} {:>4}  {:>22}  {:>22}  {:>20}  {:>20}",
        "layer", "head", "σ₁", "effective rank", "r90/k", "r99/k"
    )?;
    for h in &pop.heads {
        writeln!(
            out,
            "{:>5} {:>4}  {:>22}  {:>22}  {:>20}  {:>20}",
            h.layer,
            h.head,
            quartiles(&h.sigma_max, 3),
            quartiles(&h.effective_rank, 2),
            quartiles(&h.energy_rank_90_fraction, 3),
            quartiles(&h.energy_rank_99_fraction, 3),
        )?;
    }
    Ok(())
}

/// The tables of one prompt.
fn prompt(out: &mut impl Write, p: &PromptReport, layers_only: bool) -> Result<()> {
    let r = &p.spectra;
    let [_, _, n, m] = r.shape;
    writeln!(
        out,
        "\nper layer (median [min–max] over heads), {n}×{m} matrices, {} arithmetic, {} data:",
        r.precision, r.data_precision
    )?;
    writeln!(
        out,
        "{:>5}  {:>7}  {:>19}  {:>6}  {:>13}  {:>13}  {:>13}  {:>13}  {:>8}",
        "layer", "σ₁", "effective rank", "srank", "num. rank", "r90", "r99", "r999", "row dev"
    )?;
    for l in &r.layers {
        writeln!(
            out,
            "{:>5}  {:>7.3}  {:>19}  {:>6.2}  {:>13}  {:>13}  {:>13}  {:>13}  {:>8.1e}",
            l.layer,
            l.sigma_max.median,
            range(&l.effective_rank, 1),
            l.stable_rank.median,
            int_range(&l.numerical_rank),
            int_range(&l.energy_rank_90),
            int_range(&l.energy_rank_99),
            int_range(&l.energy_rank_999),
            l.max_row_sum_deviation,
        )?;
    }
    if !layers_only {
        let keys_header = if r.heads.iter().any(|h| !h.top_keys.is_empty()) {
            "  keys carrying v₁ (|v₁ⱼ|)"
        } else {
            ""
        };
        writeln!(out, "\nper head:")?;
        writeln!(
            out,
            "{:>5} {:>4}  {:>7}  {:>9}  {:>9}  {:>6}  {:>6}  {:>4}  {:>4}  {:>4}  {:>4}  {:>8}{keys_header}",
            "layer",
            "head",
            "σ₁",
            "σ_min",
            "floor",
            "erank",
            "srank",
            "rank",
            "r90",
            "r99",
            "r999",
            "row dev"
        )?;
        for h in &r.heads {
            let keys: Vec<String> = h
                .top_keys
                .iter()
                .map(|k| {
                    let token = p.tokens.as_ref().and_then(|t| t.get(k.key)).map_or_else(
                        || format!("#{}", k.key),
                        |t| format!("{}#{}", ellipsize(t, 12), k.key),
                    );
                    format!("{token} {:.2}", k.weight)
                })
                .collect();
            writeln!(
                out,
                "{:>5} {:>4}  {:>7.3}  {:>9.2e}  {:>9.2e}  {:>6.2}  {:>6.2}  {:>4}  {:>4}  {:>4}  {:>4}  {:>8.1e}{}",
                h.layer,
                h.head,
                h.sigma_max,
                h.sigma_min,
                h.noise_floor,
                h.effective_rank,
                h.stable_rank,
                h.numerical_rank,
                h.energy_rank_90,
                h.energy_rank_99,
                h.energy_rank_999,
                h.max_row_sum_deviation,
                if keys.is_empty() {
                    String::new()
                } else {
                    format!("  {}", keys.join(", "))
                }
            )?;
        }
    }
    if let Some(depths) = &p.collapse {
        writeln!(
            out,
            "\nrank collapse with depth (products A_l⋯A_1 of the first l layers; residual min over x ∈ {{mean, median, 0}} of ‖A − 1xᵀ‖₁,∞ / ‖A‖₁,∞):"
        )?;
        writeln!(
            out,
            "{:>5}  {:>31}  {:>11}  {:>11}  {:>15}  {:>13}",
            "depth",
            "per-head residual med [min–max]",
            "avg resid.",
            "avg σ₂/σ₁",
            "rollout erank",
            "rollout σ₂/σ₁"
        )?;
        for d in depths {
            let res: Vec<f64> = d.per_head.iter().map(|c| c.residual_relative).collect();
            let s = Stats::of(&res).map_err(std::io::Error::other)?;
            writeln!(
                out,
                "{:>5}  {:>31}  {:>11.2e}  {:>11.2e}  {:>15.2}  {:>13.3}",
                d.depth,
                format!("{:.2e} [{:.1e}–{:.1e}]", s.median, s.min, s.max),
                d.head_average.residual_relative,
                d.head_average.sigma_ratio,
                d.rollout.effective_rank,
                d.rollout.sigma_ratio,
            )?;
        }
    }
    Ok(())
}

/// Logit rank against attention rank and the temperature table, per prompt
/// (medians over the heads of each layer).
pub fn sweeps(out: &mut impl Write, r: &Report) -> Result<()> {
    for p in &r.prompts {
        let (Some(rows), Some(temps)) = (&p.sweep, &p.temperatures) else {
            continue;
        };
        let d = r
            .model
            .head_dim
            .map_or_else(|| "d".to_string(), |d| d.to_string());
        writeln!(
            out,
            "\n{}: logits s·QKᵀ (rank ≤ d = {d}) against attention softmax(s·QKᵀ + M), medians over heads:",
            p.name
        )?;
        writeln!(
            out,
            "{:>5}  {:>12}  {:>12}  {:>12}  {:>12}",
            "layer", "logit rank", "logit erank", "attn rank", "attn erank"
        )?;
        let layers: std::collections::BTreeSet<usize> = rows.iter().map(|h| h.layer).collect();
        let med = |v: Vec<f64>| {
            Stats::of(&v)
                .map(|s| s.median)
                .map_err(std::io::Error::other)
        };
        let mut table = Vec::new();
        for &l in &layers {
            let heads: Vec<_> = rows.iter().filter(|h| h.layer == l).collect();
            writeln!(
                out,
                "{:>5}  {:>12}  {:>12.2}  {:>12}  {:>12.2}",
                l,
                med(heads
                    .iter()
                    .map(|h| h.ranks.logit_numerical_rank as f64)
                    .collect())?,
                med(heads.iter().map(|h| h.ranks.logit_effective_rank).collect())?,
                med(heads
                    .iter()
                    .map(|h| h.ranks.attention_numerical_rank as f64)
                    .collect())?,
                med(heads
                    .iter()
                    .map(|h| h.ranks.attention_effective_rank)
                    .collect())?,
            )?;
            let row = (0..temps.len())
                .map(|i| med(heads.iter().map(|h| h.sweep[i].effective_rank).collect()))
                .collect::<Result<Vec<_>>>()?;
            table.push((l, row));
        }
        writeln!(
            out,
            "\n{}: temperature sweep, median effective rank of softmax(t·s·QKᵀ + M) over heads (t = 1 is the model):",
            p.name
        )?;
        write!(out, "{:>5}", "layer")?;
        for t in temps {
            write!(out, "  {:>7}", format!("t={t}"))?;
        }
        writeln!(out)?;
        for (l, row) in table {
            write!(out, "{l:>5}")?;
            for x in row {
                write!(out, "  {x:>7.2}")?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}
