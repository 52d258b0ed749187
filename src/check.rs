//! Private input validation shared by the modules.

use crate::view::MatrixRef;
use crate::{Error, Result, Scalar};

/// Fails with [`Error::Empty`] if `a` has no entries.
pub(crate) fn non_empty<T: Scalar>(a: &MatrixRef<'_, T>, what: &'static str) -> Result<()> {
    if a.is_empty() {
        let (rows, cols) = a.shape();
        return Err(Error::Empty { what, rows, cols });
    }
    Ok(())
}

/// Fails with [`Error::NonFinite`] at the first (row-major order) NaN or ±∞.
pub(crate) fn finite<T: Scalar>(a: &MatrixRef<'_, T>, what: &'static str) -> Result<()> {
    let all_finite = match a.column_major_slice() {
        Some(s) => s.iter().all(|x| x.finite()),
        None => a.as_nalgebra().iter().all(|x| x.finite()),
    };
    if all_finite {
        return Ok(());
    }
    let (n, m) = a.shape();
    for row in 0..n {
        if let Some(col) = (0..m).find(|&j| !a.get(row, j).finite()) {
            return Err(Error::NonFinite { what, row, col });
        }
    }
    unreachable!("a non-finite entry was seen")
}

/// Non-empty and finite.
pub(crate) fn matrix<T: Scalar>(a: &MatrixRef<'_, T>, what: &'static str) -> Result<()> {
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

/// A rank r in `min..=max`.
pub(crate) fn rank(rank: usize, min: usize, max: usize) -> Result<usize> {
    if rank < min || rank > max {
        return Err(Error::InvalidRank { rank, min, max });
    }
    Ok(rank)
}

/// Queries (n×d) and keys (m×d) for s·QKᵀ: both non-empty and finite and of
/// the same width d.
pub(crate) fn queries_keys<T: Scalar>(q: &MatrixRef<'_, T>, k: &MatrixRef<'_, T>) -> Result<()> {
    matrix(q, "queries")?;
    matrix(k, "keys")?;
    if k.ncols() != q.ncols() {
        return Err(Error::ShapeMismatch {
            what: "keys",
            expected: (k.nrows(), q.ncols()),
            found: k.shape(),
        });
    }
    Ok(())
}
