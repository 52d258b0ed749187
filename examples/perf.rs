//! Side-by-side timings against the reference implementations, interleaved
//! round by round in one run.
//!
//! ```text
//! cargo run --release --example perf                      # everything (about 10 minutes)
//! cargo run --release --example perf -- --quick           # small sizes only (smoke run)
//! cargo run --release --example perf -- --only jacobi     # one section: svd, jacobi,
//!                                                          #   softmax, randomized, model
//! cargo run --release --example perf -- --rounds 5        # more rounds (default 3)
//! cargo run --release --example perf -- --no-reference    # without Python
//! cargo run --release --example perf -- --test-suite      # also time a fresh `cargo test`
//! ```
//!
//! The harness generates seeded inputs, writes them as `.npy` files with a
//! `tasks.json` into `target/perf/`, and starts `scripts/perf_reference.py`
//! on them as a server (numpy/scipy LAPACK `gesdd` and `dgejsv`, numpy
//! softmax, scikit-learn's `randomized_svd`, each under a threadpoolctl
//! thread limit). Each round then times, for every task, this crate and
//! every comparison (the Python side through the server; faer, nalgebra and
//! this crate's own baselines in this process) one right after the other —
//! ours first in even rounds, ours last in odd ones — so that a slow phase
//! of a shared machine hits both sides (a Python task that several cases
//! compare with, such as `gesdd` for `Auto` and for Jacobi, is timed once
//! per round, next to the first of them). A ratio is computed per round; the
//! tables give the median time of each side over the rounds, the median
//! ratio and its range over the rounds, and the goal of issue 13 it is held
//! to (met when the median ratio is within it). `docs/PERFORMANCE.md` holds
//! one such output.
//!
//! Every time within a round is the median of at least 3 runs and 0.3 s
//! (at most 20 runs, or a single run once 2 s have passed) after one
//! warm-up run, which a side whose previous round took more than 1 s skips.
//!
//! Inputs: attention-like f64 matrices softmax(QKᵀ·2/√64) with standard
//! normal Q, K (n×64); for the softmax rows, Q and K themselves; for the
//! whole-model rows, a [12, 12, 256, 256] f32 stack of such attention.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use attention_svd::analysis::{AnalysisParams, analyze};
use attention_svd::attention::{Mask, Scale, scaled_dot_product, scaled_dot_product_into};
use attention_svd::io::npy;
use attention_svd::randomized::{RandomizedParams, randomized_svd};
use attention_svd::svd::{Backend, singular_values, svd};
use attention_svd::{Precision, Scalar, Stack};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::{Value, json};

const MIN_REPS: usize = 3;
const MIN_SECONDS: f64 = 0.3;
const MAX_SECONDS: f64 = 2.0;
const MAX_REPS: usize = 20;
/// A side whose previous round took longer than this skips its warm-up.
const WARM_LIMIT: f64 = 1.0;

/// Leaves the vector registers in a clean state: faer's kernels return with
/// the upper halves of the AVX registers dirty, which slows down the SSE
/// code that follows, and the raw faer calls timed here do not clean up.
/// Any call into faer through the crate does (`simd::faer_call`), so one
/// tiny one is made; every measurement starts from a clean state.
fn clear_upper_state() {
    let tiny = DMatrix::<f64>::identity(1, 1);
    std::hint::black_box(singular_values(&tiny, Backend::Faer).expect("1×1"));
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let h = v.len() / 2;
    if v.len() % 2 == 1 {
        v[h]
    } else {
        0.5 * (v[h - 1] + v[h])
    }
}

/// Median wall time in seconds of `f` by the rule of the module docs (the
/// same rule as `scripts/perf_reference.py`).
fn median_seconds(f: &mut dyn FnMut(), warm: bool) -> f64 {
    clear_upper_state();
    if warm {
        f();
    }
    let mut times = Vec::new();
    let start = Instant::now();
    loop {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
        let elapsed = start.elapsed().as_secs_f64();
        if times.len() >= MAX_REPS || elapsed >= MAX_SECONDS {
            break;
        }
        if times.len() >= MIN_REPS && elapsed >= MIN_SECONDS {
            break;
        }
    }
    median(&times)
}

