//! The LAPACK-style accuracy suite of the SVD backends: one crate (not
//! published) that the integration test `tests/accuracy.rs` asserts on and
//! whose binary (`cargo run --release -p attention-svd-accuracy`) prints
//! the table kept in `docs/ACCURACY.md`. It covers every backend of
//! [`Backend::all`].
//!
//! # Test ratios (LAPACK's xDRVBD)
//!
//! For an n×m matrix A with k = min(n, m), ulp = ε of the scalar type, the
//! factors (U, σ, Vᵀ) returned by `svd` and the values σ' returned by
//! `singular_values`, all evaluated in f64:
//!
//! ```text
//! reconstruction   ‖A − U·diag(σ)·Vᵀ‖_F / (‖A‖_F·max(n, m)·ulp)   (‖A − UΣVᵀ‖_F / ulp if A = 0)
//! orthogonality U  ‖I − UᵀU‖_F / (n·ulp)
//! orthogonality V  ‖I − VᵀV‖_F / (m·ulp)
//! order            0 if σ and σ' are sorted non-increasing and ≥ 0, else 1/ulp
//! values only      max|σᵢ − σ'ᵢ| / (σ₁·ulp)                           (0 if σ = σ' = 0)
//! ```
//!
//! A backend error counts as 1/ulp on every ratio. A ratio below
//! [`THRESHOLD`] = 50 passes (LAPACK's threshold).

use std::fmt::Write as _;

use attention_svd::attention::{Mask, softmax_rows};
use attention_svd::svd::{Backend, Method, singular_values, svd};
use attention_svd::{Error, Scalar};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// LAPACK's pass threshold for every test ratio.
pub const THRESHOLD: f64 = 50.0;

/// The backends, in table order: the crate's one list, [`Backend::all`].
pub fn backends() -> &'static [Backend] {
    Backend::all()
}

/// Number of backends.
pub fn backend_count() -> usize {
    backends().len()
}

/// The name of backend `b` (an index into [`backends`]).
pub fn backend_name(b: usize) -> &'static str {
    backends()[b].name()
}

fn index_of(pred: impl Fn(&Backend) -> bool) -> usize {
    backends()
        .iter()
        .position(pred)
        .expect("the backend is in Backend::all()")
}

/// Index of `Auto` in [`backends`].
pub fn auto() -> usize {
    index_of(|b| *b == Backend::Auto)
}

/// Index of nalgebra in [`backends`].
pub fn nalgebra() -> usize {
    index_of(|b| matches!(b, Backend::Nalgebra(_)))
}

/// Index of Jacobi in [`backends`].
pub fn jacobi() -> usize {
    index_of(|b| matches!(b, Backend::Jacobi(_)))
}

// ---------------------------------------------------------------------------
// Ratios
// ---------------------------------------------------------------------------

/// The five test ratios of one matrix and backend.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ratios {
    /// ‖A − UΣVᵀ‖_F / (‖A‖_F·max(n, m)·ulp).
    pub reconstruction: f64,
    /// ‖I − UᵀU‖_F / (n·ulp).
    pub orthogonality_u: f64,
    /// ‖I − VᵀV‖_F / (m·ulp).
    pub orthogonality_v: f64,
    /// 0, or 1/ulp if σ or σ' is unsorted or negative.
    pub order: f64,
    /// max|σᵢ − σ'ᵢ| / (σ₁·ulp).
    pub values_only: f64,
}

impl Ratios {
    /// The ratio names, in the order of [`Ratios::all`].
    pub const NAMES: [&'static str; 5] = [
        "reconstruction",
        "orthogonality U",
        "orthogonality V",
        "order",
        "values only",
    ];

    /// Every ratio set to 1/ulp (a failed run).
    pub fn failed(ulp: f64) -> Self {
        let f = 1.0 / ulp;
        Ratios {
            reconstruction: f,
            orthogonality_u: f,
            orthogonality_v: f,
            order: f,
            values_only: f,
        }
    }

    /// The ratios in the order of [`Ratios::NAMES`].
    pub fn all(&self) -> [f64; 5] {
        [
            self.reconstruction,
            self.orthogonality_u,
            self.orthogonality_v,
            self.order,
            self.values_only,
        ]
    }

