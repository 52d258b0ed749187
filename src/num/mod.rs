//! Private numerical primitives shared by the domain modules: compensated
//! sums and scaled norms ([`sum`]), the seeded Gaussian source ([`rng`]),
//! dense products and QR through faer or nalgebra ([`dense`]), the one
//! scale-back of singular values ([`scale`]), and the one map over heads,
//! parallel or serial ([`par`]).
//!
//! Floor 2 of `docs/ARCHITECTURE.md`: these modules import only `error`,
//! `scalar` and `simd`, never a domain module.

pub(crate) mod dense;
pub(crate) mod par;
pub(crate) mod rng;
pub(crate) mod scale;
pub(crate) mod sum;
