//! The nalgebra backend: Golub–Kahan bidiagonalisation followed by
//! implicit-shift QR on the bidiagonal (`nalgebra::linalg::SVD`), run with a
//! bounded iteration count.
//!
//! nalgebra's own `SVD::new` iterates without bound; this wrapper always
//! passes a cap (see [`NalgebraParams`](super::NalgebraParams)) and turns
//! nalgebra's `None` into [`Error::NoConvergence`]. nalgebra's own sort
//! (which panics on NaN) is never called: the crate's gate sorts.
//!
//! Complexity: O(n·m·min(n, m)).

use nalgebra::linalg::SVD;

use super::{Method, NalgebraParams, Raw};
use crate::view::MatrixRef;
use crate::{Error, Result, Scalar};

/// SVD of a non-empty, finite matrix through nalgebra (which consumes a
/// column-major copy).
pub(crate) fn svd<T: Scalar>(
    a: &MatrixRef<'_, T>,
    vectors: bool,
    params: &NalgebraParams,
) -> Result<Raw<T>> {
    let k = a.nrows().min(a.ncols());
    let cap = params.iterations_for::<T>(k)?;
    let eps = T::EPSILON * T::lit(5.0);
    let Some(svd) = SVD::try_new_unordered(a.to_dmatrix(), vectors, vectors, eps, cap) else {
        return Err(Error::NoConvergence {
            method: Method::Nalgebra,
            iterations: Some(cap),
            max_iterations: cap,
            off_diagonal: None,
        });
    };
    Ok(Raw {
        sigma: svd.singular_values.iter().copied().collect(),
        u: svd.u,
        v_t: svd.v_t,
    })
}