    /// The largest ratio and its name.
    pub fn worst(&self) -> (f64, &'static str) {
        let mut best = (0.0, Self::NAMES[0]);
        for (r, name) in self.all().into_iter().zip(Self::NAMES) {
            if r > best.0 {
                best = (r, name);
            }
        }
        best
    }

    /// The largest of the ratios of the run with vectors (all but "values only").
    pub fn worst_with_vectors(&self) -> f64 {
        self.reconstruction
            .max(self.orthogonality_u)
            .max(self.orthogonality_v)
            .max(self.order)
    }
}

/// ‖X‖_F of an f64 matrix.
fn fro(x: &DMatrix<f64>) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// x^y, with x hidden from the optimiser: with a constant power-of-two x
/// (such as ε), LLVM may rewrite `powf` as `exp2`, which rounds differently,
/// depending on inlining (so on the build profile).
fn pow(x: f64, y: f64) -> f64 {
    std::hint::black_box(x).powf(y)
}

/// A·B by the textbook triple loop. nalgebra hands large products to
/// matrixmultiply, whose summation order depends on the CPU (FMA kernels)
/// and on debug assertions; this keeps the generated matrices and the
/// ratios bit-for-bit reproducible across machines and build profiles.
pub fn matmul(a: &DMatrix<f64>, b: &DMatrix<f64>) -> DMatrix<f64> {
    assert_eq!(a.ncols(), b.nrows(), "matmul shapes");
    DMatrix::from_fn(a.nrows(), b.ncols(), |i, j| {
        (0..a.ncols()).fold(0.0, |acc, l| acc + a[(i, l)] * b[(l, j)])
    })
}

/// Whether σ is finite, ≥ 0 and sorted non-increasing.
fn is_sorted_non_negative<T: Scalar>(s: &[T]) -> bool {
    s.iter().all(|&x| x.finite() && x >= T::zero()) && s.windows(2).all(|w| w[0] >= w[1])
}

/// The ratios of given factors (U: n×k, σ, Vᵀ: k×m) and values-only σ' of
/// `a`, computed in f64. A and σ are first divided by a power of two near
/// max|aᵢⱼ| (exactly), so that norms neither overflow nor underflow.
pub fn ratios_of<T: Scalar>(
    a: &DMatrix<T>,
    u: &DMatrix<T>,
    sigma: &[T],
    v_t: &DMatrix<T>,
    values: &[T],
) -> Ratios {
    let ulp = T::EPSILON.to_f64();
    let fail = 1.0 / ulp;
    let (n, m) = a.shape();
    let k = n.min(m);
    if u.shape() != (n, k) || v_t.shape() != (k, m) || sigma.len() != k || values.len() != k {
        return Ratios::failed(ulp);
    }
    let a64 = a.map(|x| x.to_f64());
    let amax = a64.amax();
    let scale = if amax > 0.0 {
        2f64.powi(amax.log2().floor() as i32)
    } else {
        1.0
    };
    let a_s = a64.map(|x| x / scale);
    let u64 = u.map(|x| x.to_f64());
    let v_t64 = v_t.map(|x| x.to_f64());
    let mut us = u64.clone();
    for (j, &s) in sigma.iter().enumerate() {
        let s = s.to_f64() / scale;
        us.column_mut(j).iter_mut().for_each(|x| *x *= s);
    }
    let residual = fro(&(&a_s - matmul(&us, &v_t64)));
    let anorm = fro(&a_s);
    let reconstruction = if anorm > 0.0 {
        residual / (anorm * n.max(m) as f64 * ulp)
    } else {
        residual / ulp
    };
    let eye = DMatrix::<f64>::identity(k, k);
    let orthogonality_u = fro(&(&eye - matmul(&u64.transpose(), &u64))) / (n as f64 * ulp);
    let orthogonality_v = fro(&(&eye - matmul(&v_t64, &v_t64.transpose()))) / (m as f64 * ulp);
    let order = if is_sorted_non_negative(sigma) && is_sorted_non_negative(values) {
        0.0
    } else {
        fail
    };
    let diff = sigma
        .iter()
        .zip(values)
        .map(|(x, y)| (x.to_f64() - y.to_f64()).abs())
        .fold(0.0, f64::max);
    let s1 = sigma[0].to_f64();
    let values_only = if s1 > 0.0 {
        diff / (s1 * ulp)
    } else if diff == 0.0 {
        0.0
    } else {
        fail
    };
    // NaN (impossible for finite factors) would compare false: count it as a failure.
    let clean = |r: f64| if r.is_nan() { fail } else { r };
    Ratios {
        reconstruction: clean(reconstruction),
        orthogonality_u: clean(orthogonality_u),
        orthogonality_v: clean(orthogonality_v),
        order,
        values_only: clean(values_only),
    }
}

