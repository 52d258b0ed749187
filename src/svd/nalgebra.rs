//! The nalgebra backend: Golub–Kahan bidiagonalisation followed by
//! implicit-shift QR on the bidiagonal (`nalgebra::linalg::SVD`), run with a
//! bounded iteration count.
//!
//! nalgebra's own `SVD::new` iterates without bound; this wrapper always
//! passes a cap (see [`NalgebraParams`](super::NalgebraParams)) and turns
//! nalgebra's `None` into [`Error::NoConvergence`]. The result is re-sorted,
//! made non-negative and checked for finiteness.
//!
//! Complexity: O(n·m·min(n, m)).

use nalgebra::{linalg::SVD, DMatrix};

use super::jacobi::Parts;
use super::{Method, NalgebraParams};
use crate::{Error, Result, Scalar};

/// SVD of a non-empty, finite matrix through nalgebra.
pub(crate) fn svd<T: Scalar>(
    a: &DMatrix<T>,
    vectors: bool,
    params: &NalgebraParams,
) -> Result<Parts<T>> {
    let k = a.nrows().min(a.ncols());
    let cap = params.iterations_for::<T>(k)?;
    let eps = T::EPSILON * T::lit(5.0);
    // `try_new` sorts with `partial_cmp(..).expect(..)` and panics when the
    // iteration produced NaN; sort here instead, after the finiteness check.
    let Some(svd) = SVD::try_new_unordered(a.clone(), vectors, vectors, eps, cap) else {
        return Err(Error::NoConvergence {
            method: Method::Nalgebra,
            iterations: cap,
            max_iterations: cap,
            off_diagonal: None,
        });
    };
    let mut sigma: Vec<T> = svd.singular_values.iter().copied().collect();
    let mut u = svd.u;
    let mut v_t = svd.v_t;
    if sigma.iter().any(|s| !s.finite())
        || u.as_ref().is_some_and(|u| u.iter().any(|x| !x.finite()))
        || v_t.as_ref().is_some_and(|v| v.iter().any(|x| !x.finite()))
    {
        return Err(Error::Breakdown {
            method: Method::Nalgebra,
            reason: "non-finite output",
        });
    }
    // Make σ non-negative (flip the matching column of U) and sort.
    for (j, s) in sigma.iter_mut().enumerate() {
        if *s < T::zero() {
            *s = -*s;
            if let Some(u) = u.as_mut() {
                u.column_mut(j).neg_mut();
            }
        }
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| sigma[j].partial_cmp(&sigma[i]).expect("finite"));
    if order.iter().enumerate().any(|(i, &j)| i != j) {
        sigma = order.iter().map(|&i| sigma[i]).collect();
        u = u.map(|u| DMatrix::from_fn(u.nrows(), k, |i, j| u[(i, order[j])]));
        v_t = v_t.map(|v| DMatrix::from_fn(k, v.ncols(), |i, j| v[(order[i], j)]));
    }
    Ok((u, sigma, v_t))
}
