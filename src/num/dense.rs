//! Dense matrix products and thin QR for the crate's own kernels: faer's
//! (cache blocked, SIMD chosen at run time) when the `faer` feature is on
//! and the operands are stored with a unit stride, nalgebra's otherwise.
//! Both are the usual O(n·m·k) product with the usual rounding (each entry
//! a length-k dot product, error ≤ k·ε·Σ|aᵢₗ·bₗⱼ|). Every call into faer
//! goes through [`faer_call`](crate::simd::faer_call).

use nalgebra::{DMatrix, DMatrixViewMut};

use crate::Scalar;
use crate::view::MatrixRef;

/// Below this many multiply-adds a product goes to nalgebra even with the
/// `faer` feature: its fixed cost per call is lower.
#[cfg(feature = "faer")]
const SMALL_PRODUCT: usize = 32 * 32 * 32;

/// dst ← α·op(A)·B with op(A) = Aᵀ when `transpose_a`, else A; `dst` is a
/// column-major buffer of the product's shape (rows, cols).
pub(crate) fn product_into<T: Scalar>(
    dst: &mut [T],
    (rows, cols): (usize, usize),
    alpha: T,
    a: &MatrixRef<'_, T>,
    transpose_a: bool,
    b: &MatrixRef<'_, T>,
) {
    debug_assert_eq!(dst.len(), rows * cols);
    let inner = if transpose_a { a.nrows() } else { a.ncols() };
    let flops = rows.saturating_mul(cols).saturating_mul(inner);
    #[cfg(feature = "faer")]
    if flops >= SMALL_PRODUCT
        && let (Some(lhs), Some(rhs)) = (faer_ref(a), faer_ref(b))
    {
        use faer::linalg::matmul::matmul;
        let lhs = if transpose_a { lhs.transpose() } else { lhs };
        let out = faer::MatMut::from_column_major_slice_mut(dst, rows, cols);
        crate::simd::faer_call(|| {
            matmul(out, faer::Accum::Replace, lhs, rhs, alpha, faer::Par::Seq)
        });
        return;
    }
    let _ = flops;
    let mut out = DMatrixViewMut::from_slice(dst, rows, cols);
    let (a, b) = (a.as_nalgebra(), b.as_nalgebra());
    if transpose_a {
        out.gemm_tr(alpha, &a, &b, T::zero());
    } else {
        out.gemm(alpha, &a, &b, T::zero());
    }
}

/// op(A)·B as a new matrix.
pub(crate) fn product<T: Scalar>(
    a: &MatrixRef<'_, T>,
    transpose_a: bool,
    b: &MatrixRef<'_, T>,
) -> DMatrix<T> {
    let rows = if transpose_a { a.ncols() } else { a.nrows() };
    let cols = b.ncols();
    let mut out = DMatrix::<T>::zeros(rows, cols);
    product_into(
        out.as_mut_slice(),
        (rows, cols),
        T::one(),
        a,
        transpose_a,
        b,
    );
    out
}

/// The Q factor (n×min(n, k)) of a thin Householder QR of an n×k matrix:
/// faer's blocked QR with the `faer` feature, nalgebra's otherwise.
pub(crate) fn thin_q<T: Scalar>(y: &DMatrix<T>) -> DMatrix<T> {
    #[cfg(feature = "faer")]
    {
        let (n, k) = y.shape();
        let q = crate::simd::faer_call(|| {
            faer::MatRef::from_column_major_slice(y.as_slice(), n, k)
                .qr()
                .compute_thin_Q()
        });
        DMatrix::from_fn(q.nrows(), q.ncols(), |i, j| q[(i, j)])
    }
    #[cfg(not(feature = "faer"))]
    {
        y.clone().qr().q()
    }
}

/// A faer view of a matrix stored with a unit row or column stride
/// (`None` otherwise: the caller copies or uses nalgebra).
#[cfg(feature = "faer")]
pub(crate) fn faer_ref<'a, T: Scalar>(a: &'a MatrixRef<'_, T>) -> Option<faer::MatRef<'a, T>> {
    let (r, c) = a.shape();
    let (data, (rs, cs)) = a.unit_strided()?;
    if r == 0 || c == 0 {
        return Some(faer::MatRef::from_column_major_slice(&[], r, c));
    }
    Some(if rs == 1 {
        faer::MatRef::from_column_major_slice_with_stride(data, r, c, cs)
    } else {
        faer::MatRef::from_row_major_slice_with_stride(data, r, c, rs)
    })
}
