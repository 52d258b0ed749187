//! Integration tests, one module per property family.
//!
//! - `theory`: the theorems of `docs/THEORY.md` (T1–T13), each on generated
//!   row-stochastic families, for f32 and f64;
//! - `svd`, `attention`, `stochastic`, `lowrank`, `metrics`: module
//!   behaviour, special matrices and every error path.

mod common;

mod attention;
mod dynamics;
mod lowrank;
mod metrics;
#[cfg(feature = "npy")]
mod npy;
#[cfg(all(feature = "npy", feature = "serde"))]
mod real_data;
mod regressions;
mod stochastic;
mod svd;
mod theory;