/// One backend on one matrix: its ratios, the method `svd` reported, and
/// the error if either call failed.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The test ratios (all 1/ulp on error).
    pub ratios: Ratios,
    /// [`Svd::method`](attention_svd::svd::Svd::method) of the run with vectors.
    pub method: Option<Method>,
    /// The error of `svd` or `singular_values`, if any.
    pub error: Option<Error>,
}

/// Runs `svd` and `singular_values` on `a` with `backend` and computes the ratios.
pub fn ratios<T: Scalar>(a: &DMatrix<T>, backend: Backend) -> Outcome {
    let failed = |method, error| Outcome {
        ratios: Ratios::failed(T::EPSILON.to_f64()),
        method,
        error: Some(error),
    };
    let f = match svd(a, backend) {
        Ok(f) => f,
        Err(e) => return failed(None, e),
    };
    let values = match singular_values(a, backend) {
        Ok(v) => v,
        Err(e) => return failed(Some(f.method()), e),
    };
    Outcome {
        ratios: ratios_of(a, f.u(), f.singular_values(), f.v_t(), &values),
        method: Some(f.method()),
        error: None,
    }
}

// ---------------------------------------------------------------------------
// Matrix families
// ---------------------------------------------------------------------------

/// Where a prescribed spectrum is scaled to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// σ₁ = 1.
    One,
    /// σ₁ = 1e3·MIN_POSITIVE/ε of the type (1e-28 in f32, 1e-289 in f64).
    Underflow,
    /// σ₁ = 1e-3·MAX·ε of the type (4e28 in f32, 4e289 in f64).
    Overflow,
}

impl Scale {
    /// The factor σ₁ for type `T`.
    pub fn factor<T: Scalar>(self) -> f64 {
        match self {
            Scale::One => 1.0,
            Scale::Underflow => T::MIN_POSITIVE.to_f64() / T::EPSILON.to_f64() * 1e3,
            Scale::Overflow => T::MAX.to_f64() * T::EPSILON.to_f64() / 1e3,
        }
    }
}

/// How a family's matrices are built.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A = 0.
    Zero,
    /// The n×m identity.
    Identity,
    /// A = U·diag(σ)·Vᵀ·scale with Haar-random orthogonal U, V (QR of
    /// Gaussian matrices) and σ from 1 down to ulp, evenly spaced or
    /// geometrically graded.
    Spectrum {
        /// Geometric (σᵢ = ulp^(i/(k−1))) rather than evenly spaced.
        geometric: bool,
        /// The scale σ₁.
        scale: Scale,
    },
    /// Entries uniform in (−1, 1).
    Random,
    /// Upper (n ≥ m) or lower (n < m) bidiagonal with entries uniform in (−1, 1).
    Bidiagonal,
    /// softmax(s·Z) row by row, Z standard Gaussian; s is the field.
    Softmax(f64),
    /// softmax(Z) with the causal mask, Z standard Gaussian (n ≤ m only).
    Causal,
    /// (1/m)·1·1ᵀ.
    UniformRows,
    /// Row i = e_π(i)ᵀ for a random map π.
    OneHot,
    /// 1·1ᵀ (nalgebra issue #1172).
    AllOnes,
}

/// A named family and the shapes it is run on.
#[derive(Clone, Debug)]
pub struct Family {
    /// The table row label.
    pub name: &'static str,
    /// The generator.
    pub kind: Kind,
    /// (n, m, repetitions with different seeds).
    pub shapes: Vec<(usize, usize, usize)>,
}

/// The standard shapes: square, tall, wide and vectors.
pub const SHAPES: [(usize, usize); 9] = [
    (1, 1),
    (2, 2),
    (3, 3),
    (10, 10),
    (24, 24),
    (20, 8),
    (8, 20),
    (1, 7),
    (7, 1),
];