fn gaussian<T: Scalar>(rng: &mut StdRng, n: usize, d: usize) -> DMatrix<T> {
    DMatrix::from_fn(n, d, |_, _| {
        T::lit(<StandardNormal as Distribution<f64>>::sample(
            &StandardNormal,
            rng,
        ))
    })
}

/// softmax(QKᵀ·2/√64), Q and K n×64 standard normal: attention whose
/// spectrum decays like a trained model's middle layers.
fn attention_matrix(n: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let q = gaussian::<f64>(&mut rng, n, 64);
    let k = gaussian::<f64>(&mut rng, n, 64);
    scaled_dot_product(&q, &k, &Mask::none(), Scale::fixed(2.0 / 8.0)).expect("finite input")
}

fn mask_of<T: Scalar>(causal: bool) -> Mask<T> {
    if causal { Mask::causal() } else { Mask::none() }
}

type Job<'a> = Box<dyn FnMut() + 'a>;

/// softmax(QKᵀ/8), into a fresh result or, given one, into that buffer.
fn softmax_job<'a, T: Scalar>(
    q: &'a DMatrix<T>,
    k: &'a DMatrix<T>,
    causal: bool,
    mut out: Option<DMatrix<T>>,
) -> impl FnMut() + 'a {
    let mask = mask_of::<T>(causal);
    let scale = Scale::fixed(T::lit(0.125));
    move || match out.as_mut() {
        Some(out) => {
            scaled_dot_product_into(q, k, &mask, scale, out).expect("finite");
            std::hint::black_box(&*out);
        }
        None => {
            std::hint::black_box(scaled_dot_product(q, k, &mask, scale).expect("finite"));
        }
    }
}

/// Who a comparison times.
enum Side<'a> {
    /// A task of `scripts/perf_reference.py`, by name.
    Python(String),
    /// A closure run in this process (faer, nalgebra, our own baselines).
    Local(Job<'a>),
}

/// One comparison of a case: ours ÷ theirs, per round.
struct Comparison<'a> {
    label: &'static str,
    side: Side<'a>,
    /// The goal's text and the largest median ratio that meets it.
    goal: Option<(String, f64)>,
    times: Vec<f64>,
    ratios: Vec<f64>,
}

/// One task of a section: our call and what it is compared with.
struct Case<'a> {
    section: &'static str,
    task: String,
    ours: Job<'a>,
    times: Vec<f64>,
    against: Vec<Comparison<'a>>,
}

impl<'a> Case<'a> {
    fn new(section: &'static str, task: String, ours: impl FnMut() + 'a) -> Self {
        Case {
            section,
            task,
            ours: Box::new(ours),
            times: Vec::new(),
            against: Vec::new(),
        }
    }

    fn vs(mut self, label: &'static str, side: Side<'a>, goal: Option<(String, f64)>) -> Self {
        self.against.push(Comparison {
            label,
            side,
            goal,
            times: Vec::new(),
            ratios: Vec::new(),
        });
        self
    }

    fn vs_python(self, label: &'static str, task: &str, goal: Option<(String, f64)>) -> Self {
        self.vs(label, Side::Python(task.to_string()), goal)
    }

    fn vs_local(
        self,
        label: &'static str,
        f: impl FnMut() + 'a,
        goal: Option<(String, f64)>,
    ) -> Self {
        self.vs(label, Side::Local(Box::new(f)), goal)
    }
}

fn goal(text: impl Into<String>, limit: f64) -> Option<(String, f64)> {
    Some((text.into(), limit))
}

/// The reference side: `scripts/perf_reference.py` serving timing requests.
struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    versions: Value,
    errors: Value,
    /// The last time measured per task (a slow task skips its warm-up).
    last: BTreeMap<String, f64>,
}

impl Reference {
    fn start(script: &Path, dir: &Path) -> Result<Self, String> {
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run python3: {e}"))?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| format!("reading perf_reference.py: {e}"))?;
        let hello: Value = serde_json::from_str(&line).map_err(|_| {
            "perf_reference.py did not start (pip install numpy scipy scikit-learn threadpoolctl?)"
                .to_string()
        })?;
        Ok(Reference {
            child,
            stdin,
            stdout,
            versions: hello["versions"].clone(),
            errors: hello["errors"].clone(),
            last: BTreeMap::new(),
        })
    }

