//! The main job: per-layer and per-head spectral analysis of transformer
//! attention, on the real model data the repository ships or on your own
//! `.npy` files.
//!
//! ```text
//! cargo run --release --example analyze                      # shipped MiniLM data (bread_n64)
//! cargo run --release --example analyze -- --input glacier_n128
//! cargo run --release --example analyze -- FILE.npy         # your attention [n,m], [h,n,m] or [l,h,n,m]
//! cargo run --release --example analyze -- --q Q.npy --k K.npy --mask causal|window:W|none
//! options: --precision f32|f64  --json FILE  --csv FILE  --plot FILE.svg  --layers-only
//!          --sweep   (temperature sweep and logit rank; needs queries and keys)
//! ```
//!
//! With no file argument the shipped data of `data/minilm` is analysed and
//! the figure is written to `target/analyze/<input>.svg`.

use attention_svd::Precision;
use attention_svd::attention::Scale;
use attention_svd::attention::scaled_dot_product_stack;
use attention_svd::io::npy;
use attention_svd::logits::LogitParams;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use attention_svd::analysis::{AnalysisParams, ModelReport, Stats, analyze};
use attention_svd::attention::Mask;
use attention_svd::collapse::collapse_across_layers;
use attention_svd::logits::{logit_and_attention_ranks, temperature_sweep};
use attention_svd::svd::Backend;
use attention_svd::{Error, Stack};
use plotters::prelude::*;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/minilm");

#[derive(Debug, Default)]
struct Args {
    file: Option<PathBuf>,
    input: Option<String>,
    q: Option<PathBuf>,
    k: Option<PathBuf>,
    mask: String,
    precision: Precision,
    json: Option<PathBuf>,
    csv: Option<PathBuf>,
    plot: Option<PathBuf>,
    layers_only: bool,
    sweep: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        mask: "none".into(),
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--input" => a.input = Some(value("--input")?),
            "--q" => a.q = Some(value("--q")?.into()),
            "--k" => a.k = Some(value("--k")?.into()),
            "--mask" => a.mask = value("--mask")?,
            "--json" => a.json = Some(value("--json")?.into()),
            "--csv" => a.csv = Some(value("--csv")?.into()),
            "--plot" => a.plot = Some(value("--plot")?.into()),
            "--layers-only" => a.layers_only = true,
            "--sweep" => a.sweep = true,
            "--precision" => {
                a.precision = match value("--precision")?.as_str() {
                    "f32" => Precision::F32,
                    "f64" => Precision::F64,
                    other => return Err(format!("--precision must be f32 or f64, not {other}")),
                }
            }
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s => a.file = Some(s.into()),
        }
    }
    if a.q.is_some() != a.k.is_some() {
        return Err("--q and --k go together".into());
    }
    if a.file.is_some() && (a.q.is_some() || a.mask != "none" || a.input.is_some()) {
        return Err(
            "a FILE.npy holds finished attention: --q/--k, --mask and --input do not apply to it"
                .into(),
        );
    }
    Ok(a)
}

fn parse_mask<T: attention_svd::Scalar>(s: &str) -> Result<Mask<T>, String> {
    match s {
        "none" => Ok(Mask::none()),
        "causal" => Ok(Mask::causal()),
        w if w.starts_with("window:") => w["window:".len()..]
            .parse()
            .map(Mask::sliding_window)
            .map_err(|_| format!("bad window width in {w}")),
        other => Err(format!(
            "--mask must be none, causal or window:W, not {other}"
        )),
    }
}

/// Where the attention comes from, for the report's header.
struct Source {
    description: String,
    /// The attention, widened exactly to f64 whatever the file's precision.
    stack: Stack<f64>,
    /// The precision the values were stored in (sets the noise floor).
    data_precision: Precision,
    name: String,
    /// Queries and keys, when the attention was (or can be) computed from them.
    qk: Option<(Stack<f64>, Stack<f64>)>,
}

