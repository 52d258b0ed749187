//! Command-line arguments (clap derive). Every flag's help says its default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Spectral analysis of transformer attention: how many directions each
/// head really uses, how it changes with depth, and how far its KV cache
/// can be cut.
///
/// Inputs are exports of `scripts/export_attention.py` (a JSON sidecar
/// naming .npy/.npz/.safetensors arrays), directories of them (one
/// population report over all their prompts), or raw attention arrays
/// [n, m], [h, n, m], [l, h, n, m] or [batch, l, h, n, m] in .npy, .npz or
/// .safetensors (f16, bf16, f32, f64). Without an input, the MiniLM data
/// shipped in the repository's `data/minilm` is analysed.
#[derive(Debug, Parser)]
#[command(name = "attention-svd", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Spectra, ranks and rank collapse, per layer and head (and over prompts).
    Analyze(AnalyzeArgs),
    /// Logit rank against attention rank, and a temperature sweep (needs
    /// queries and keys).
    Sweep(SweepArgs),
    /// Combine the JSON reports of shards (by prompt, layer or head) into one.
    Merge(MergeArgs),
    /// How far each head's KV cache can be cut at a fidelity target: key-only
    /// SVD, KQ-SVD, value projection, both, and attention truncation, fitted
    /// on calibration prompts and judged on held-out ones.
    Compress(CompressArgs),
}

/// Where the input comes from, shared by `analyze` and `sweep`.
#[derive(Clone, Debug, Args)]
pub struct InputArgs {
    /// Exports (.json sidecars), directories of exports, or raw attention
    /// arrays (.npy, .npz, .safetensors). Default: the shipped MiniLM input
    /// `bread_n64`.
    pub inputs: Vec<PathBuf>,

    /// A shipped MiniLM input when no INPUTS are given: bread_n64,
    /// lighthouse_n16, glacier_n128, or `all` for the population of the three.
    #[arg(long, value_name = "NAME", default_value = "bread_n64")]
    pub input: String,

    /// The folder of the shipped data. Default: $ATTENTION_SVD_DATA, else
    /// ./data/minilm.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Per-head queries [l, h, n, d] (a raw array) to recompute attention
    /// from, with --k.
    #[arg(long, value_name = "FILE", requires = "k", conflicts_with = "inputs")]
    pub q: Option<PathBuf>,

    /// Per-head keys [l, h_kv, m, d], with --q.
    #[arg(long, value_name = "FILE", requires = "q")]
    pub k: Option<PathBuf>,

    /// The array to read from a .npz or .safetensors file with several.
    #[arg(long, value_name = "NAME")]
    pub tensor: Option<String>,

    /// Mask for attention recomputed from queries and keys: auto (what the
    /// export's sidecar records: causal and sliding window; none without
    /// one), none, causal, or window:W.
    #[arg(long, value_name = "MASK", default_value = "auto")]
    pub mask: String,

    /// Recompute the attention from the exported queries and keys even when
    /// the export holds the model's own probabilities.
    #[arg(long)]
    pub from_qk: bool,
}

/// What to compute and in which arithmetic.
#[derive(Debug, Args)]
pub struct ComputeArgs {
    /// Arithmetic of the SVDs.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F64)]
    pub precision: PrecisionArg,

    /// SVD backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,

    /// Only these layers, as START..END (a shard; end exclusive). Default: all.
    #[arg(long, value_name = "RANGE", value_parser = parse_range)]
    pub layers: Option<std::ops::Range<usize>>,

    /// Only these heads of every layer, as START..END. Default: all.
    #[arg(long, value_name = "RANGE", value_parser = parse_range)]
    pub heads: Option<std::ops::Range<usize>>,

    /// No progress bar (it is drawn only on a terminal, for runs over a second).
    #[arg(long, short)]
    pub quiet: bool,
}

/// Where results go, shared by every subcommand.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write the full report as JSON (schema attention-svd/report v1).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write one row per (prompt, layer, head) with every metric as CSV.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Write every singular value in long format (prompt, layer, head, i,
    /// sigma) as CSV.
    #[arg(long, value_name = "FILE")]
    pub spectra_csv: Option<PathBuf>,

    /// Write the spectra figure (one panel per layer, one curve per head) as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,

    /// Write the layer × head heatmaps of effective rank and r99/k as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub heatmap: Option<PathBuf>,

    /// The prompt the spectra figure shows (default: the first).
    #[arg(long, value_name = "NAME")]
    pub prompt: Option<String>,

    /// Print only the per-layer tables, not one row per head.
    #[arg(long)]
    pub layers_only: bool,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub compute: ComputeArgs,
    #[command(flatten)]
    pub output: OutputArgs,

    /// Skip the rank collapse across layers (computed by default for whole
    /// prompts with n ≤ 1024).
    #[arg(long)]
    pub no_collapse: bool,

    /// Also run the logit-rank and temperature sweep of `sweep`.
    #[arg(long)]
    pub sweep: bool,

    /// How many keys carrying v₁ (the first right singular vector) to list
    /// per head.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub top_keys: usize,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub compute: ComputeArgs,
    #[command(flatten)]
    pub output: OutputArgs,

    /// Inverse temperatures t of softmax(t·s·QKᵀ + M), comma-separated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "0,0.25,0.5,1,2,4,8,16"
    )]
    pub temperatures: Vec<f64>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// JSON reports of shards, written with --json.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    F32,
    F64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Auto,
    Faer,
    Nalgebra,
    Jacobi,
}

/// START..END with START < END.
fn parse_range(s: &str) -> Result<std::ops::Range<usize>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("`{s}` is not a range START..END"))?;
    let parse = |x: &str| {
        x.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{x}` in `{s}` is not a non-negative integer"))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a >= b {
        return Err(format!("the range `{s}` is empty"));
    }
    Ok(a..b)
}

#[derive(Debug, Args)]
pub struct CompressArgs {
    /// Exports (.json sidecars with q, k and v) to fit the projections on.
    /// Default: the shipped `bread_n64`.
    #[arg(long, value_name = "EXPORT")]
    pub calibrate: Vec<PathBuf>,

    /// Exports to judge the projections on (held-out). Default: the shipped
    /// `glacier_n128`.
    #[arg(long, value_name = "EXPORT")]
    pub evaluate: Vec<PathBuf>,

    /// The folder of the shipped data. Default: $ATTENTION_SVD_DATA, else
    /// ./data/minilm.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Target: the output error ‖AV − ÃṼ‖_F / ‖AV‖_F at most this, in (0, 1).
    /// Default 0.01 when no target is given.
    #[arg(long, value_name = "E")]
    pub max_output_error: Option<f64>,

    /// Target: the mean total variation ½‖aᵢ − ãᵢ‖₁ over rows at most this,
    /// in (0, 1).
    #[arg(long, value_name = "TV")]
    pub max_mean_tv: Option<f64>,

    /// SVD backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,

    /// Print only the per-layer table.
    #[arg(long)]
    pub layers_only: bool,

    /// Write the full report (every curve r = 1..d, in-sample and held-out)
    /// as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write every curve point (layer, head, method, set, r and each figure)
    /// as CSV.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Draw the held-out fidelity against r (one curve per method, the
    /// median over heads with a min–max band, a panel per layer) as SVG.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}