/// Every family of the suite with its shapes.
pub fn families() -> Vec<Family> {
    let once: Vec<_> = SHAPES.iter().map(|&(n, m)| (n, m, 1)).collect();
    // Random families: three seeds per standard shape, one 64×64.
    let random = |big: bool| {
        let mut s: Vec<_> = SHAPES.iter().map(|&(n, m)| (n, m, 3)).collect();
        if big {
            s.push((64, 64, 1));
        }
        s
    };
    let grid: Vec<_> = (1..=29)
        .flat_map(|n| (1..=29).map(move |m| (n, m, 1)))
        .collect();
    let spectrum = |geometric, scale| Kind::Spectrum { geometric, scale };
    let mut causal = random(true);
    causal.retain(|&(n, m, _)| n <= m);
    vec![
        Family {
            name: "zero",
            kind: Kind::Zero,
            shapes: once.clone(),
        },
        Family {
            name: "identity",
            kind: Kind::Identity,
            shapes: once,
        },
        Family {
            name: "σ evenly 1…ulp",
            kind: spectrum(false, Scale::One),
            shapes: random(false),
        },
        Family {
            name: "σ geometric 1…ulp",
            kind: spectrum(true, Scale::One),
            shapes: random(true),
        },
        Family {
            name: "σ evenly, near underflow",
            kind: spectrum(false, Scale::Underflow),
            shapes: random(false),
        },
        Family {
            name: "σ geometric, near underflow",
            kind: spectrum(true, Scale::Underflow),
            shapes: random(false),
        },
        Family {
            name: "σ evenly, near overflow",
            kind: spectrum(false, Scale::Overflow),
            shapes: random(false),
        },
        Family {
            name: "σ geometric, near overflow",
            kind: spectrum(true, Scale::Overflow),
            shapes: random(false),
        },
        Family {
            name: "random uniform(−1, 1)",
            kind: Kind::Random,
            shapes: random(true),
        },
        Family {
            name: "random bidiagonal",
            kind: Kind::Bidiagonal,
            shapes: random(false),
        },
        Family {
            name: "softmax, s = 0.1",
            kind: Kind::Softmax(0.1),
            shapes: random(false),
        },
        Family {
            name: "softmax, s = 1",
            kind: Kind::Softmax(1.0),
            shapes: random(true),
        },
        Family {
            name: "softmax, s = 10",
            kind: Kind::Softmax(10.0),
            shapes: random(false),
        },
        Family {
            name: "softmax, s = 100",
            kind: Kind::Softmax(100.0),
            shapes: random(false),
        },
        Family {
            name: "causal softmax (n ≤ m)",
            kind: Kind::Causal,
            shapes: causal,
        },
        Family {
            name: "one-hot rows",
            kind: Kind::OneHot,
            shapes: random(true),
        },
        Family {
            name: "uniform rows, 1..=29²",
            kind: Kind::UniformRows,
            shapes: grid.clone(),
        },
        Family {
            name: "all-ones, 1..=29²",
            kind: Kind::AllOnes,
            shapes: grid,
        },
    ]
}

/// The seed of repetition `rep` of family `family` (its index) at n×m.
pub fn seed(family: usize, n: usize, m: usize, rep: usize) -> u64 {
    ((family as u64) << 48) | ((n as u64) << 32) | ((m as u64) << 16) | rep as u64
}

fn gaussian(rng: &mut StdRng, n: usize, m: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, m, |_, _| StandardNormal.sample(rng))
}

/// A Haar-random n×n orthogonal matrix: the Q factor (with R's diagonal
/// positive) of a Gaussian matrix, by classical Gram–Schmidt applied twice
/// (in plain loops, for the reason given at [`matmul`]).
pub fn orthogonal(rng: &mut StdRng, n: usize) -> DMatrix<f64> {
    let mut q = gaussian(rng, n, n);
    for j in 0..n {
        for _pass in 0..2 {
            let proj: Vec<f64> = (0..j)
                .map(|l| (0..n).fold(0.0, |acc, i| acc + q[(i, l)] * q[(i, j)]))
                .collect();
            for (l, &p) in proj.iter().enumerate() {
                for i in 0..n {
                    q[(i, j)] -= p * q[(i, l)];
                }
            }
        }
        let norm = (0..n)
            .fold(0.0, |acc, i| acc + q[(i, j)] * q[(i, j)])
            .sqrt();
        for i in 0..n {
            q[(i, j)] /= norm;
        }
    }
    q
}