fn load(args: &Args) -> Result<Source, Box<dyn std::error::Error>> {
    if let (Some(q), Some(k)) = (&args.q, &args.k) {
        let (qs, ks) = npy::read_queries_keys::<f64>(q, k)?;
        let mask = parse_mask(&args.mask)?;
        let stack = scaled_dot_product_stack(&qs, &ks, &mask, Scale::default())?;
        return Ok(Source {
            description: format!(
                "softmax(QKᵀ/√d) recomputed from {} and {} with mask `{}`",
                q.display(),
                k.display(),
                args.mask
            ),
            name: stem(q),
            stack,
            data_precision: npy::file_precision(q)?,
            qk: Some((qs, ks)),
        });
    }
    if let Some(file) = &args.file {
        return Ok(Source {
            description: format!("attention from {}", file.display()),
            name: stem(file),
            stack: npy::read_stack(file)?,
            data_precision: npy::file_precision(file)?,
            qk: None,
        });
    }
    // The shipped real-model data.
    let input = args.input.clone().unwrap_or_else(|| "bread_n64".into());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DATA}/manifest.json"))?)?;
    let entry = manifest["inputs"]
        .as_array()
        .and_then(|v| v.iter().find(|e| e["name"] == input.as_str()))
        .ok_or(format!("no input {input} in data/minilm/manifest.json"))?;
    let text = entry["text"].as_str().unwrap_or("");
    let n = entry["n"].as_u64().unwrap_or(0);
    let attn = PathBuf::from(format!("{DATA}/{input}_attn.npy"));
    let masked = args.mask != "none";
    let (qs, ks) = npy::read_queries_keys::<f64>(
        format!("{DATA}/{input}_q.npy"),
        format!("{DATA}/{input}_k.npy"),
    )?;
    let (stack, how) = if attn.exists() && !masked {
        (
            npy::read_stack(&attn)?,
            "the model's own attention probabilities".to_string(),
        )
    } else {
        let mask = parse_mask(&args.mask)?;
        (
            scaled_dot_product_stack(&qs, &ks, &mask, Scale::default())?,
            format!(
                "softmax(QKᵀ/√32) recomputed from the model's queries and keys, mask `{}`",
                args.mask
            ),
        )
    };
    let mut d = format!(
        "{} ({} layers × {} heads), input `{input}`: {n} tokens of\n  \"{}\"\n  {how}",
        manifest["model"]["name"].as_str().unwrap_or("model"),
        stack.layers(),
        stack.heads(),
        ellipsize(text, 110),
    );
    if masked {
        d.push_str(" (the trained model is bidirectional: a causal mask is a what-if)");
    }
    // The shipped queries, keys and attention are stored in float32.
    let data_precision = npy::file_precision(format!("{DATA}/{input}_q.npy"))?;
    Ok(Source {
        description: d,
        name: input,
        stack,
        data_precision,
        qk: Some((qs, ks)),
    })
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map_or("attention".into(), |s| s.to_string_lossy().into_owned())
}

fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

fn print_report(r: &ModelReport, per_head: bool) {
    let [_, _, n, m] = r.shape;
    println!(
        "\nper layer (median [min–max] over heads), {}×{} matrices, {:?} arithmetic, {:?} data:",
        n, m, r.precision, r.data_precision
    );
    println!(
        "{:>5}  {:>7}  {:>19}  {:>6}  {:>13}  {:>13}  {:>13}  {:>13}  {:>8}",
        "layer", "σ₁", "effective rank", "srank", "num. rank", "r90", "r99", "r999", "row dev"
    );
    for l in &r.layers {
        let range =
            |s: &attention_svd::analysis::Stats| format!("{} [{}–{}]", s.median, s.min, s.max);
        println!(
            "{:>5}  {:>7.3}  {:>19}  {:>6.2}  {:>13}  {:>13}  {:>13}  {:>13}  {:>8.1e}",
            l.layer,
            l.sigma_max.median,
            format!(
                "{:.1} [{:.1}–{:.1}]",
                l.effective_rank.median, l.effective_rank.min, l.effective_rank.max
            ),
            l.stable_rank.median,
            range(&l.numerical_rank),
            range(&l.energy_rank_90),
            range(&l.energy_rank_99),
            range(&l.energy_rank_999),
            l.max_row_sum_deviation,
        );
    }
    if !per_head {
        return;
    }
    println!("\nper head:");
    println!(
        "{:>5} {:>4}  {:>7}  {:>9}  {:>9}  {:>6}  {:>6}  {:>4}  {:>4}  {:>4}  {:>4}  {:>8}",
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
    );
    for h in &r.heads {
        println!(
            "{:>5} {:>4}  {:>7.3}  {:>9.2e}  {:>9.2e}  {:>6.2}  {:>6.2}  {:>4}  {:>4}  {:>4}  {:>4}  {:>8.1e}",
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
            h.max_row_sum_deviation
        );
    }
}