    fn time(&mut self, task: &str) -> Option<f64> {
        let warm = self.last.get(task).is_none_or(|&t| t <= WARM_LIMIT);
        let request = json!({"task": task, "warm": warm});
        writeln!(self.stdin, "{request}").ok()?;
        self.stdin.flush().ok()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line).ok()?;
        let t = serde_json::from_str::<Value>(&line).ok()?["seconds"].as_f64()?;
        self.last.insert(task.to_string(), t);
        Some(t)
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        // The server also ends when its stdin closes; it may be mid-task.
        let _ = self.stdin.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Inputs written for the Python side, and its task list.
struct Tasks {
    dir: PathBuf,
    list: Vec<Value>,
    files: usize,
}

impl Tasks {
    fn write<T: Scalar>(&mut self, m: &DMatrix<T>) -> String {
        let name = format!("in{}.npy", self.files);
        self.files += 1;
        let stack = Stack::from_matrices(1, 1, std::slice::from_ref(m)).expect("non-empty");
        npy::write_stack(self.dir.join(&name), &stack).expect("writable target dir");
        name
    }

    fn add(&mut self, name: &str, spec: Value) {
        let mut spec = spec;
        spec["name"] = json!(name);
        self.list.push(spec);
    }
}

fn fmt_ms(s: f64) -> String {
    let ms = s * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else if ms >= 1.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

/// Runs every case `rounds` times, interleaved as the module docs say.
fn run_rounds(cases: &mut [Case<'_>], reference: &mut Option<Reference>, rounds: usize) {
    let mut last: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for round in 0..rounds {
        eprintln!("round {} of {rounds} …", round + 1);
        // One measurement per Python task and round, shared by its cases.
        let mut python: BTreeMap<String, Option<f64>> = BTreeMap::new();
        for (ci, case) in cases.iter_mut().enumerate() {
            let mut ours_first = round % 2 == 0;
            let mut ours = None;
            let mut theirs = vec![None; case.against.len()];
            for _ in 0..2 {
                if ours_first {
                    let warm = last.get(&(ci, usize::MAX)).is_none_or(|&t| t <= WARM_LIMIT);
                    let t = median_seconds(&mut case.ours, warm);
                    last.insert((ci, usize::MAX), t);
                    ours = Some(t);
                } else {
                    for (k, c) in case.against.iter_mut().enumerate() {
                        theirs[k] = match &mut c.side {
                            Side::Python(task) => *python
                                .entry(task.clone())
                                .or_insert_with(|| reference.as_mut().and_then(|r| r.time(task))),
                            Side::Local(f) => {
                                let warm = last.get(&(ci, k)).is_none_or(|&t| t <= WARM_LIMIT);
                                let t = median_seconds(f, warm);
                                last.insert((ci, k), t);
                                Some(t)
                            }
                        };
                    }
                }
                ours_first = !ours_first;
            }
            let ours = ours.expect("timed");
            case.times.push(ours);
            for (c, t) in case.against.iter_mut().zip(theirs) {
                if let Some(t) = t {
                    c.times.push(t);
                    c.ratios.push(ours / t);
                }
            }
        }
    }
}

/// A goal held to a median ratio, for the summary.
struct Verdict {
    what: String,
    ratio: f64,
    limit: f64,
}

fn section_table(cases: &[Case<'_>], section: &str, verdicts: &mut Vec<Verdict>) -> String {
    let mut out = String::from(
        "| task | against | ours (ms) | theirs (ms) | ours / theirs | range over rounds | goal | met |\n\
         |:--|:--|--:|--:|--:|:--|:--|:-:|\n",
    );
    for case in cases.iter().filter(|c| c.section == section) {
        let ours = median(&case.times);
        for c in &case.against {
            let (theirs, ratio, range) = if c.ratios.is_empty() {
                ("–".to_string(), None, "–".to_string())
            } else {
                let lo = c.ratios.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = c.ratios.iter().copied().fold(0.0, f64::max);
                (
                    fmt_ms(median(&c.times)),
                    Some(median(&c.ratios)),
                    format!("{lo:.2}–{hi:.2}"),
                )
            };
            let (goal_text, met) = match (&c.goal, ratio) {
                (Some((text, limit)), Some(x)) => {
                    verdicts.push(Verdict {
                        what: format!("{} against {}: {text}", case.task, c.label),
                        ratio: x,
                        limit: *limit,
                    });
                    (text.clone(), if x <= *limit { "yes" } else { "no" })
                }
                (Some((text, _)), None) => (text.clone(), "?"),
                (None, _) => (String::new(), ""),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                case.task,
                c.label,
                fmt_ms(ours),
                theirs,
                ratio.map_or("–".into(), |x| format!("{x:.2}")),
                range,
                goal_text,
                met
            );
        }
    }
    out
}

fn cpu_line() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let simd = if has("avx512f") {
        "AVX-512"
    } else if has("avx2") && has("fma") {
        "AVX2 + FMA, no AVX-512"
    } else {
        "no AVX2"
    };
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model} ({simd}), {threads} hardware threads")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Wall time of `cargo test --features cli` (the README's test command) on
/// a fresh clone of this checkout's HEAD, with its own target directory
/// (the dependencies' sources come from cargo's local cache).
fn fresh_test_suite(root: &Path, dir: &Path) -> Result<f64, String> {
    let clone = dir.join("fresh-clone");
    let _ = std::fs::remove_dir_all(&clone);
    let status = Command::new("git")
        .args(["clone", "--quiet"])
        .arg(root)
        .arg(&clone)
        .status()
        .map_err(|e| format!("git: {e}"))?;
    if !status.success() {
        return Err("git clone failed".into());
    }
    let log = std::fs::File::create(dir.join("test-suite.log")).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let status = Command::new("cargo")
        .args(["test", "--features", "cli"])
        .current_dir(&clone)
        .env("CARGO_TARGET_DIR", clone.join("target"))
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    let t = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&clone);
    if status.success() {
        Ok(t)
    } else {
        Err("cargo test failed (target/perf/test-suite.log)".into())
    }
}

const SVD: &str = "svd";
const JACOBI: &str = "jacobi";
const SOFTMAX: &str = "softmax";
const RANDOMIZED: &str = "randomized";
const MODEL: &str = "model";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let value = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let quick = flag("--quick");
    let usage = |msg: String| -> ! {
        eprintln!("perf: {msg}");
        std::process::exit(2)
    };
    let rounds: usize = match value("--rounds") {
        None => 3,
        Some(r) => r
            .parse()
            .ok()
            .filter(|&r| r >= 1)
            .unwrap_or_else(|| usage(format!("--rounds takes a positive integer, not {r:?}"))),
    };
    let only = value("--only");
    let sections = [SVD, JACOBI, SOFTMAX, RANDOMIZED, MODEL];
    if let Some(s) = &only
        && !sections.contains(&s.as_str())
    {
        usage(format!(
            "--only takes one of {}, not {s:?}",
            sections.join(", ")
        ));
    }
    let wanted = |s: &str| only.as_deref().is_none_or(|o| o == s);
    faer::set_global_parallelism(faer::Par::Seq);

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target").join("perf");
    std::fs::create_dir_all(&dir).expect("target/perf is writable");
    let mut tasks = Tasks {
        dir: dir.clone(),
        list: Vec::new(),
        files: 0,
    };
    let load_before = load_average();

    // ---- inputs --------------------------------------------------------
    let svd_sizes: &[usize] = if quick {
        &[8, 32, 64, 128]
    } else {
        &[8, 16, 32, 64, 128, 256, 512, 1024]
    };
    let jacobi_sizes: &[usize] = if quick { &[64, 128] } else { &[256, 512, 1024] };
    let softmax_sizes: &[usize] = if quick { &[256] } else { &[1024, 2048, 4096] };
    let (rand_n, rand_k) = if quick { (256, 8) } else { (2048, 32) };
    let stack_shape = if quick {
        [2, 2, 64, 64]
    } else {
        [12, 12, 256, 256]
    };

    let mut svd_inputs = BTreeMap::new();
    if wanted(SVD) || wanted(JACOBI) {
        let sizes = svd_sizes
            .iter()
            .filter(|_| wanted(SVD))
            .chain(jacobi_sizes.iter().filter(|_| wanted(JACOBI)));
        for &n in sizes {
            svd_inputs
                .entry(n)
                .or_insert_with(|| attention_matrix(n, n as u64));
        }
    }
    for (&n, a) in &svd_inputs {
        let f = tasks.write(a);
        for (kind, task) in [
            ("svd_full", "gesdd full"),
            ("svd_values", "gesdd values"),
            ("jsv_full", "dgejsv full"),
            ("jsv_values", "dgejsv values"),
        ] {
            tasks.add(
                &format!("{task} n={n}"),
                json!({"kind": kind, "files": [f], "threads": 1}),
            );
        }
    }
    let mut softmax_inputs = Vec::new();
    if wanted(SOFTMAX) {
        for &n in softmax_sizes {
            let mut rng = StdRng::seed_from_u64(1000 + n as u64);
            let q = gaussian::<f64>(&mut rng, n, 64);
            let k = gaussian::<f64>(&mut rng, n, 64);
            let (q32, k32) = (q.clone().cast::<f32>(), k.clone().cast::<f32>());
            let files64 = [tasks.write(&q), tasks.write(&k)];
            let files32 = [tasks.write(&q32), tasks.write(&k32)];
            for causal in [false, true] {
                let mask = if causal { "causal" } else { "none" };
                for (ty, files) in [("f32", &files32), ("f64", &files64)] {
                    tasks.add(
                        &format!("softmax {ty} {mask} n={n}"),
                        json!({"kind": "softmax", "files": files, "scale": 0.125, "causal": causal, "threads": 1}),
                    );
                    tasks.add(
                        &format!("softmax {ty} {mask} n={n}, 4 KB pages"),
                        json!({"kind": "softmax", "files": files, "scale": 0.125, "causal": causal, "threads": 1, "hugepages": false}),
                    );
                }
            }
            softmax_inputs.push((n, q, k, q32, k32));
        }
    }
    let rand_task = format!("randomized k={rand_k} n={rand_n}");
    let rand_a = wanted(RANDOMIZED).then(|| attention_matrix(rand_n, 7));
    if let Some(a) = &rand_a {
        let f = tasks.write(a);
        tasks.add(
            &rand_task,
            json!({"kind": "randomized", "files": [f], "rank": rand_k, "threads": 1}),
        );
    }
    let stack_task = format!("batched values {stack_shape:?} f32");
    let stack = wanted(MODEL).then(|| {
        let heads: Vec<DMatrix<f32>> = (0..stack_shape[0] * stack_shape[1])
            .map(|t| attention_matrix(stack_shape[2], 5000 + t as u64).cast::<f32>())
            .collect();
        let stack =
            Stack::from_matrices(stack_shape[0], stack_shape[1], &heads).expect("shapes agree");
        npy::write_stack(dir.join("stack.npy"), &stack).expect("writable target dir");
        tasks.add(
            &stack_task,
            json!({"kind": "batched_values", "files": ["stack.npy"], "threads": 2}),
        );
        stack
    });

    // ---- the reference server ------------------------------------------
    let mut reference = None;
    if !flag("--no-reference") {
        let spec = json!({
            "tasks": tasks.list, "min_reps": MIN_REPS, "min_seconds": MIN_SECONDS,
            "max_seconds": MAX_SECONDS, "max_reps": MAX_REPS,
        });
        std::fs::write(dir.join("tasks.json"), spec.to_string()).expect("writable target dir");
        eprintln!("starting scripts/perf_reference.py …");
        match Reference::start(&root.join("scripts").join("perf_reference.py"), &dir) {
            Ok(r) => reference = Some(r),
            Err(e) => eprintln!("{e}"),
        }
    }

    let options = AnalysisParams::default().precision(Precision::F32);
    let pools: Vec<rayon::ThreadPool> = [1, 2]
        .iter()
        .map(|&t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .expect("thread pool")
        })
        .collect();