/// U[:, :k]·diag(σ)·V[:, :k]ᵀ with Haar-random U (n×n), V (m×m).
fn with_spectrum(rng: &mut StdRng, n: usize, m: usize, sigma: &[f64]) -> DMatrix<f64> {
    let u = orthogonal(rng, n);
    let v = orthogonal(rng, m);
    let mut us = u.columns(0, sigma.len()).into_owned();
    for (j, &s) in sigma.iter().enumerate() {
        us.column_mut(j).iter_mut().for_each(|x| *x *= s);
    }
    matmul(&us, &v.columns(0, sigma.len()).transpose())
}

/// The matrix of `kind` of shape n×m in precision `T` from the given seed.
pub fn generate<T: Scalar>(kind: Kind, n: usize, m: usize, seed: u64) -> DMatrix<T> {
    let mut rng = StdRng::seed_from_u64(seed);
    let k = n.min(m);
    let ulp = T::EPSILON.to_f64();
    let cast = |a: DMatrix<f64>| a.map(T::lit);
    let softmax = |z: DMatrix<f64>, mask: &Mask<T>| {
        softmax_rows(&cast(z), mask).expect("finite logits with an allowed key per row")
    };
    match kind {
        Kind::Zero => DMatrix::zeros(n, m),
        Kind::Identity => DMatrix::identity(n, m),
        Kind::Spectrum { geometric, scale } => {
            let sigma: Vec<f64> = (0..k)
                .map(|i| {
                    let t = if k > 1 {
                        i as f64 / (k - 1) as f64
                    } else {
                        0.0
                    };
                    if geometric {
                        pow(ulp, t)
                    } else {
                        1.0 - t * (1.0 - ulp)
                    }
                })
                .collect();
            let f = scale.factor::<T>();
            cast(with_spectrum(&mut rng, n, m, &sigma).map(|x| x * f))
        }
        Kind::Random => cast(DMatrix::from_fn(n, m, |_, _| rng.random_range(-1.0..1.0))),
        Kind::Bidiagonal => {
            let mut a = DMatrix::zeros(n, m);
            for i in 0..k {
                a[(i, i)] = rng.random_range(-1.0..1.0);
                if n >= m && i + 1 < m {
                    a[(i, i + 1)] = rng.random_range(-1.0..1.0);
                } else if n < m && i + 1 < n {
                    a[(i + 1, i)] = rng.random_range(-1.0..1.0);
                }
            }
            cast(a)
        }
        Kind::Softmax(s) => softmax(gaussian(&mut rng, n, m) * s, &Mask::none()),
        Kind::Causal => softmax(gaussian(&mut rng, n, m), &Mask::causal()),
        Kind::UniformRows => DMatrix::from_element(n, m, T::one() / T::from_count(m)),
        Kind::OneHot => {
            let pi: Vec<usize> = (0..n).map(|_| rng.random_range(0..m)).collect();
            DMatrix::from_fn(n, m, |i, j| if pi[i] == j { T::one() } else { T::zero() })
        }
        Kind::AllOnes => DMatrix::from_element(n, m, T::one()),
    }
}

// ---------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------

/// The results of one family in one precision.
#[derive(Clone, Debug)]
pub struct FamilyReport {
    /// The family's label.
    pub name: &'static str,
    /// Number of matrices.
    pub cases: usize,
    /// Worst ratio per backend (order of [`backends`]).
    pub worst: Vec<f64>,
    /// Where the worst ratio per backend occurred (a reproducer).
    pub worst_at: Vec<String>,
    /// Matrices with some ratio ≥ [`THRESHOLD`] (errors included), per backend.
    pub over_threshold: Vec<usize>,
    /// Matrices on which `svd` or `singular_values` returned an error, per backend.
    pub errors: Vec<usize>,
    /// Matrices on which nalgebra's run with vectors has a ratio ≥ [`THRESHOLD`] (or fails).
    pub nalgebra_wrong_with_vectors: usize,
    /// Matrices on which `Auto` with vectors reported [`Method::Jacobi`].
    pub fallbacks: usize,
    /// Reproducers of the matrices where nalgebra's run with vectors failed
    /// the threshold but `Auto` returned nalgebra's answer.
    pub missed_fallbacks: Vec<String>,
}