/// Rank collapse of the attention products and of the rollout, per depth.
fn print_collapse(stack: &Stack<f64>) -> Result<(), Error> {
    let depths = collapse_across_layers(stack, Backend::Auto)?;
    println!(
        "\nrank collapse with depth (products A_l⋯A_1 of the first l layers; residual min over x ∈ {{mean, median, 0}} of ‖A − 1xᵀ‖₁,∞ / ‖A‖₁,∞):"
    );
    println!(
        "{:>5}  {:>26}  {:>11}  {:>11}  {:>15}  {:>13}",
        "depth",
        "per-head residual med [min–max]",
        "avg resid.",
        "avg σ₂/σ₁",
        "rollout erank",
        "rollout σ₂/σ₁"
    );
    for d in &depths {
        let res: Vec<f64> = d.per_head.iter().map(|c| c.residual_relative).collect();
        let s = Stats::of(&res)?;
        println!(
            "{:>5}  {:>26}  {:>11.2e}  {:>11.2e}  {:>15.2}  {:>13.3}",
            d.depth,
            format!("{:.2e} [{:.1e}–{:.1e}]", s.median, s.min, s.max),
            d.head_average.residual_relative,
            d.head_average.sigma_ratio,
            d.rollout.effective_rank,
            d.rollout.sigma_ratio,
        );
    }
    Ok(())
}