    // ---- the cases -------------------------------------------------------
    let mut cases: Vec<Case<'_>> = Vec::new();
    if wanted(SVD) {
        for &n in svd_sizes {
            let a = &svd_inputs[&n];
            let view = faer::MatRef::from_column_major_slice(a.as_slice(), n, n);
            for vectors in [true, false] {
                let kind = if vectors { "full" } else { "values" };
                let numpy_goal = (n >= 64).then(|| ("Auto ≤ 1.1× numpy".to_string(), 1.1));
                let mut case = Case::new(SVD, format!("Auto {kind} n={n}"), move || {
                    if vectors {
                        std::hint::black_box(svd(a, Backend::Auto).expect("converges"));
                    } else {
                        std::hint::black_box(singular_values(a, Backend::Auto).expect("converges"));
                    }
                })
                .vs_python("numpy gesdd", &format!("gesdd {kind} n={n}"), numpy_goal)
                .vs_local(
                    "faer",
                    move || {
                        if vectors {
                            std::hint::black_box(view.thin_svd().expect("converges"));
                        } else {
                            std::hint::black_box(view.singular_values().expect("converges"));
                        }
                    },
                    None,
                );
                // nalgebra's SVD with vectors takes ~10 s at n = 1024.
                if !(vectors && n >= 1024) {
                    let nalgebra_goal =
                        (vectors && n <= 32).then(|| ("Auto ≤ 1.2× nalgebra".to_string(), 1.2));
                    case = case.vs_local(
                        "nalgebra",
                        move || {
                            if vectors {
                                std::hint::black_box(a.clone().svd(true, true));
                            } else {
                                std::hint::black_box(a.clone().singular_values());
                            }
                        },
                        nalgebra_goal,
                    );
                }
                cases.push(case);
            }
        }
    }
    if wanted(JACOBI) {
        for &n in jacobi_sizes {
            let a = &svd_inputs[&n];
            for vectors in [true, false] {
                let kind = if vectors { "full" } else { "values" };
                let gesdd_goal = (n == 512).then(|| {
                    if vectors {
                        ("Jacobi ≤ 4× gesdd".to_string(), 4.0)
                    } else {
                        ("Jacobi ≤ 5× gesdd".to_string(), 5.0)
                    }
                });
                cases.push(
                    Case::new(JACOBI, format!("Jacobi {kind} n={n}"), move || {
                        if vectors {
                            std::hint::black_box(svd(a, Backend::jacobi()).expect("converges"));
                        } else {
                            std::hint::black_box(
                                singular_values(a, Backend::jacobi()).expect("converges"),
                            );
                        }
                    })
                    .vs_python(
                        "LAPACK dgejsv",
                        &format!("dgejsv {kind} n={n}"),
                        goal("≤ dgejsv", 1.0),
                    )
                    .vs_python(
                        "numpy gesdd",
                        &format!("gesdd {kind} n={n}"),
                        gesdd_goal,
                    ),
                );
            }
        }
    }
    for (n, q, k, q32, k32) in &softmax_inputs {
        let n = *n;
        for causal in [false, true] {
            let mask_name = if causal { "causal" } else { "none" };
            let fresh32 = Case::new(
                SOFTMAX,
                format!("softmax f32 {mask_name} n={n}"),
                softmax_job(q32, k32, causal, None),
            );
            let fresh64 = Case::new(
                SOFTMAX,
                format!("softmax f64 {mask_name} n={n}"),
                softmax_job(q, k, causal, None),
            );
            // The same into one result buffer reused across calls (the
            // numpy side is the same task: numpy allocates each time).
            let into32 = Case::new(
                SOFTMAX,
                format!("softmax f32 {mask_name} n={n}, reused buffer"),
                softmax_job(q32, k32, causal, Some(DMatrix::zeros(n, n))),
            );
            let into64 = Case::new(
                SOFTMAX,
                format!("softmax f64 {mask_name} n={n}, reused buffer"),
                softmax_job(q, k, causal, Some(DMatrix::zeros(n, n))),
            );
            for (ty, fresh, case) in [
                ("f32", true, fresh32),
                ("f64", true, fresh64),
                ("f32", false, into32),
                ("f64", false, into64),
            ] {
                let task = format!("softmax {ty} {mask_name} n={n}");
                let case = case.vs_python("numpy", &task, goal("≤ 0.6× numpy", 0.6));
                // numpy asks the kernel for 2 MB pages for its large arrays
                // (madvise); a fresh Vec has 4 KB pages. The same numpy
                // without that hint shows what the page size is worth.
                cases.push(if fresh {
                    case.vs_python("numpy, 4 KB pages", &format!("{task}, 4 KB pages"), None)
                } else {
                    case
                });
            }
        }
    }
    let defaults = RandomizedParams::default();
    if let Some(a) = &rand_a {
        cases.push(
            Case::new(RANDOMIZED, rand_task.clone(), move || {
                std::hint::black_box(randomized_svd(a, rand_k, defaults).expect("valid rank"));
            })
            .vs_python("scikit-learn", &rand_task, goal("≤ 1× scikit-learn", 1.0))
            .vs_local(
                "our full values-only SVD",
                move || {
                    std::hint::black_box(singular_values(a, Backend::Auto).expect("converges"));
                },
                goal("≤ 0.1× (≥ 10× faster)", 0.1),
            ),
        );
    }
    if let Some(stack) = &stack {
        fn in_pool<'a>(
            pool: &'a rayon::ThreadPool,
            stack: &'a Stack<f32>,
            options: AnalysisParams,
        ) -> impl FnMut() + 'a {
            move || {
                pool.install(|| {
                    std::hint::black_box(analyze(stack, options).expect("valid stack"));
                })
            }
        }
        cases.push(
            Case::new(
                MODEL,
                format!("{stack_task}, 2 threads"),
                in_pool(&pools[1], stack, options),
            )
            .vs_python(
                "numpy batched (2 threads)",
                &stack_task,
                goal("≤ 0.5× numpy", 0.5),
            )
            .vs_local(
                "ours, 1 thread",
                in_pool(&pools[0], stack, options),
                goal("≥ 1.8× faster: ≤ 1/1.8 = 0.56", 1.0 / 1.8),
            ),
        );
    }

    eprintln!("{} tasks, {rounds} rounds …", cases.len());
    let start = Instant::now();
    run_rounds(&mut cases, &mut reference, rounds);
    let rounds_seconds = start.elapsed().as_secs_f64();

    // ---- not interleaved: accuracy, the randomized sweep, SSE after faer ----
    let mut randomized_notes = String::new();
    if let Some(a) = &rand_a {
        let exact = singular_values(a, Backend::Auto).expect("converges");
        let max_rel_err = |p: RandomizedParams| {
            let f = randomized_svd(a, rand_k, p).expect("valid rank");
            f.singular_values()
                .iter()
                .zip(exact.iter())
                .map(|(s, e)| ((s - e) / e).abs())
                .fold(0.0f64, f64::max)
        };
        let sklearn_err = reference
            .as_ref()
            .and_then(|r| r.errors[&rand_task].as_f64())
            .map_or("–".into(), |e| format!("{e:.2e}"));
        let _ = writeln!(
            randomized_notes,
            "At the defaults (p = 10, q = {}), the largest relative error of σ₁…σ_{rand_k} \
             against the full SVD is {:.2e} (scikit-learn's, on the same input against \
             LAPACK: {sklearn_err}).\n",
            defaults.power_iterations_for(rand_k, rand_n),
            max_rel_err(defaults)
        );
        // Settings, cheapest first, until σ₁…σ_k are within 1e-6 relative.
        randomized_notes.push_str(
            "| power iterations q | oversampling p | time (ms) | max relative error of σ₁…σ_k |\n|--:|--:|--:|--:|\n",
        );
        let mut reached = None;
        'search: for &p in &[10usize, 20, 40] {
            for &q in &[4usize, 7, 10, 14, 20] {
                let params = RandomizedParams::default()
                    .oversampling(p)
                    .power_iterations(q);
                let err = max_rel_err(params);
                let t = median_seconds(
                    &mut || {
                        std::hint::black_box(randomized_svd(a, rand_k, params).expect("rank"));
                    },
                    true,
                );
                let _ = writeln!(
                    randomized_notes,
                    "| {q} | {p} | {} | {err:.2e} |",
                    fmt_ms(t)
                );
                if err < 1e-6 {
                    reached = Some((q, p, t, err));
                    break 'search;
                }
            }
        }
        let _ = match reached {
            Some((q, p, t, err)) => writeln!(
                randomized_notes,
                "\nBelow 1e-6 first at q = {q}, p = {p}: {err:.2e} in {} ms.",
                fmt_ms(t)
            ),
            None => writeln!(randomized_notes, "\nNo setting tried reached 1e-6."),
        };
    }
    let sse = wanted(SVD).then(|| sse_after_faer(&attention_matrix(128, 128)));
    let suite = flag("--test-suite").then(|| fresh_test_suite(root, &dir));

    // ---- report --------------------------------------------------------------
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let versions = reference
        .as_ref()
        .map_or(Value::Null, |r| r.versions.clone());
    println!("## Setting\n");
    println!("- machine: {}", cpu_line());
    println!(
        "- load average (1, 5, 15 min) before: {load_before}; after: {}",
        load_average()
    );
    println!("- {rustc}; faer 0.24 and nalgebra 0.35 called directly, single-threaded");
    println!("- reference: {versions}");
    println!("- one thread everywhere except the whole-model rows (2 threads on both sides)");
    println!(
        "- {rounds} interleaved rounds in {:.0} s; times are medians over the rounds, \
         ratios ours / theirs per round (median and range)\n",
        rounds_seconds
    );
    let mut verdicts = Vec::new();
    let titles = [
        (
            SVD,
            "SVD, f64 (ours = `Backend::Auto`, with its checks; nalgebra with vectors is not run at n = 1024, where it takes about 10 s)",
        ),
        (
            JACOBI,
            "One-sided Jacobi, f64 (ours = `Backend::Jacobi`; LAPACK's preconditioned Jacobi `dgejsv` through scipy)",
        ),
        (SOFTMAX, "Attention weights softmax(QKᵀ/8), d = 64"),
        (RANDOMIZED, "Randomized top-k SVD, f64 attention"),
        (
            MODEL,
            "Whole-model analysis, [l, h, n, m] f32 stack computed in f32 (`analysis::analyze`)",
        ),
    ];
    for (section, title) in titles {
        if !cases.iter().any(|c| c.section == section) {
            continue;
        }
        println!("## {title}\n");
        println!("{}", section_table(&cases, section, &mut verdicts));
        if section == RANDOMIZED {
            println!("{randomized_notes}");
        }
    }
    if let Some(rows) = sse {
        println!("## Scalar (SSE) code right after faer\n");
        println!("20 000 × (ln + cos), median of 15, each run right after the call named:\n");
        println!("| before the scalar work | time (ms) | × the clean run |\n|:--|--:|--:|");
        let clean = rows[0].1;
        for (label, t) in rows {
            println!("| {label} | {} | {:.1} |", fmt_ms(t), t / clean);
        }
        println!();
    }
    if let Some(suite) = &suite {
        println!("## `cargo test --features cli` on a fresh clone\n");
        match suite {
            Ok(t) => {
                println!(
                    "{:.1} min wall time (goal ≤ 8 min), dependencies from cargo's cache.\n",
                    t / 60.0
                );
                verdicts.push(Verdict {
                    what: "cargo test on a fresh clone: ≤ 8 min".into(),
                    ratio: t / 480.0,
                    limit: 1.0,
                });
            }
            Err(e) => println!("not measured: {e}\n"),
        }
    }
    println!("## Goals\n");
    let met = verdicts.iter().filter(|v| v.ratio <= v.limit).count();
    println!("{met} of {} goals met. Missed:\n", verdicts.len());
    for v in verdicts.iter().filter(|v| v.ratio > v.limit) {
        println!(
            "- {}: median ratio {:.2}, {:.2}× the goal",
            v.what,
            v.ratio,
            v.ratio / v.limit
        );
    }
}