/// The results of the whole suite in one precision.
#[derive(Clone, Debug)]
pub struct Report {
    /// `"f32"` or `"f64"`.
    pub type_name: &'static str,
    /// One entry per family, in the order of [`families`].
    pub families: Vec<FamilyReport>,
    /// Reproducers of every Jacobi, Auto or faer ratio ≥ [`THRESHOLD`] (must be empty).
    pub violations: Vec<String>,
}

/// How to rebuild one case.
fn reproducer<T: Scalar>(family: &Family, fi: usize, n: usize, m: usize, rep: usize) -> String {
    format!(
        "{} {n}×{m} {} (generate::<{}>({:?}, {n}, {m}, {:#x}))",
        family.name,
        T::NAME,
        T::NAME,
        family.kind,
        seed(fi, n, m, rep)
    )
}

/// Runs every family, shape and backend in precision `T`.
pub fn run<T: Scalar>() -> Report {
    let mut reports = Vec::new();
    let mut violations = Vec::new();
    for (fi, family) in families().iter().enumerate() {
        let mut r = FamilyReport {
            name: family.name,
            cases: 0,
            worst: vec![0.0; backend_count()],
            worst_at: vec![String::new(); backend_count()],
            over_threshold: vec![0; backend_count()],
            errors: vec![0; backend_count()],
            nalgebra_wrong_with_vectors: 0,
            fallbacks: 0,
            missed_fallbacks: Vec::new(),
        };
        for &(n, m, reps) in &family.shapes {
            for rep in 0..reps {
                let a = generate::<T>(family.kind, n, m, seed(fi, n, m, rep));
                r.cases += 1;
                let outcomes: Vec<_> = backends().iter().map(|&b| ratios(&a, b)).collect();
                for (b, o) in outcomes.iter().enumerate() {
                    let (worst, which) = o.ratios.worst();
                    if worst > r.worst[b] || r.worst_at[b].is_empty() {
                        r.worst[b] = r.worst[b].max(worst);
                        r.worst_at[b] =
                            format!("{which} at {}", reproducer::<T>(family, fi, n, m, rep));
                    }
                    if o.error.is_some() {
                        r.errors[b] += 1;
                    }
                    if worst >= THRESHOLD {
                        r.over_threshold[b] += 1;
                        if b != nalgebra() {
                            violations.push(format!(
                                "{}: {which} ratio {worst:.3e}{} on {}",
                                backend_name(b),
                                o.error
                                    .as_ref()
                                    .map(|e| format!(" (error: {e})"))
                                    .unwrap_or_default(),
                                reproducer::<T>(family, fi, n, m, rep)
                            ));
                        }
                    }
                }
                let auto_fell_back = outcomes[auto()].method == Some(Method::Jacobi);
                if auto_fell_back {
                    r.fallbacks += 1;
                }
                let nal = &outcomes[nalgebra()];
                let nalgebra_wrong =
                    nal.method.is_none() || nal.ratios.worst_with_vectors() >= THRESHOLD;
                if nalgebra_wrong {
                    r.nalgebra_wrong_with_vectors += 1;
                    // Auto runs faer first on larger inputs; only an
                    // answer it kept from nalgebra is a missed fallback.
                    if outcomes[auto()].method == Some(Method::Nalgebra) {
                        r.missed_fallbacks
                            .push(reproducer::<T>(family, fi, n, m, rep));
                    }
                }
            }
        }
        reports.push(r);
    }
    Report {
        type_name: T::NAME,
        families: reports,
        violations,
    }
}

// ---------------------------------------------------------------------------
// Graded matrices (Demmel–Veselić)
// ---------------------------------------------------------------------------

/// Largest entry of D in the graded matrices.
pub const GRADED_D_MAX: f64 = 1e-1;
/// κ₂(B) of the graded matrices' well-conditioned factor.
pub const GRADED_KAPPA_B: f64 = 10.0;
/// Trials (seeds) per graded row.
pub const GRADED_TRIALS: usize = 5;

