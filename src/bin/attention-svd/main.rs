//! `attention-svd`, the command-line tool: a thin layer over the library.
//! It parses arguments, reads inputs, calls one library routine per result
//! (`analysis::analyze_with`, `collapse::collapse_across_layers`,
//! `logits::model_sweep`, `report::Report::merge`) and prints what they
//! return; `--json` holds every number printed.
//!
//! Exit status: 0 success (also when stdout is closed early, as by
//! `| head`), 1 a numerical or analysis error, 2 a usage error, 3 an input
//! that cannot be read, 4 an output that cannot be written.

mod args;
mod compress;
mod inputs;
mod plots;
mod print;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use attention_svd::Error;
use attention_svd::Precision;
use attention_svd::analysis::{AnalysisParams, analyze_with};
use attention_svd::collapse::collapse_across_layers;
use attention_svd::logits::model_sweep;
use attention_svd::report::{PromptReport, Report};
use attention_svd::svd::Backend;
use clap::Parser;

use args::{
    AnalyzeArgs, BackendArg, Cli, Command, ComputeArgs, MergeArgs, OutputArgs, PrecisionArg,
    SweepArgs,
};
use inputs::{Attention, Job};

/// A failure with its exit status and one line of explanation.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: String) -> Self {
        // One line of bounded length, whatever the source said.
        let mut message = message.replace('\n', " ");
        if message.chars().count() > 400 {
            message = message.chars().take(400).collect::<String>() + "…";
        }
        Failure { code, message }
    }
    pub fn analysis(message: String) -> Self {
        Self::new(1, message)
    }
    pub fn usage(message: String) -> Self {
        Self::new(2, message)
    }
    pub fn input(message: String) -> Self {
        Self::new(3, message)
    }
    pub fn output(message: String) -> Self {
        Self::new(4, message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let file = match &e {
            Error::File { .. } => true,
            Error::AtHead { source, .. } => matches!(**source, Error::File { .. }),
            _ => false,
        };
        if file {
            Failure::input(e.to_string())
        } else {
            Failure::analysis(e.to_string())
        }
    }
}

/// Maps an error met while analysing `input` to a failure that names it
/// (a file error names its file already).
pub fn of_input(input: &str) -> impl Fn(Error) -> Failure + '_ {
    move |e| {
        let f = Failure::from(e);
        if f.code == 3 {
            f
        } else {
            Failure::new(f.code, format!("{input}: {}", f.message))
        }
    }
}

/// stdout closed by the reader (`| head`): not an error.
struct ClosedPipe;

/// What running a command can end with.
pub enum Stop {
    Failure(Failure),
    ClosedPipe,
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Failure(f)
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failure(e.into())
    }
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Stop::ClosedPipe
        } else {
            Stop::Failure(Failure::output(format!(
                "cannot write to standard output: {e}"
            )))
        }
    }
}

impl From<ClosedPipe> for Stop {
    fn from(_: ClosedPipe) -> Self {
        Stop::ClosedPipe
    }
}

