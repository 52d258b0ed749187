//! Sums and norms that neither lose accuracy with the length nor overflow.
//!
//! - [`compensated_sum`]: Neumaier's summation, error O(ε)·Σ|xᵢ| whatever
//!   the length.
//! - [`norm_of_sorted`]: √(Σxᵢ²) of a non-negative, non-increasing slice
//!   (a spectrum), on the scale of x₀.
//! - [`frobenius`]: ‖A‖_F of any entries, on the scale of max|aᵢⱼ|.
//! - [`sum_of_squares_f64`]: Σ f(xᵢ)² of a column-major buffer in f64 lanes
//!   that vectorise (Auto's energy identity).
//! - [`dot_f64`]: xᵀy accumulated in f64 lanes that vectorise (the Jacobi
//!   SVD's inner products, Auto's exact checks).

use crate::Scalar;

/// Neumaier's compensated sum: error O(ε)·Σ|x| independent of the length.
pub(crate) fn compensated_sum<T: Scalar>(values: impl Iterator<Item = T>) -> T {
    let mut sum = T::zero();
    let mut c = T::zero();
    for x in values {
        let t = sum + x;
        if sum.abs() >= x.abs() {
            c += (sum - t) + x;
        } else {
            c += (x - t) + sum;
        }
        sum = t;
    }
    sum + c
}

/// √(Σ xᵢ²) for non-negative, non-increasing x, on the scale of x₀ (so no
/// square overflows or underflows); the smallest terms are added first.
pub(crate) fn norm_of_sorted<T: Scalar>(x: &[T]) -> T {
    match x.first() {
        None => T::zero(),
        Some(&x0) if x0 == T::zero() => T::zero(),
        Some(&x0) => {
            let ss = compensated_sum(x.iter().rev().map(|&v| (v / x0) * (v / x0)));
            x0 * ss.sqrt()
        }
    }
}

/// √(Σ xᵢ²) of finite values in any order, on the scale of max|xᵢ|; may
/// return +∞ only when the norm itself exceeds the type's range.
pub(crate) fn frobenius<T: Scalar>(values: impl Iterator<Item = T> + Clone) -> T {
    let amax = values.clone().fold(T::zero(), |m, x| m.max(x.abs()));
    if amax == T::zero() {
        return T::zero();
    }
    amax * compensated_sum(values.map(|x| (x / amax) * (x / amax))).sqrt()
}

/// Σ scale(xᵢ)² over a column-major buffer with `rows` rows, in f64: each
/// column summed in eight independent lanes (which vectorise), the column
/// sums added with compensation. The rounding error is at most about
/// (rows/8 + 2)·ε₆₄ relative.
pub(crate) fn sum_of_squares_f64<T: Scalar>(
    data: &[T],
    rows: usize,
    scale: impl Fn(T) -> T,
) -> f64 {
    let columns = data.chunks_exact(rows.max(1)).map(|col| {
        let mut lanes = [0.0f64; 8];
        let mut chunks = col.chunks_exact(8);
        for chunk in &mut chunks {
            for (l, &x) in lanes.iter_mut().zip(chunk) {
                let y = scale(x).to_f64();
                *l += y * y;
            }
        }
        let tail: f64 = chunks
            .remainder()
            .iter()
            .map(|&x| scale(x).to_f64().powi(2))
            .sum();
        lanes.iter().sum::<f64>() + tail
    });
    compensated_sum(columns)
}

/// xᵀy accumulated in f64, with eight independent partial sums so that the
/// loop vectorises.
#[inline]
pub(crate) fn dot_f64<T: Scalar>(x: &[T], y: &[T]) -> f64 {
    const L: usize = 8;
    let (xc, yc) = (x.chunks_exact(L), y.chunks_exact(L));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    let mut acc = [0.0f64; L];
    for (xs, ys) in xc.zip(yc) {
        for k in 0..L {
            acc[k] += xs[k].to_f64() * ys[k].to_f64();
        }
    }
    let mut tail = 0.0;
    for (&xi, &yi) in xr.iter().zip(yr) {
        tail += xi.to_f64() * yi.to_f64();
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compensation_recovers_what_plain_summation_loses() {
        let xs = [1e16, 1.0, -1e16, 1.0];
        assert_eq!(compensated_sum(xs.into_iter()), 2.0);
    }

    #[test]
    fn norms_do_not_overflow_or_underflow() {
        assert!((norm_of_sorted(&[4e300_f64, 3e300]) / 5e300 - 1.0).abs() < 1e-15);
        assert!((frobenius([3e-300_f64, -4e-300].into_iter()) / 5e-300 - 1.0).abs() < 1e-15);
        assert_eq!(frobenius([0.0_f32; 3].into_iter()), 0.0);
    }
}