/// The order of D's entries along the columns of a graded matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grading {
    /// d₁ ≥ d₂ ≥ … (largest column first).
    Decreasing,
    /// d₁ ≤ d₂ ≤ … (smallest column first).
    Increasing,
    /// A random permutation.
    Random,
}

impl Grading {
    /// The table label.
    pub fn name(self) -> &'static str {
        match self {
            Grading::Decreasing => "decreasing",
            Grading::Increasing => "increasing",
            Grading::Random => "random",
        }
    }
}

/// One row of the graded table: the worst σ_min relative error over
/// [`GRADED_TRIALS`] matrices A = B·D (f64).
#[derive(Clone, Debug)]
pub struct GradedRow {
    /// Order n of the square matrices.
    pub n: usize,
    /// Smallest entry of D (the largest is [`GRADED_D_MAX`]).
    pub d_min: f64,
    /// The order of D's entries.
    pub grading: Grading,
    /// The smallest reference σ_min over the trials.
    pub sigma_min: f64,
    /// Worst |σ̃_min − σ_min| / σ_min per backend (order of [`backends`]).
    pub rel_err: Vec<f64>,
}

/// A = B·D with B = Q₁·diag(c)·Q₂ᵀ (Haar-random Q₁, Q₂, c evenly spaced
/// from 1 to [`GRADED_KAPPA_B`], so κ₂(B) = 10 up to rounding) and
/// D = diag(dⱼ), the dⱼ geometric from [`GRADED_D_MAX`] down to `d_min`,
/// placed along the columns in the order `grading`. Returns
/// (A, reference σ_min).
///
/// The reference is σ_min(A) = 1/‖A⁻¹‖₂ = 1/σ_max(D⁻¹·B⁻¹), with B⁻¹ from an
/// LU factorisation of the stored B (relative error O(n·κ(B)·ε)) and D⁻¹
/// applied as a row scaling. A *largest* singular value is computed to
/// relative accuracy O(n·ε) by any backward-stable SVD (nalgebra's here), so
/// the reference does not depend on the relative accuracy under test; and
/// since the stored entries of A = fl(B·D) carry a relative error ε, its
/// exact σ_min differs from that of B·D by O(n·κ(B)·ε) relatively.
pub fn graded_matrix(n: usize, d_min: f64, grading: Grading, seed: u64) -> (DMatrix<f64>, f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let q1 = orthogonal(&mut rng, n);
    let q2 = orthogonal(&mut rng, n);
    let c: Vec<f64> = (0..n)
        .map(|i| 1.0 + (GRADED_KAPPA_B - 1.0) * i as f64 / (n - 1).max(1) as f64)
        .collect();
    let mut b = q1;
    for (j, &cj) in c.iter().enumerate() {
        b.column_mut(j).iter_mut().for_each(|x| *x *= cj);
    }
    let b = matmul(&b, &q2.transpose());
    let mut d: Vec<f64> = (0..n)
        .map(|j| GRADED_D_MAX * pow(d_min / GRADED_D_MAX, j as f64 / (n - 1).max(1) as f64))
        .collect();
    match grading {
        Grading::Decreasing => {}
        Grading::Increasing => d.reverse(),
        Grading::Random => d.shuffle(&mut rng),
    }
    let a = DMatrix::from_fn(n, n, |i, j| b[(i, j)] * d[j]);
    let b_inv = b.lu().try_inverse().expect("B is well conditioned");
    let x = DMatrix::from_fn(n, n, |i, j| b_inv[(i, j)] / d[i]);
    let s_max = singular_values(&x, Backend::nalgebra()).expect("finite")[0];
    (a, 1.0 / s_max)
}

