//! Private input validation shared by the modules.

use nalgebra::DMatrix;

use crate::{Error, Result, Scalar};

/// Fails with [`Error::Empty`] if `a` has no entries.
pub(crate) fn non_empty<T>(a: &DMatrix<T>, what: &'static str) -> Result<()> {
    if a.is_empty() {
        return Err(Error::Empty {
            what,
            rows: a.nrows(),
            cols: a.ncols(),
        });
    }
    Ok(())
}

/// Fails with [`Error::NonFinite`] at the first (row-major order) NaN or ±∞.
pub(crate) fn finite<T: Scalar>(a: &DMatrix<T>, what: &'static str) -> Result<()> {
    if a.iter().all(|x| x.finite()) {
        return Ok(());
    }
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            if !a[(i, j)].finite() {
                return Err(Error::NonFinite {
                    what,
                    row: i,
                    col: j,
                });
            }
        }
    }
    unreachable!("a non-finite entry was seen")
}

/// Non-empty and finite.
pub(crate) fn matrix<T: Scalar>(a: &DMatrix<T>, what: &'static str) -> Result<()> {
    non_empty(a, what)?;
    finite(a, what)
}

/// Validates a slice of singular values: non-empty is *not* required, but
/// every value must be finite, non-negative and the slice non-increasing.
pub(crate) fn spectrum<T: Scalar>(sigma: &[T]) -> Result<()> {
    for (i, &s) in sigma.iter().enumerate() {
        if !s.finite() {
            return Err(Error::NonFinite {
                what: "singular values",
                row: i,
                col: 0,
            });
        }
        if s < T::zero() || (i > 0 && s > sigma[i - 1]) {
            return Err(Error::InvalidSpectrum {
                index: i,
                value: s.to_f64(),
            });
        }
    }
    Ok(())
}

/// Validates a tolerance: finite and > 0.
pub(crate) fn tolerance<T: Scalar>(value: T, name: &'static str) -> Result<T> {
    if value.finite() && value > T::zero() {
        Ok(value)
    } else {
        Err(Error::InvalidTolerance {
            name,
            value: value.to_f64(),
        })
    }
}

/// A spectrum that must also be non-empty.
pub(crate) fn nonempty_spectrum<T: Scalar>(sigma: &[T]) -> Result<()> {
    if sigma.is_empty() {
        return Err(Error::Empty {
            what: "singular values",
            rows: 0,
            cols: 0,
        });
    }
    spectrum(sigma)
}

/// Queries (n×d) and keys (m×d) for s·QKᵀ: both non-empty and finite, of
/// the same width d, and a finite scale s.
pub(crate) fn queries_keys<T: Scalar>(q: &DMatrix<T>, k: &DMatrix<T>, scale: T) -> Result<()> {
    matrix(q, "queries")?;
    matrix(k, "keys")?;
    if k.ncols() != q.ncols() {
        return Err(Error::ShapeMismatch {
            what: "keys",
            expected: (k.nrows(), q.ncols()),
            found: k.shape(),
        });
    }
    if !scale.finite() {
        return Err(Error::InvalidParameter {
            name: "scale",
            reason: "the scale (inverse temperature) must be finite",
        });
    }
    Ok(())
}
