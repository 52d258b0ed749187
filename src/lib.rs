//! # attention-svd
//!
//! Spectral analysis of transformer attention with linear algebra you can
//! trust: build (masked) softmax attention, check that it is row-stochastic,
//! factor it with a validated SVD, and summarise how many directions it
//! really uses.
//!
//! Attention weights A = softmax(QKᵀ/√d + M) are an n×m row-stochastic
//! matrix (n queries, m keys). Their singular values σ₁ ≥ … ≥ σ_k ≥ 0,
//! k = min(n, m), say how many independent directions the attention uses;
//! fast decay is what justifies low-rank attention, KV-cache compression and
//! LoRA-style methods.
//!
//! ## Tour
//!
//! | module | computes | key items |
//! |---|---|---|
//! | [`attention`] | softmax(s·QKᵀ + B) under causal, sliding-window, key-padding, boolean and bias masks; multi-head and grouped-query stacks | [`attention::scaled_dot_product`], [`attention::Mask`], [`attention::Scale`] |
//! | [`stochastic`] | row/column/doubly-stochastic checks naming the failing row or entry | [`stochastic::check_stochastic`], [`stochastic::Violation`] |
//! | [`svd`] | thin SVD A = UΣVᵀ with σ sorted and ≥ 0; faer, nalgebra, one-sided Jacobi, validated `Auto` | [`svd::svd`], [`svd::singular_values`], [`svd::Backend`] |
//! | [`lowrank`] | best rank-r approximation, Eckart–Young errors, energy ranks | [`lowrank::truncate`], [`lowrank::rank_for_energy`] |
//! | [`randomized`] | randomized truncated SVD (Halko–Martinsson–Tropp), seeded | [`randomized::randomized_svd`] |
//! | [`metrics`] | effective, stable and numerical rank, norms, condition number | [`metrics::summarize`], [`metrics::Summary`] |
//! | [`collapse`] | rank collapse of attention products across layers; attention rollout | [`collapse::collapse_across_layers`], [`collapse::rollout`] |
//! | [`logits`] | SVD of QKᵀ without forming it; logit vs attention rank; temperature sweeps | [`logits::factored_svd`], [`logits::temperature_sweep`] |
//! | [`compression`] | KV-cache compression fidelity for every rank r: key-only SVD, KQ-SVD, value projection, attention truncation; in-sample and held-out | [`compression::head_fidelity`], [`compression::model_fidelity`] |
//! | [`analysis`] | per-head summaries and per-layer aggregates of a whole model's [l, h, n, m] attention | [`analysis::analyze`], [`HeadSource`] |
//! | [`io`] | reading and writing attention files (`.npy`, `.safetensors` and exporter sidecars; feature `io`) | `io::Tensor::open`, `io::Export::open` |
//!
//! Every routine is generic over `f32` and `f64` through the sealed
//! [`Scalar`] trait, reads its matrices through [`AsMatrixRef`] (nalgebra
//! matrices and views of any strides, [`MatrixRef`], ndarray arrays with
//! the `ndarray` feature) without copying them, takes its optional knobs as
//! one `Copy` parameter value passed last (a `*Params` builder, a
//! [`svd::Backend`] or an [`attention::Scale`]), and returns
//! [`Result<_, Error>`](Error): empty or mismatched input, NaN/∞, a fully
//! masked row, non-convergence and out-of-range parameters are typed
//! errors, never panics and never NaN in an `Ok`. nalgebra is re-exported
//! as [`nalgebra`], so no second dependency is needed.
//!
//! The theorems the documentation and the tests rely on (σ₁ ≥ 1 for square
//! row-stochastic matrices, causal attention is nonsingular, Eckart–Young,
//! 1 ≤ stable rank ≤ effective rank ≤ rank, …) are proved in `docs/THEORY.md`
//! of the repository; the layering of the modules is in
//! `docs/ARCHITECTURE.md`.
//!
//! ## Example
//!
//! ```
//! use attention_svd::attention::{scaled_dot_product, Mask, Scale};
//! use attention_svd::metrics::{summarize, SummaryParams};
//! use attention_svd::nalgebra::DMatrix;
//! use attention_svd::stochastic::{check_stochastic, StochasticParams};
//!
//! # fn main() -> Result<(), attention_svd::Error> {
//! let (n, d) = (32, 8);
//! let q = DMatrix::from_fn(n, d, |i, j| ((i * d + j) as f64 * 0.61).sin());
//! let k = DMatrix::from_fn(n, d, |i, j| ((i * d + j) as f64 * 0.29).cos());
//! let a = scaled_dot_product(&q, &k, &Mask::causal(), Scale::default())?;
//! check_stochastic(&a, StochasticParams::row())?;
//!
//! let s = summarize(&a, SummaryParams::default())?;
//! assert!(s.spectral_norm >= 1.0);          // σ₁ ≥ 1 for square row-stochastic A
//! // Causal attention is nonsingular in exact arithmetic (det = Π aᵢᵢ > 0);
//! // numerically, σ below the noise floor σ₁·n·ε count as round-off.
//! assert!(s.numerical_rank >= 1 && s.numerical_rank <= n);
//! assert!(1.0 <= s.stable_rank && s.stable_rank <= s.effective_rank);
//! # Ok(())
//! # }
//! ```
//!
//! ## When not to use this crate
//!
//! - For a general-purpose dense linear-algebra library, use nalgebra or faer
//!   directly: this crate wraps a small part of them for one purpose.
//! - For very large matrices (n ≳ 4000) on a time budget: the SVDs here are
//!   dense O(n·m·min(n, m)) and single-threaded per matrix (heads run in
//!   parallel); a multi-threaded LAPACK is faster on one big matrix. For the
//!   top k singular values only, see [`randomized`].
//! - For attention inside a model's forward pass: this crate analyses
//!   attention; it is not an inference kernel.
//!
//! ## Crate features
//!
//! All on by default; with none of them the crate depends on nalgebra only.
//!
//! - `faer`: the faer SVD backend ([`svd::Backend::Faer`]), which `Auto`
//!   runs first on all but small matrices: LAPACK-speed SVD in pure Rust
//!   (`docs/PERFORMANCE.md`). Without it `Auto` runs nalgebra first.
//! - `io`: the `io` module: `.npy` and `.safetensors` files (f16, bf16, f32,
//!   f64) read one head at a time, exporter sidecars (through `serde_json`).
//! - `cli`: the command-line tool `attention-svd` (clap, indicatif,
//!   plotters); off by default.
//! - `parallel`: [`analysis`] and the stack routines run heads in parallel,
//!   through `rayon`.
//! - `ndarray` (off by default): ndarray's 2-D arrays as matrix inputs and
//!   its 3-D/4-D arrays as head sources of the whole-model routines
//!   (`interop` module).
//! - `serde`: `serde::Serialize` for the [`analysis`] reports (the JSON
//!   layout is documented there).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![warn(missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Floors of docs/ARCHITECTURE.md, bottom up: each module imports only
// from the floors below it.
mod error; // 0
mod simd; // 0
mod scalar; // 1
mod view; // 1
mod check; // 2
mod num; // 2
mod stack; // 3
pub mod attention; // 4
#[cfg(feature = "io")]
#[cfg_attr(docsrs, doc(cfg(feature = "io")))]
pub mod io; // 4
pub mod stochastic; // 4
pub mod svd; // 4
#[cfg(feature = "ndarray")]
#[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
pub mod interop; // 4
pub mod lowrank; // 5
pub mod randomized; // 5
pub mod metrics; // 6
pub mod analysis; // 7
pub mod collapse; // 7
pub mod compression; // 7
pub mod logits; // 7
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod report; // 8

pub use error::{Error, Result};
pub use nalgebra;
pub use scalar::{Precision, Scalar};
pub use stack::{HeadSource, Stack, StackView};
pub use view::{AsMatrixRef, MatrixRef};

// The README's Rust example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