/// The graded table: D's order × n ∈ {10, 20} × d_min ∈ {1e-5, 1e-10, 1e-15}.
pub fn graded() -> Vec<GradedRow> {
    let mut rows = Vec::new();
    for grading in [Grading::Decreasing, Grading::Increasing, Grading::Random] {
        for n in [10, 20] {
            for (di, d_min) in [1e-5, 1e-10, 1e-15].into_iter().enumerate() {
                let mut row = GradedRow {
                    n,
                    d_min,
                    grading,
                    sigma_min: f64::INFINITY,
                    rel_err: vec![0.0; backend_count()],
                };
                for trial in 0..GRADED_TRIALS {
                    let (a, reference) =
                        graded_matrix(n, d_min, grading, seed(100 + di, n, n, trial));
                    row.sigma_min = row.sigma_min.min(reference);
                    for (b, &backend) in backends().iter().enumerate() {
                        let err = match singular_values(&a, backend) {
                            Ok(s) => (s[n - 1] - reference).abs() / reference,
                            Err(_) => f64::INFINITY,
                        };
                        row.rel_err[b] = row.rel_err[b].max(err);
                    }
                }
                rows.push(row);
            }
        }
    }
    rows
}

// ---------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------

/// A ratio as printed: two decimals below 1000, else scientific.
pub fn fmt_ratio(r: f64) -> String {
    if r < 1e3 {
        format!("{r:.2}")
    } else {
        format!("{r:.1e}")
    }
}

/// Pads every cell of a table to its column's width (in chars) and joins
/// it as a Markdown table.
fn markdown(header: &[String], rows: &[Vec<String>]) -> String {
    let width = |j: usize| {
        rows.iter()
            .map(|r| r[j].chars().count())
            .chain([header[j].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (j, c) in cells.iter().enumerate() {
            let pad = widths[j] - c.chars().count();
            if j == 0 {
                let _ = write!(s, " {c}{} |", " ".repeat(pad));
            } else {
                let _ = write!(s, " {}{c} |", " ".repeat(pad));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header);
    let mut sep = String::from("|");
    for (j, &w) in widths.iter().enumerate() {
        if j == 0 {
            let _ = write!(sep, ":{}|", "-".repeat(w + 1));
        } else {
            let _ = write!(sep, "{}:|", "-".repeat(w + 1));
        }
    }
    out.push_str(&sep);
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// The ratio table: one row per family, the worst ratio per backend and
/// precision (with the number of matrices at or above the threshold in
/// parentheses when there are any, and how many of those were errors), and Auto's fallbacks to Jacobi (with,
/// in parentheses, the number of matrices on which nalgebra's run with
/// vectors failed the threshold, each of which needs a fallback).
pub fn ratio_table(reports: &[Report]) -> String {
    let mut header = vec!["family".to_string(), "cases".to_string()];
    for r in reports {
        for b in backends().iter().map(Backend::name) {
            header.push(format!("{} {b}", r.type_name));
        }
        header.push(format!("{} Auto→Jacobi (needed)", r.type_name));
    }
    let mut rows = Vec::new();
    let nf = reports.first().map_or(0, |r| r.families.len());
    for f in 0..nf {
        let mut row = vec![
            reports[0].families[f].name.to_string(),
            reports[0].families[f].cases.to_string(),
        ];
        for r in reports {
            let fr = &r.families[f];
            for b in 0..backend_count() {
                let mut cell = fmt_ratio(fr.worst[b]);
                match (fr.over_threshold[b], fr.errors[b]) {
                    (0, _) => {}
                    (k, 0) => {
                        let _ = write!(cell, " ({k}✗)");
                    }
                    (k, e) => {
                        let _ = write!(cell, " ({k}✗, {e} err)");
                    }
                }
                row.push(cell);
            }
            row.push(format!(
                "{} ({})",
                fr.fallbacks, fr.nalgebra_wrong_with_vectors
            ));
        }
        rows.push(row);
    }
    markdown(&header, &rows)
}

/// The graded table: σ_min relative error per backend.
pub fn graded_table(rows: &[GradedRow]) -> String {
    let mut header = vec![
        "D order".to_string(),
        "n".to_string(),
        "D range".to_string(),
        "min σ_min".to_string(),
    ];
    header.extend(backends().iter().map(|b| format!("{} rel. err", b.name())));
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.grading.name().to_string(),
                r.n.to_string(),
                format!("{GRADED_D_MAX:.0e} … {:.0e}", r.d_min),
                format!("{:.1e}", r.sigma_min),
            ];
            row.extend(r.rel_err.iter().map(|e| format!("{e:.1e}")));
            row
        })
        .collect();
    markdown(&header, &body)
}
