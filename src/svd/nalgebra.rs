//! The nalgebra backend: Golub–Kahan bidiagonalisation followed by
//! implicit-shift QR on the bidiagonal (`nalgebra::linalg::SVD`), run with a
//! bounded iteration count.
//!
//! nalgebra's own `SVD::new` iterates without bound; this wrapper always
//! passes a cap (see [`NalgebraParams`](super::NalgebraParams)) and turns
//! nalgebra's `None` into [`Error::NoConvergence`]. The result is checked
//! for finiteness, made non-negative and re-sorted.
//!
//! Complexity: O(n·m·min(n, m)).

use nalgebra::{linalg::SVD, DMatrix};

use super::{Method, NalgebraParams, Run};
use crate::{Error, Result, Scalar};

/// SVD of a non-empty, finite matrix through nalgebra.
pub(crate) fn svd<T: Scalar>(
    a: &DMatrix<T>,
    vectors: bool,
    params: &NalgebraParams,
) -> Result<Run<T>> {
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
    let sigma: Vec<T> = svd.singular_values.iter().copied().collect();
    super::sorted_nonnegative(svd.u, sigma, svd.v_t, Method::Nalgebra)
}
