//! The floating-point types the crate is generic over, and [`Precision`],
//! the name of one of them as data.
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
    pub trait Sealed: faer::traits::RealField + crate::simd::Kernel {}
    #[cfg(not(feature = "faer"))]
    pub trait Sealed: crate::simd::Kernel {}
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

/// A floating-point precision, as data: the arithmetic an analysis runs in,
/// or the type a file stores its values in.
///
/// # Examples
///
/// ```
/// use attention_svd::Precision;
/// assert_eq!(Precision::of::<f32>(), Precision::F32);
/// assert_eq!(Precision::F64.epsilon(), f64::EPSILON);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Precision {
    /// IEEE half precision (binary16), as stored by files only: arithmetic
    /// runs in `f32` or `f64`.
    F16,
    /// bfloat16 (8 exponent bits, 8 significand bits), as stored by files
    /// only.
    BF16,
    /// Single precision.
    F32,
    /// Double precision (the default).
    #[default]
    F64,
}

impl Precision {
    /// The precision of the scalar type `T`.
    pub fn of<T: Scalar>() -> Self {
        if T::MANTISSA_DIGITS == f32::MANTISSA_DIGITS {
            Precision::F32
        } else {
            Precision::F64
        }
    }

    /// Machine epsilon of this precision (2⁻¹⁰, 2⁻⁷, 2⁻²³, 2⁻⁵²).
    pub fn epsilon(self) -> f64 {
        match self {
            Precision::F16 => 2f64.powi(-10),
            Precision::BF16 => 2f64.powi(-7),
            Precision::F32 => f64::from(f32::EPSILON),
            Precision::F64 => f64::EPSILON,
        }
    }

    /// The coarser of two precisions (the larger ε).
    pub fn coarser(self, other: Precision) -> Precision {
        if self.epsilon() >= other.epsilon() {
            self
        } else {
            other
        }
    }

    /// The name used in diagnostics and reports: `"f16"`, `"bf16"`,
    /// `"f32"`, `"f64"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F16 => "f16",
            Precision::BF16 => "bf16",
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Converts `x` to `U`: exact when widening; when narrowing, rounded to
/// nearest, with [`Error::Overflow`] for a finite value beyond `U`'s range
/// and [`Error::Underflow`] for a nonzero value that rounds to zero
/// (values that become subnormal keep their nonzero-ness and pass).
/// Non-finite values convert to the same non-finite value: the checks of
/// the routine that reads them report them.
pub(crate) fn convert<S: Scalar, U: Scalar>(x: S, what: &'static str) -> crate::Result<U> {
    let v = U::lit(x.to_f64());
    if U::MANTISSA_DIGITS >= S::MANTISSA_DIGITS || !x.finite() {
        return Ok(v);
    }
    if !v.finite() {
        return Err(crate::Error::Overflow { what });
    }
    if v == U::zero() && x != S::zero() {
        return Err(crate::Error::Underflow { what });
    }
    Ok(v)
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