/// A warning on standard error (never on stdout, which may be piped).
pub fn warn(message: &str) {
    let _ = writeln!(std::io::stderr(), "warning: {message}");
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print to stdout and succeed; a closed
            // pipe there is not an error either.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match cli.command {
        Command::Analyze(a) => analyze(&mut out, a),
        Command::Sweep(s) => sweep(&mut out, s),
        Command::Merge(m) => merge(&mut out, m),
        Command::Compress(c) => compress::run(&mut out, &c, backend(c.backend)),
    };
    let result = result.and_then(|()| out.flush().map_err(Stop::from));
    match result {
        Ok(()) | Err(Stop::ClosedPipe) => ExitCode::SUCCESS,
        Err(Stop::Failure(f)) => {
            drop(out);
            let _ = writeln!(std::io::stderr(), "error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn analysis_params(c: &ComputeArgs) -> AnalysisParams {
    let mut p = AnalysisParams::default()
        .precision(match c.precision {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::F64 => Precision::F64,
        })
        .backend(backend(c.backend));
    if let Some(r) = &c.layers {
        p = p.layers(r.clone());
    }
    if let Some(r) = &c.heads {
        p = p.heads(r.clone());
    }
    p
}

fn backend(b: BackendArg) -> Backend {
    match b {
        BackendArg::Auto => Backend::Auto,
        BackendArg::Faer => Backend::Faer,
        BackendArg::Nalgebra => Backend::nalgebra(),
        BackendArg::Jacobi => Backend::jacobi(),
    }
}

/// A progress bar on stderr: drawn only on a terminal, not with --quiet,
/// and only once the run has taken more than a second.
struct Progress {
    bar: indicatif::ProgressBar,
    start: Instant,
    visible: bool,
}

impl Progress {
    fn new(total: u64, quiet: bool) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::hidden(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} heads, {per_sec}, eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress {
            bar,
            start: Instant::now(),
            visible: !quiet && std::io::stderr().is_terminal(),
        }
    }

    fn tick(&self) {
        self.bar.inc(1);
        if self.visible && self.bar.is_hidden() && self.start.elapsed() > Duration::from_secs(1) {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    }

    fn message(&self, m: String) {
        self.bar.set_message(m);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Spectra (and, when asked, collapse and sweep) of every job.
fn run_jobs(
    jobs: &[Job],
    compute: &ComputeArgs,
    top_keys: usize,
    collapse: bool,
    temperatures: Option<&[f64]>,
) -> Result<Report, Stop> {
    let params = analysis_params(compute).top_keys(top_keys);
    let mut total = 0u64;
    for j in jobs {
        let [l, h, _, _] = j.shape()?;
        let layers = compute.layers.as_ref().map_or(l, |r| r.len().min(l));
        let heads = compute.heads.as_ref().map_or(h, |r| r.len().min(h));
        total += (layers * heads) as u64;
    }
    let progress = Progress::new(total, compute.quiet);
    let tick = || progress.tick();
    let whole = compute.layers.is_none() && compute.heads.is_none();
    let backend = backend(compute.backend);
    let mut prompts = Vec::with_capacity(jobs.len());
    for job in jobs {
        progress.message(job.name.clone());
        let p = params.data_precision(job.data_precision());
        let named = of_input(&job.source);
        let qk_model = match &job.qk {
            Some(qk) => Some(qk.attention().map_err(&named)?),
            None => None,
        };
        let (spectra, collapse_result) = match (&job.attention, &qk_model) {
            (Attention::File(t), _) => {
                let s = analyze_with(t, p, &tick).map_err(&named)?;
                let c = wants_collapse(collapse, whole, s.shape)
                    .then(|| collapse_across_layers(t, backend))
                    .transpose()
                    .map_err(&named)?;
                (s, c)
            }
            (Attention::FromQk, Some(a)) => {
                let s = analyze_with(a, p, &tick).map_err(&named)?;
                let c = wants_collapse(collapse, whole, s.shape)
                    .then(|| collapse_across_layers(a, backend))
                    .transpose()
                    .map_err(&named)?;
                (s, c)
            }
            (Attention::FromQk, None) => unreachable!("FromQk jobs carry queries and keys"),
        };
        let worst = spectra
            .layers
            .iter()
            .map(|l| l.max_row_sum_deviation)
            .fold(0.0, f64::max);
        if worst > 1e-3 {
            warn(&format!(
                "{}: rows do not sum to 1 (largest deviation {worst:.2e}): are these attention \
                 probabilities?",
                job.source
            ));
        }
        let sweep = match (temperatures, &qk_model) {
            (Some(t), Some(a)) => Some(model_sweep(a, t, backend).map_err(&named)?),
            (Some(_), None) => {
                return Err(Failure::usage(format!(
                    "{}: the sweep needs queries and keys (an export with q and k, or --q/--k)",
                    job.source
                ))
                .into());
            }
            (None, _) => None,
        };
        let mut pr = PromptReport::new(job.name.clone(), job.source.clone(), spectra);
        pr.text = job.text.clone();
        pr.tokens = job.tokens.clone();
        pr.attention = job.attention_label.clone();
        pr.mask = job.mask_label.clone();
        pr.collapse = collapse_result;
        pr.temperatures = temperatures.map(<[f64]>::to_vec);
        pr.sweep = sweep;
        prompts.push(pr);
    }
    progress.finish();
    Ok(Report::new(jobs[0].model.clone(), prompts)?)
}

/// Collapse runs over whole square prompts of at least two layers, up to
/// n = 1024 (its products are O(L·h·n³)).
fn wants_collapse(asked: bool, whole: bool, [l, _, n, m]: [usize; 4]) -> bool {
    asked && whole && n == m && l > 1 && n <= 1024
}

fn analyze(out: &mut impl Write, a: AnalyzeArgs) -> Result<(), Stop> {
    let jobs = inputs::resolve(&a.input)?;
    let temperatures = a
        .sweep
        .then(|| vec![0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]);
    let report = run_jobs(
        &jobs,
        &a.compute,
        a.top_keys,
        !a.no_collapse,
        temperatures.as_deref(),
    )?;
    print::report(out, &report, a.output.layers_only)?;
    write_outputs(out, &report, &a.output)
}

fn sweep(out: &mut impl Write, s: SweepArgs) -> Result<(), Stop> {
    if s.temperatures.iter().any(|t| !t.is_finite()) {
        return Err(Failure::usage("--temperatures must be finite numbers".into()).into());
    }
    let jobs = inputs::resolve(&s.input)?;
    let report = run_jobs(&jobs, &s.compute, 0, false, Some(&s.temperatures))?;
    print::sweeps(out, &report)?;
    write_outputs(out, &report, &s.output)
}

fn merge(out: &mut impl Write, m: MergeArgs) -> Result<(), Stop> {
    let mut reports = Vec::with_capacity(m.reports.len());
    for path in &m.reports {
        let text = read_report(path)?;
        let r: Report = serde_json::from_str(&text).map_err(|e| {
            Failure::input(format!(
                "{}: not a report written with --json: {e}",
                path.display()
            ))
        })?;
        reports.push(r);
    }
    let report = Report::merge(reports)?;
    print::report(out, &report, m.output.layers_only)?;
    if report.prompts.iter().any(|p| p.sweep.is_some()) {
        print::sweeps(out, &report)?;
    }
    write_outputs(out, &report, &m.output)
}

/// The largest report `merge` reads (a report of every singular value of
/// a 32 × 32-head model at n = 4096 is about 100 MB).
const MAX_REPORT: u64 = 1 << 30;

/// A report's text, read within [`MAX_REPORT`] bytes (a pipe is read as
/// its data arrives; an endless one is cut off with an error).
fn read_report(path: &Path) -> Result<String, Failure> {
    use std::io::Read;
    let fail = |e: std::io::Error| Failure::input(format!("{}: cannot read: {e}", path.display()));
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(fail)?
        .take(MAX_REPORT + 1)
        .read_to_string(&mut text)
        .map_err(fail)?;
    if text.len() as u64 > MAX_REPORT {
        return Err(Failure::input(format!(
            "{}: larger than {MAX_REPORT} bytes, the largest report merge reads",
            path.display()
        )));
    }
    Ok(text)
}

/// Creates `path`'s file with `write`, naming the path in any error.
pub fn write_file(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), Failure> {
    let fail =
        |e: std::io::Error| Failure::output(format!("{}: cannot write: {e}", path.display()));
    let file = std::fs::File::create(path).map_err(fail)?;
    let mut w = std::io::BufWriter::new(file);
    write(&mut w).map_err(fail)?;
    w.flush().map_err(fail)
}

fn write_outputs(out: &mut impl Write, report: &Report, o: &OutputArgs) -> Result<(), Stop> {
    let mut wrote = Vec::new();
    if let Some(p) = &o.json {
        write_file(p, |w| {
            serde_json::to_writer_pretty(&mut *w, report).map_err(std::io::Error::other)?;
            writeln!(w)
        })?;
        wrote.push(p);
    }
    if let Some(p) = &o.csv {
        write_file(p, |w| report.write_heads_csv(w))?;
        wrote.push(p);
    }
    if let Some(p) = &o.spectra_csv {
        write_file(p, |w| report.write_spectra_csv(w))?;
        wrote.push(p);
    }
    if let Some(p) = &o.plot {
        let svg = plots::spectra(report, o.prompt.as_deref())?;
        write_file(p, |w| w.write_all(svg.as_bytes()))?;
        wrote.push(p);
    }
    if let Some(p) = &o.heatmap {
        let svg = plots::heatmap(report)?;
        write_file(p, |w| w.write_all(svg.as_bytes()))?;
        wrote.push(p);
    }
    for p in wrote {
        writeln!(out, "wrote {}", p.display())?;
    }
    Ok(())
}
