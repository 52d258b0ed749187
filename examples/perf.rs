//! Side-by-side timings against the reference implementations, in one run.
//!
//! ```text
//! cargo run --release --example perf               # everything (a few minutes)
//! cargo run --release --example perf -- --quick    # small sizes only (smoke run)
//! cargo run --release --example perf -- --no-reference   # without Python
//! ```
//!
//! The harness generates seeded inputs, writes them as `.npy` files with a
//! `tasks.json` into `target/perf/`, runs `scripts/perf_reference.py` on them
//! (numpy/scipy LAPACK `gesdd`, numpy softmax, scikit-learn's
//! `randomized_svd`, each under a threadpoolctl thread limit), times this
//! crate, faer and nalgebra on the same inputs in this process, and prints
//! Markdown tables of medians and ratios (ours / numpy) with the goals of
//! issue 6. `docs/PERFORMANCE.md` holds one such output.
//!
//! Inputs: attention-like f64 matrices softmax(QKᵀ·2/√64) with standard
//! normal Q, K (n×64); for the softmax rows, Q and K themselves; for the
//! whole-model rows, a [12, 12, 256, 256] f32 stack of such attention.
//! Every time is the median of at least 3 runs after a warm-up run (more
//! runs, up to 20, while the total stays under a second).

use attention_svd::Precision;
use attention_svd::attention::Scale;
use attention_svd::attention::{scaled_dot_product, scaled_dot_product_into};
use attention_svd::io::npy;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use attention_svd::analysis::{AnalysisParams, analyze};
use attention_svd::attention::Mask;
use attention_svd::randomized::{RandomizedParams, randomized_svd};
use attention_svd::svd::{Backend, singular_values, svd};
use attention_svd::{Scalar, Stack};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::{Value, json};

const MIN_REPS: usize = 3;
const MIN_SECONDS: f64 = 1.0;
const MAX_REPS: usize = 20;

/// Leaves the vector registers in a clean state: faer's kernels return with
/// the upper halves of the AVX registers dirty, which slows down the SSE
/// code that follows, and the raw faer calls timed here do not clean up.
/// Any call into faer through the crate does (`simd::faer_call`), so one
/// tiny one is made; every measurement starts from a clean state.
fn clear_upper_state() {
    let tiny = DMatrix::<f64>::identity(1, 1);
    std::hint::black_box(singular_values(&tiny, Backend::Faer).expect("1×1"));
}