/// The same scalar libm work (ln and cos, compiled for the x86-64
/// baseline, i.e. SSE) timed right after nothing, after faer's SVD called
/// directly, and after this crate's `Backend::Faer` (which executes
/// `vzeroupper` when faer returns).
fn sse_after_faer(small: &DMatrix<f64>) -> Vec<(&'static str, f64)> {
    let sse_work = || {
        let mut acc = 0.0f64;
        for i in 1..=20_000 {
            let x = i as f64 * 1e-4;
            acc += x.ln() * (7.0 * x).cos();
        }
        std::hint::black_box(acc);
    };
    let view =
        faer::MatRef::from_column_major_slice(small.as_slice(), small.nrows(), small.ncols());
    let after = |prepare: &dyn Fn()| {
        let mut times = Vec::new();
        for _ in 0..15 {
            clear_upper_state();
            prepare();
            let t = Instant::now();
            sse_work();
            times.push(t.elapsed().as_secs_f64());
        }
        median(&times)
    };
    vec![
        ("nothing", after(&|| {})),
        (
            "faer's `thin_svd` (n = 128), called directly",
            after(&|| {
                std::hint::black_box(view.thin_svd().expect("converges"));
            }),
        ),
        (
            "`svd(.., Backend::Faer)` (n = 128)",
            after(&|| {
                std::hint::black_box(svd(small, Backend::Faer).expect("converges"));
            }),
        ),
    ]
}