/// Logit rank against attention rank, and the temperature sweep, per layer
/// (medians over heads).
fn print_sweep(q: &Stack<f64>, k: &Stack<f64>, mask: &Mask<f64>) -> Result<(), Error> {
    let [layers, heads, _, d] = q.shape();
    let scales = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];
    println!(
        "\nlogits QKᵀ/√d (rank ≤ d = {d}) against attention softmax(QKᵀ/√d + M), medians over heads:"
    );
    println!(
        "{:>5}  {:>12}  {:>12}  {:>12}  {:>12}",
        "layer", "logit rank", "logit erank", "attn rank", "attn erank"
    );
    let mut sweep_rows = Vec::new();
    for l in 0..layers {
        let (mut lr, mut le, mut ar, mut ae) = (vec![], vec![], vec![], vec![]);
        let mut per_scale: Vec<Vec<f64>> = vec![Vec::new(); scales.len()];
        for h in 0..heads {
            let (qm, km) = (q.head(l, h)?.to_dmatrix(), k.head(l, h)?.to_dmatrix());
            let r = logit_and_attention_ranks(
                &qm,
                &km,
                mask,
                LogitParams::default().backend(Backend::Auto),
            )?;
            lr.push(r.logit_numerical_rank as f64);
            le.push(r.logit_effective_rank);
            ar.push(r.attention_numerical_rank as f64);
            ae.push(r.attention_effective_rank);
            for (i, p) in temperature_sweep(
                &qm,
                &km,
                mask,
                &scales,
                LogitParams::default().backend(Backend::Auto),
            )?
            .into_iter()
            .enumerate()
            {
                per_scale[i].push(p.effective_rank);
            }
        }
        let med = |v: &[f64]| Stats::of(v).map(|s| s.median);
        println!(
            "{:>5}  {:>12}  {:>12.2}  {:>12}  {:>12.2}",
            l,
            med(&lr)?,
            med(&le)?,
            med(&ar)?,
            med(&ae)?
        );
        sweep_rows.push(
            per_scale
                .iter()
                .map(|v| med(v))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    println!(
        "\ntemperature sweep: median effective rank of softmax(s·QKᵀ/√d + M) over heads (s = 1 is the model):"
    );
    print!("{:>5}", "layer");
    for s in scales {
        print!("  {:>7}", format!("s={s}"));
    }
    println!();
    for (l, row) in sweep_rows.iter().enumerate() {
        print!("{l:>5}");
        for x in row {
            print!("  {x:>7.2}");
        }
        println!();
    }
    Ok(())
}

fn write_csv(r: &ModelReport, path: &Path) -> std::io::Result<()> {
    let mut s = String::from(
        "layer,head,n,m,sigma_max,sigma_min,noise_floor,effective_rank,stable_rank,numerical_rank,\
         energy_rank_90,energy_rank_99,energy_rank_999,max_row_sum_deviation,frobenius_norm,nuclear_norm\n",
    );
    for h in &r.heads {
        let _ = writeln!(
            s,
            "{},{},{},{},{:e},{:e},{:e},{},{},{},{},{},{},{:e},{},{}",
            h.layer,
            h.head,
            h.n,
            h.m,
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
            h.frobenius_norm,
            h.nuclear_norm
        );
    }
    std::fs::write(path, s)
}

/// Normalised spectra σᵢ/σ₁ (log axis, one curve per head, a panel per
/// layer) above the cumulative energy E(i) with the 0.99 line.
fn plot(r: &ModelReport, path: &Path, title: &str) -> Result<(), Box<dyn std::error::Error>> {
    let [layers, heads, n, m] = r.shape;
    let k = n.min(m);
    let cols = layers.clamp(1, 3);
    let rows = layers.div_ceil(cols);
    let (w, h) = (460 * cols as u32, 2 * 330 * rows as u32 + 40);
    let root = SVGBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (top, bottom) = root.split_vertically(h / 2 - 20);
    // The y axis starts one decade below the smallest positive σᵢ/σ₁, and
    // never below the round-off level of the arithmetic.
    let lowest = if r.precision == Precision::F32 {
        f64::from(f32::EPSILON) * 0.1
    } else {
        1e-17
    };
    let smallest = r
        .heads
        .iter()
        .flat_map(|h| h.singular_values.iter().map(move |&x| x / h.sigma_max))
        .filter(|&x| x > 0.0)
        .fold(1.0f64, f64::min);
    let floor = 10f64.powf(smallest.log10().floor() - 1.0).max(lowest);
    let x_max = k.max(2);
    for (l, area) in top
        .split_evenly((rows, cols))
        .iter()
        .enumerate()
        .take(layers)
    {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("layer {l}: σᵢ/σ₁"), ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(48)
            .build_cartesian_2d(1..x_max, (floor..1.5f64).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("i")
            .y_label_formatter(&|y| format!("{y:.0e}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for hd in 0..heads {
            let s = &r.heads[l * heads + hd].singular_values;
            let color = Palette99::pick(hd).stroke_width(1);
            chart.draw_series(LineSeries::new(
                s.iter()
                    .enumerate()
                    .map(|(i, &x)| (i + 1, (x / s[0]).max(floor))),
                color,
            ))?;
        }
    }
    for (l, area) in bottom
        .split_evenly((rows, cols))
        .iter()
        .enumerate()
        .take(layers)
    {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("layer {l}: energy E(i)"), ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(48)
            .build_cartesian_2d(1..x_max, 0.0..1.02f64)?;
        chart
            .configure_mesh()
            .x_desc("i")
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for hd in 0..heads {
            let s = &r.heads[l * heads + hd].singular_values;
            let total: f64 = s.iter().map(|x| x * x).sum();
            let mut acc = 0.0;
            let pts: Vec<(usize, f64)> = s
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    acc += x * x;
                    (i + 1, acc / total)
                })
                .collect();
            chart.draw_series(LineSeries::new(pts, Palette99::pick(hd).stroke_width(1)))?;
        }
        chart.draw_series(LineSeries::new(
            [(1, 0.99), (x_max, 0.99)],
            BLACK.stroke_width(1),
        ))?;
    }
    root.present()?;
    Ok(())
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let source = load(&args)?;
    println!("attention-svd analyze: {}", source.description);
    let options = AnalysisParams::default()
        .precision(args.precision)
        .data_precision(source.data_precision);
    let report = analyze(&source.stack, options)?;
    let shipped_default = args.file.is_none() && args.q.is_none();
    print_report(&report, !args.layers_only);
    let worst = report
        .layers
        .iter()
        .map(|l| l.max_row_sum_deviation)
        .fold(0.0, f64::max);
    if worst > 1e-3 {
        eprintln!(
            "warning: rows do not sum to 1 (largest deviation {worst:.2e}): \
             is this file attention probabilities?"
        );
    }
    let [layers, _, n, m] = report.shape;
    if n == m && layers > 1 {
        print_collapse(&source.stack)?;
    }
    if args.sweep {
        match &source.qk {
            Some((q, k)) => print_sweep(q, k, &parse_mask::<f64>(&args.mask)?)?,
            None => println!("\n--sweep needs queries and keys (--q and --k, or the shipped data)"),
        }
    }
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &args.csv {
        write_csv(&report, p)?;
        println!("wrote {}", p.display());
    }
    let plot_path = args.plot.clone().or_else(|| {
        shipped_default.then(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/analyze"))
                .join(format!("{}.svg", source.name))
        })
    });
    if let Some(p) = plot_path {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let title = format!(
            "{}: {}×{} attention, {} layers × {} heads",
            source.name, report.shape[2], report.shape[3], report.shape[0], report.shape[1]
        );
        plot(&report, &p, &title)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("error: {msg}");
            }
            // The usage lines of the module docs above.
            let usage: Vec<&str> = include_str!("analyze.rs")
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .map(|l| l.trim_start_matches("//!").trim_start())
                .filter(|l| {
                    l.starts_with("cargo ") || l.starts_with("options:") || l.starts_with("--sweep")
                })
                .collect();
            eprintln!("usage:\n  {}", usage.join("\n  "));
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Our own errors already name the file or the head.
            match e.downcast_ref::<Error>() {
                Some(err) => eprintln!("error: {err}"),
                None => eprintln!("error: {e}"),
            }
            ExitCode::FAILURE
        }
    }
}
