//! tmp
#![forbid(unsafe_code)]
#![deny(missing_docs)]
pub mod attention;
mod check;
mod error;
pub mod lowrank;
pub mod metrics;
mod scalar;
pub mod stochastic;
pub mod svd;
pub use error::{Error, Result};
pub use scalar::Scalar;
