//! Integration tests, one module per property family.
//!
//! - `theory`: the theorems of `docs/THEORY.md` (T1–T14), each on generated
//!   row-stochastic families, for f32 and f64;
//! - `dynamics`: rank collapse, rollout, logit rank, factored SVD (T15–T18);
//! - `compress`: KV-cache compression fidelity (T19–T21, T23) and typed errors;
//! - `accuracy`: LAPACK-style test ratios (`docs/ACCURACY.md`); `bounds`:
//!   caps on counts, sizes and narrowing (issue: hostile input); `hostile`:
//!   NaN/∞/subnormal/huge input to every public call;
//! - `svd`, `attention`, `stochastic`, `lowrank`, `metrics`, `randomized`,
//!   `npy`, `io`: module behaviour, special matrices and every error path;
//! - `real_data`: the shipped all-MiniLM-L6-v2 attention against its
//!   reference values; `regressions`: bugs found in review; `views`: every
//!   input layout (nalgebra views, row-major slices, stack heads, ndarray);
//!   `report`: shards merge exactly, JSON round-trips.

mod common;

mod accuracy;
mod attention;
mod bounds;
mod compress;
mod dynamics;
mod hostile;
mod lowrank;
mod metrics;
#[cfg(feature = "io")]
mod io;
#[cfg(feature = "io")]
mod npy;
mod randomized;
#[cfg(all(feature = "io", feature = "serde"))]
mod real_data;
#[cfg(feature = "serde")]
mod report;
mod regressions;
mod stochastic;
mod svd;
mod theory;
mod views;
