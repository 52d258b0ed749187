//! The floating-point types the crate is generic over.
//!
//! Every algorithm is written once against [`Scalar`], which is implemented
//! for `f32` and `f64` only (the trait is sealed). It extends
//! [`nalgebra::RealField`] (so `sqrt`, `exp`, `ln`, `hypot`, `abs`, … come
//! from there, with no ambiguity) with `Copy` and a few per-type constants
//! that tolerances and iteration caps are derived from.

use nalgebra::RealField;

mod sealed {
    /// Private supertrait: seals [`Scalar`](super::Scalar), carries the
    /// per-type loops of the fused softmax and, with the `faer` feature,
    /// faer's scalar trait so that generic code can call faer.
    #[cfg(feature = "faer")]
    pub trait Sealed: faer::traits::RealField + crate::attention::exp::Kernel {}
    #[cfg(not(feature = "faer"))]
    pub trait Sealed: crate::attention::exp::Kernel {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A real floating-point scalar: `f32` or `f64`.
///
/// The trait is sealed; it cannot be implemented outside this crate.
///
/// # Examples
///
/// ```
/// use attention_svd::Scalar;
///
/// fn unit_roundoff<T: Scalar>() -> f64 {
///     T::EPSILON.to_f64() / 2.0
/// }
/// assert_eq!(unit_roundoff::<f64>(), f64::EPSILON / 2.0);
/// assert_eq!(unit_roundoff::<f32>(), f32::EPSILON as f64 / 2.0);
/// ```
pub trait Scalar: RealField + Copy + sealed::Sealed + Send + Sync + 'static {
    /// Machine epsilon ε: the distance from 1 to the next representable number
    /// (2⁻²³ for `f32`, 2⁻⁵² for `f64`).
    const EPSILON: Self;
    /// Smallest positive normal number.
    const MIN_POSITIVE: Self;
    /// Largest finite number.
    const MAX: Self;
    /// Positive infinity.
    const INFINITY: Self;
    /// Negative infinity.
    const NEG_INFINITY: Self;
    /// Number of significand bits, including the implicit one (24 or 53).
    const MANTISSA_DIGITS: u32;
    /// Name of the type, as used in diagnostics (`"f32"` or `"f64"`).
    const NAME: &'static str;

    /// Converts an `f64` (typically a literal constant), rounding to nearest.
    fn lit(x: f64) -> Self;
    /// Converts to `f64` (exact for both implementors).
    fn to_f64(self) -> f64;
    /// Converts a count to this type (exact up to 2²⁴ for `f32`, 2⁵³ for `f64`).
    fn from_count(n: usize) -> Self;
    /// `true` if the value is neither infinite nor NaN.
    fn finite(self) -> bool;
    /// `true` if the value is NaN.
    fn is_nan_value(self) -> bool;
}

macro_rules! impl_scalar {
    ($t:ident) => {
        impl Scalar for $t {
            const EPSILON: Self = $t::EPSILON;
            const MIN_POSITIVE: Self = $t::MIN_POSITIVE;
            const MAX: Self = $t::MAX;
            const INFINITY: Self = $t::INFINITY;
            const NEG_INFINITY: Self = $t::NEG_INFINITY;
            const MANTISSA_DIGITS: u32 = $t::MANTISSA_DIGITS;
            const NAME: &'static str = stringify!($t);

            #[inline]
            fn lit(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_count(n: usize) -> Self {
                n as $t
            }
            #[inline]
            fn finite(self) -> bool {
                $t::is_finite(self)
            }
            #[inline]
            fn is_nan_value(self) -> bool {
                $t::is_nan(self)
            }
        }
    };
}

impl_scalar!(f32);
impl_scalar!(f64);
