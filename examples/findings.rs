//! Every figure quoted in `docs/FINDINGS.md`, from the shipped
//! all-MiniLM-L6-v2 data (`data/minilm`).
//!
//! Run with `cargo run --release --example findings`.
//!
//! For each input (n = 16, 64, 128 tokens) it analyses the 72 heads of the
//! model's attention (recomputed in f64 from the shipped float32 queries and
//! keys for n = 128, whose attention file is not shipped) in f64 arithmetic
//! with the noise floor of the float32 data, and the same heads under a
//! causal mask (a what-if: the model is bidirectional).

use attention_svd::Precision;
use attention_svd::analysis::{AnalysisParams, ModelReport, analyze};
use attention_svd::attention::Mask;
use attention_svd::attention::Scale;
use attention_svd::attention::scaled_dot_product_stack;
use attention_svd::io::npy;
use attention_svd::{Error, Stack};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/minilm");
const INPUTS: [&str; 3] = ["lighthouse_n16", "bread_n64", "glacier_n128"];

/// The model's attention, widened to f64; recomputed in f64 from the shipped
/// (f32) queries and keys where the attention file is not shipped.
fn model_attention(name: &str) -> Result<Stack<f64>, Error> {
    let path = format!("{DATA}/{name}_attn.npy");
    if std::path::Path::new(&path).exists() {
        return npy::read_stack(path);
    }
    let (q, k) = qk(name)?;
    scaled_dot_product_stack(&q, &k, &Mask::none(), Scale::default())
}

fn qk(name: &str) -> Result<(Stack<f64>, Stack<f64>), Error> {
    npy::read_queries_keys(
        format!("{DATA}/{name}_q.npy"),
        format!("{DATA}/{name}_k.npy"),
    )
}

fn count(r: &ModelReport, pred: impl Fn(usize) -> bool) -> usize {
    r.heads.iter().filter(|h| pred(h.energy_rank_99)).count()
}

fn main() -> Result<(), Error> {
    let mut reports = Vec::new();
    for name in INPUTS {
        // The data are float32: the noise floor uses ε_f32.
        let options = AnalysisParams::default().data_precision(Precision::F32);
        let bi = analyze(&model_attention(name)?, options)?;
        let (q, k) = qk(name)?;
        let causal = analyze(
            &scaled_dot_product_stack(&q, &k, &Mask::causal(), Scale::default())?,
            options,
        )?;
        reports.push((name, bi, causal));
    }

    println!("A. Heads whose 99 % energy rank r99 is at most 10 / 20 (of 72 heads)");
    println!(
        "{:<16} {:>4} {:>9} {:>9} {:>12}",
        "input", "n", "r99 ≤ 10", "r99 ≤ 20", "median r99"
    );
    for (name, r, _) in &reports {
        let mut all: Vec<usize> = r.heads.iter().map(|h| h.energy_rank_99).collect();
        all.sort_unstable();
        let median = 0.5 * (all[35] + all[36]) as f64;
        println!(
            "{:<16} {:>4} {:>9} {:>9} {:>12}",
            name,
            r.shape[2],
            count(r, |x| x <= 10),
            count(r, |x| x <= 20),
            median
        );
    }

    println!();
    println!("B. Median over heads of r99 per layer (and r99 / n), bidirectional");
    print!("{:<6}", "layer");
    for (name, r, _) in &reports {
        print!(" {:>22}", format!("{name} (n={})", r.shape[2]));
    }
    println!();
    for l in 0..6 {
        print!("{l:<6}");
        for (_, r, _) in &reports {
            let s = &r.layers[l].energy_rank_99;
            print!(
                " {:>22}",
                format!(
                    "{} [{}–{}] ({:.2})",
                    s.median,
                    s.min,
                    s.max,
                    s.median / r.shape[2] as f64
                )
            );
        }
        println!();
    }

    println!();
    println!("C. Median effective rank per layer: bidirectional → causal what-if");
    print!("{:<6}", "layer");
    for (name, _, _) in &reports {
        print!(" {:>18}", name);
    }
    println!();
    for l in 0..6 {
        print!("{l:<6}");
        for (_, bi, causal) in &reports {
            print!(
                " {:>18}",
                format!(
                    "{:.1} → {:.1}",
                    bi.layers[l].effective_rank.median, causal.layers[l].effective_rank.median
                )
            );
        }
        println!();
    }

    println!();
    println!("D. Causal what-if, whole model: median r99 and numerical rank over 72 heads");
    println!(
        "{:<16} {:>14} {:>14} {:>18} {:>18}",
        "input", "r99 bidir.", "r99 causal", "num. rank bidir.", "num. rank causal"
    );
    for (name, bi, causal) in &reports {
        let med = |r: &ModelReport, f: fn(&attention_svd::analysis::HeadSummary) -> usize| {
            let mut v: Vec<usize> = r.heads.iter().map(f).collect();
            v.sort_unstable();
            0.5 * (v[35] + v[36]) as f64
        };
        println!(
            "{:<16} {:>14} {:>14} {:>18} {:>18}",
            name,
            med(bi, |h| h.energy_rank_99),
            med(causal, |h| h.energy_rank_99),
            med(bi, |h| h.numerical_rank),
            med(causal, |h| h.numerical_rank),
        );
    }
    Ok(())
}