/// Median wall time in seconds of `f`, after one warm-up call.
fn median_seconds(mut f: impl FnMut()) -> f64 {
    clear_upper_state();
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < MIN_REPS
        || (start.elapsed().as_secs_f64() < MIN_SECONDS && times.len() < MAX_REPS)
    {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let h = times.len() / 2;
    if times.len() % 2 == 1 {
        times[h]
    } else {
        0.5 * (times[h - 1] + times[h])
    }
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

/// One row of a result table.
struct Row {
    task: String,
    ours: f64,
    numpy: Option<f64>,
    faer: Option<f64>,
    nalgebra: Option<f64>,
    goal: Option<(&'static str, f64)>,
}

struct Harness {
    dir: PathBuf,
    tasks: Vec<Value>,
    files: usize,
}

impl Harness {
    fn write<T: Scalar>(&mut self, m: &DMatrix<T>) -> String {
        let name = format!("in{}.npy", self.files);
        self.files += 1;
        let stack = Stack::from_matrices(1, 1, std::slice::from_ref(m)).expect("non-empty");
        npy::write_stack(self.dir.join(&name), &stack).expect("writable target dir");
        name
    }

    fn task(&mut self, name: &str, spec: Value) {
        let mut spec = spec;
        spec["name"] = json!(name);
        self.tasks.push(spec);
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

fn opt_ms(x: Option<f64>) -> String {
    x.map_or("–".into(), fmt_ms)
}

/// The suffix of a task run with a reused result buffer; its reference is
/// the task without it.
const INTO: &str = ", reused buffer";

fn table(rows: &[Row], numpy: &BTreeMap<String, f64>) -> String {
    let mut out = String::from(
        "| task | ours (ms) | numpy (ms) | faer (ms) | nalgebra (ms) | ours / numpy | goal | met |\n\
         |:--|--:|--:|--:|--:|--:|:--|:-:|\n",
    );
    for r in rows {
        let np = r
            .numpy
            .or_else(|| numpy.get(r.task.trim_end_matches(INTO)).copied());
        let ratio = np.map(|n| r.ours / n);
        let (goal, met) = match (r.goal, ratio) {
            (Some((text, limit)), Some(x)) => {
                (text.to_string(), if x <= limit { "yes" } else { "no" })
            }
            (Some((text, _)), None) => (text.to_string(), "?"),
            (None, _) => (String::new(), ""),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.task,
            fmt_ms(r.ours),
            opt_ms(np),
            opt_ms(r.faer),
            opt_ms(r.nalgebra),
            ratio.map_or("–".into(), |x| format!("{x:.2}")),
            goal,
            met
        );
    }
    out
}

fn faer_direct(a: &DMatrix<f64>, vectors: bool) -> f64 {
    let view = faer::MatRef::from_column_major_slice(a.as_slice(), a.nrows(), a.ncols());
    if vectors {
        median_seconds(|| {
            std::hint::black_box(view.thin_svd().expect("converges"));
        })
    } else {
        median_seconds(|| {
            std::hint::black_box(view.singular_values().expect("converges"));
        })
    }
}

fn nalgebra_direct(a: &DMatrix<f64>, vectors: bool) -> f64 {
    if vectors {
        median_seconds(|| {
            std::hint::black_box(a.clone().svd(true, true));
        })
    } else {
        median_seconds(|| {
            std::hint::black_box(a.clone().singular_values());
        })
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let reference = !args.iter().any(|a| a == "--no-reference");
    faer::set_global_parallelism(faer::Par::Seq);

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target").join("perf");
    std::fs::create_dir_all(&dir).expect("target/perf is writable");
    let mut h = Harness {
        dir: dir.clone(),
        tasks: Vec::new(),
        files: 0,
    };

    // ---- inputs --------------------------------------------------------
    let svd_sizes: &[usize] = if quick { &[64, 128] } else { &[256, 512, 1024] };
    let small_sizes: &[usize] = &[8, 16, 32, 64, 128];
    let jacobi_sizes: &[usize] = if quick { &[64] } else { &[256, 512] };
    let softmax_sizes: &[usize] = if quick { &[256] } else { &[1024, 2048, 4096] };
    let (rand_n, rand_k) = if quick { (256, 8) } else { (2048, 32) };
    let stack_shape = if quick {
        [2, 2, 64, 64]
    } else {
        [12, 12, 256, 256]
    };

    let mut svd_inputs = BTreeMap::new();
    for &n in svd_sizes.iter().chain(small_sizes).chain(jacobi_sizes) {
        svd_inputs
            .entry(n)
            .or_insert_with(|| attention_matrix(n, n as u64));
    }
    for (&n, a) in &svd_inputs {
        let f = h.write(a);
        h.task(
            &format!("svd full n={n}"),
            json!({"kind": "svd_full", "files": [f], "threads": 1}),
        );
        h.task(
            &format!("svd values n={n}"),
            json!({"kind": "svd_values", "files": [f], "threads": 1}),
        );
    }
    let mut softmax_inputs = Vec::new();
    for &n in softmax_sizes {
        let mut rng = StdRng::seed_from_u64(1000 + n as u64);
        let q = gaussian::<f64>(&mut rng, n, 64);
        let k = gaussian::<f64>(&mut rng, n, 64);
        let (q32, k32) = (q.clone().cast::<f32>(), k.clone().cast::<f32>());
        let files64 = [h.write(&q), h.write(&k)];
        let files32 = [h.write(&q32), h.write(&k32)];
        for causal in [false, true] {
            let mask = if causal { "causal" } else { "none" };
            h.task(
                &format!("softmax f32 {mask} n={n}"),
                json!({"kind": "softmax", "files": files32, "scale": 0.125, "causal": causal, "threads": 1}),
            );
            h.task(
                &format!("softmax f64 {mask} n={n}"),
                json!({"kind": "softmax", "files": files64, "scale": 0.125, "causal": causal, "threads": 1}),
            );
        }
        softmax_inputs.push((n, q, k, q32, k32));
    }
    let rand_a = attention_matrix(rand_n, 7);
    let rand_file = h.write(&rand_a);
    h.task(
        &format!("randomized k={rand_k} n={rand_n}"),
        json!({"kind": "randomized", "files": [rand_file], "rank": rand_k, "threads": 1}),
    );
    let heads: Vec<DMatrix<f32>> = (0..stack_shape[0] * stack_shape[1])
        .map(|t| attention_matrix(stack_shape[2], 5000 + t as u64).cast::<f32>())
        .collect();
    let stack = Stack::from_matrices(stack_shape[0], stack_shape[1], &heads).expect("shapes agree");
    let stack_file = "stack.npy".to_string();
    npy::write_stack(dir.join(&stack_file), &stack).expect("writable target dir");
    let stack_task = format!("batched values {stack_shape:?} f32");
    h.task(
        &stack_task,
        json!({"kind": "batched_values", "files": [stack_file], "threads": 2}),
    );

    // ---- the references ------------------------------------------------
    let mut numpy: BTreeMap<String, f64> = BTreeMap::new();
    let mut versions = Value::Null;
    if reference {
        let spec = json!({"tasks": h.tasks, "min_reps": MIN_REPS, "min_seconds": MIN_SECONDS, "max_reps": MAX_REPS});
        std::fs::write(dir.join("tasks.json"), spec.to_string()).expect("writable target dir");
        eprintln!("running scripts/perf_reference.py …");
        let out = Command::new("python3")
            .arg(root.join("scripts").join("perf_reference.py"))
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let v: Value = serde_json::from_slice(&o.stdout).expect("the script prints JSON");
                for (name, t) in v["times"].as_object().expect("times") {
                    numpy.insert(name.clone(), t.as_f64().expect("seconds"));
                }
                versions = v["versions"].clone();
            }
            Ok(o) => eprintln!(
                "perf_reference.py failed (pip install numpy scipy scikit-learn threadpoolctl?):\n{}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("cannot run python3: {e}"),
        }
    }

    // ---- ours, faer, nalgebra --------------------------------------------
    eprintln!("timing this crate, faer and nalgebra …");
    let mut rows = Vec::new();
    for &n in svd_sizes {
        let a = &svd_inputs[&n];
        let slow_nalgebra = n >= 1024 && quick;
        rows.push(Row {
            task: format!("svd full n={n}"),
            ours: median_seconds(|| {
                std::hint::black_box(svd(a, Backend::Auto).expect("converges"));
            }),
            numpy: None,
            faer: Some(faer_direct(a, true)),
            nalgebra: (!slow_nalgebra).then(|| nalgebra_direct(a, true)),
            goal: Some(("Auto ≤ 1.1× numpy", 1.1)),
        });
        rows.push(Row {
            task: format!("svd values n={n}"),
            ours: median_seconds(|| {
                std::hint::black_box(singular_values(a, Backend::Auto).expect("converges"));
            }),
            numpy: None,
            faer: Some(faer_direct(a, false)),
            nalgebra: Some(nalgebra_direct(a, false)),
            goal: Some(("Auto ≤ 1.1× numpy", 1.1)),
        });
    }
    let mut jacobi_rows = Vec::new();
    for &n in jacobi_sizes {
        let a = &svd_inputs[&n];
        for vectors in [true, false] {
            let kind = if vectors { "full" } else { "values" };
            jacobi_rows.push(Row {
                task: format!("svd {kind} n={n}"),
                ours: median_seconds(|| {
                    if vectors {
                        std::hint::black_box(svd(a, Backend::jacobi()).expect("converges"));
                    } else {
                        std::hint::black_box(
                            singular_values(a, Backend::jacobi()).expect("converges"),
                        );
                    }
                }),
                numpy: None,
                faer: None,
                nalgebra: None,
                goal: Some(("Jacobi ≤ 4× numpy", 4.0)),
            });
        }
    }
    let mut small_rows = Vec::new();
    for &n in small_sizes {
        let a = &svd_inputs[&n];
        for vectors in [true, false] {
            let kind = if vectors { "full" } else { "values" };
            let ours = median_seconds(|| {
                if vectors {
                    std::hint::black_box(svd(a, Backend::Auto).expect("converges"));
                } else {
                    std::hint::black_box(singular_values(a, Backend::Auto).expect("converges"));
                }
            });
            small_rows.push(Row {
                task: format!("svd {kind} n={n}"),
                ours,
                numpy: None,
                faer: Some(faer_direct(a, vectors)),
                nalgebra: Some(nalgebra_direct(a, vectors)),
                goal: None,
            });
        }
    }
    let mut softmax_rows = Vec::new();
    for (n, q, k, q32, k32) in &softmax_inputs {
        for mask_name in ["none", "causal"] {
            let mask64 = if mask_name == "causal" {
                Mask::causal()
            } else {
                Mask::none()
            };
            let mask32 = if mask_name == "causal" {
                Mask::causal()
            } else {
                Mask::none()
            };
            softmax_rows.push(Row {
                task: format!("softmax f32 {mask_name} n={n}"),
                ours: median_seconds(|| {
                    std::hint::black_box(
                        scaled_dot_product(q32, k32, &mask32, Scale::fixed(0.125)).expect("finite"),
                    );
                }),
                numpy: None,
                faer: None,
                nalgebra: None,
                goal: Some(("≤ 0.6× numpy", 0.6)),
            });
            softmax_rows.push(Row {
                task: format!("softmax f64 {mask_name} n={n}"),
                ours: median_seconds(|| {
                    std::hint::black_box(
                        scaled_dot_product(q, k, &mask64, Scale::fixed(0.125)).expect("finite"),
                    );
                }),
                numpy: None,
                faer: None,
                nalgebra: None,
                goal: Some(("≤ 0.6× numpy", 0.6)),
            });
            // The same with one result buffer reused across calls (the
            // numpy column is the same task's: numpy allocates each time).
            let mut out32 = DMatrix::<f32>::zeros(*n, *n);
            softmax_rows.push(Row {
                task: format!("softmax f32 {mask_name} n={n}{INTO}"),
                ours: median_seconds(|| {
                    scaled_dot_product_into(q32, k32, &mask32, Scale::fixed(0.125), &mut out32)
                        .expect("finite");
                    std::hint::black_box(&out32);
                }),
                numpy: None,
                faer: None,
                nalgebra: None,
                goal: Some(("≤ 0.6× numpy", 0.6)),
            });
            let mut out64 = DMatrix::<f64>::zeros(*n, *n);
            softmax_rows.push(Row {
                task: format!("softmax f64 {mask_name} n={n}{INTO}"),
                ours: median_seconds(|| {
                    scaled_dot_product_into(q, k, &mask64, Scale::fixed(0.125), &mut out64)
                        .expect("finite");
                    std::hint::black_box(&out64);
                }),
                numpy: None,
                faer: None,
                nalgebra: None,
                goal: Some(("≤ 0.6× numpy", 0.6)),
            });
        }
    }

    // ---- randomized top-k --------------------------------------------------
    let exact = singular_values(&rand_a, Backend::Auto).expect("converges");
    let full_values = median_seconds(|| {
        std::hint::black_box(singular_values(&rand_a, Backend::Auto).expect("converges"));
    });
    let max_rel_err = |p: RandomizedParams| {
        let f = randomized_svd(&rand_a, rand_k, p).expect("valid rank");
        f.singular_values()
            .iter()
            .zip(exact.iter())
            .map(|(s, e)| ((s - e) / e).abs())
            .fold(0.0f64, f64::max)
    };
    let defaults = RandomizedParams::default();
    let default_time = median_seconds(|| {
        std::hint::black_box(randomized_svd(&rand_a, rand_k, defaults).expect("valid rank"));
    });
    let default_err = max_rel_err(defaults);
    let rand_task = format!("randomized k={rand_k} n={rand_n}");
    let rand_rows = vec![
        Row {
            task: rand_task.clone(),
            ours: default_time,
            numpy: None,
            faer: None,
            nalgebra: None,
            goal: Some(("≤ 1× scikit-learn", 1.0)),
        },
        Row {
            task: format!("randomized vs our full values-only n={rand_n}"),
            ours: default_time,
            numpy: Some(full_values),
            faer: None,
            nalgebra: None,
            goal: Some(("≤ 0.1× (≥ 10× faster)", 0.1)),
        },
    ];
    // Settings, cheapest first, until σ₁…σ_k are within 1e-6 relative.
    let mut sweep = String::from(
        "| power iterations q | oversampling p | time (ms) | max relative error of σ₁…σ_k |\n|--:|--:|--:|--:|\n",
    );
    let mut reached = None;
    'search: for &p in &[10usize, 20, 40] {
        for &q in &[4usize, 7, 10, 14, 20] {
            let params = RandomizedParams::default()
                .oversampling(p)
                .power_iterations(q);
            let err = max_rel_err(params);
            let t = median_seconds(|| {
                std::hint::black_box(randomized_svd(&rand_a, rand_k, params).expect("valid rank"));
            });
            let _ = writeln!(sweep, "| {q} | {p} | {} | {err:.2e} |", fmt_ms(t));
            if err < 1e-6 {
                reached = Some((q, p, t, err));
                break 'search;
            }
        }
    }

    // ---- many heads ----------------------------------------------------------
    let options = AnalysisParams::default().precision(Precision::F32);
    let in_pool = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        median_seconds(|| {
            pool.install(|| std::hint::black_box(analyze(&stack, options).expect("valid stack")));
        })
    };
    let one = in_pool(1);
    let two = in_pool(2);
    let stack_rows = vec![
        Row {
            task: format!("{stack_task}, 2 threads vs numpy (2 threads)"),
            ours: two,
            numpy: numpy.get(&stack_task).copied(),
            faer: None,
            nalgebra: None,
            goal: Some(("≤ 0.6× numpy", 0.6)),
        },
        Row {
            task: format!("{stack_task}, 2 threads vs our 1 thread"),
            ours: two,
            numpy: Some(one),
            faer: None,
            nalgebra: None,
            goal: Some(("≤ 1/1.8 = 0.56", 1.0 / 1.8)),
        },
    ];

    // ---- scalar code after faer ---------------------------------------------
    // The same scalar libm work (ln and cos, compiled for the x86-64
    // baseline, i.e. SSE) timed right after nothing, after faer's SVD called
    // directly, and after this crate's `Backend::Faer` (which executes
    // `vzeroupper` when faer returns).
    let sse_work = || {
        let mut acc = 0.0f64;
        for i in 1..=20_000 {
            let x = i as f64 * 1e-4;
            acc += x.ln() * (7.0 * x).cos();
        }
        std::hint::black_box(acc);
    };
    let small = &svd_inputs[&128];
    let small_view =
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
        times.sort_by(|a, b| a.total_cmp(b));
        times[times.len() / 2]
    };
    let after_ours = after(&|| {
        std::hint::black_box(svd(small, Backend::Faer).expect("converges"));
    });
    let clean = after(&|| {});
    let after_faer = after(&|| {
        std::hint::black_box(small_view.thin_svd().expect("converges"));
    });

    // ---- report --------------------------------------------------------------
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("## Setting\n");
    println!("- machine: {cpu}, {threads} hardware threads");
    println!("- {rustc}; faer 0.24 and nalgebra 0.35 called directly, single-threaded");
    println!("- reference: {versions}");
    println!("- one thread everywhere except the whole-model rows (2 threads on both sides)");
    println!("- times are medians of ≥ {MIN_REPS} runs; ratios are ours / reference\n");
    println!("## Full SVD, f64 (ours = `Backend::Auto`, with its checks)\n");
    println!("{}", table(&rows, &numpy));
    println!("## Small matrices, f64: `Auto` against faer and nalgebra\n");
    println!("{}", table(&small_rows, &numpy));
    println!("## One-sided Jacobi, f64 (ours = `Backend::Jacobi`)\n");
    println!("{}", table(&jacobi_rows, &numpy));
    println!("## Attention weights softmax(QKᵀ/8), d = 64\n");
    println!("{}", table(&softmax_rows, &numpy));
    println!(
        "## Randomized top-k SVD, f64 attention (numpy column: scikit-learn `randomized_svd`, then our full values-only SVD)\n"
    );
    println!("{}", table(&rand_rows, &numpy));
    println!(
        "At the defaults (p = 10, q = {}), the largest relative error of σ₁…σ_{rand_k} \
         against the full SVD is {default_err:.2e}.\n",
        defaults.power_iterations_for(rand_k, rand_n)
    );
    println!("{sweep}");
    match reached {
        Some((q, p, t, err)) => println!(
            "Below 1e-6 first at q = {q}, p = {p}: {err:.2e} in {} ms.\n",
            fmt_ms(t)
        ),
        None => println!("No setting tried reached 1e-6.\n"),
    }
    println!(
        "## Whole-model analysis, [l, h, n, m] f32 stack computed in f32 (`analysis::analyze`)\n"
    );
    println!("{}", table(&stack_rows, &numpy));
    println!(
        "1 thread: {} ms, 2 threads: {} ms, speed-up {:.2}×.\n",
        fmt_ms(one),
        fmt_ms(two),
        one / two
    );
    println!("## Scalar (SSE) code right after faer\n");
    println!("20 000 × (ln + cos), median of 15, each run right after the call named:\n");
    println!("| before the scalar work | time (ms) | × the clean run |\n|:--|--:|--:|");
    for (label, t) in [
        ("nothing", clean),
        ("faer's `thin_svd` (n = 128), called directly", after_faer),
        ("`svd(.., Backend::Faer)` (n = 128)", after_ours),
    ] {
        println!("| {label} | {} | {:.1} |", fmt_ms(t), t / clean);
    }
}
