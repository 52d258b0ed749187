//! The one scale-back: singular values computed from a matrix divided by
//! one or more factors (max|aᵢⱼ| before an SVD, the maxima of Q and K and
//! the logit scale for the factored SVD of s·QKᵀ, …) are multiplied back
//! here, in the order that keeps every partial product closest to 1, so no
//! intermediate overflows or underflows when the result is representable.
//! A result beyond the type's range is [`Error::Overflow`].

use crate::{Error, Result, Scalar};

/// x·f₁·f₂⋯ for positive finite factors, growing values taking the
/// smallest remaining factor next and shrinking ones the largest.
pub(crate) fn times<T: Scalar>(x: T, factors: &[T]) -> T {
    if x == T::zero() {
        return x;
    }
    let mut left: Vec<T> = factors.to_vec();
    left.sort_by(|a, b| a.partial_cmp(b).expect("finite factors"));
    // `left` is sorted: take from the front (small) or the back (large).
    let (mut lo, mut hi) = (0, left.len());
    let mut v = x;
    while lo < hi {
        if v.abs() >= T::one() {
            v *= left[lo];
            lo += 1;
        } else {
            hi -= 1;
            v *= left[hi];
        }
    }
    v
}

/// Multiplies every σᵢ by the product of `factors` (see the module docs).
///
/// # Errors
///
/// [`Error::Overflow`] ("singular value") if a result is not finite.
pub(crate) fn scale_back<T: Scalar>(sigma: &mut [T], factors: &[T]) -> Result<()> {
    for s in sigma {
        *s = times(*s, factors);
        if !s.finite() {
            return Err(Error::Overflow {
                what: "singular value",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_avoids_intermediate_overflow_and_underflow() {
        // 1e200·1e200·1e-300 overflows left to right; here it is 1e100.
        let v = times(1.0_f64, &[1e200, 1e200, 1e-300]);
        assert!((v / 1e100 - 1.0).abs() < 1e-14);
        let w = times(1e-300_f64, &[1e-100, 1e250]);
        assert!((w / 1e-150 - 1.0).abs() < 1e-14);
        let mut s = [f64::MAX / 2.0];
        assert_eq!(
            scale_back(&mut s, &[4.0]),
            Err(Error::Overflow {
                what: "singular value"
            })
        );
    }
}
