//! Dense matrix products for the crate's own kernels: faer's GEMM (cache
//! blocked, SIMD chosen at run time) when the `faer` feature is on,
//! nalgebra's otherwise. Both are the usual O(n·m·k) product with the usual
//! rounding (each entry a length-k dot product, error ≤ k·ε·Σ|aᵢₗ·bₗⱼ|).
//!
//! Every call into faer is followed by [`clear_upper_state`]: faer 0.24's
//! AVX-512 kernels return with the upper halves of the vector registers in
//! use, and on Intel CPUs the SSE code that follows (libm's `ln`, `exp`,
//! `cos`, and all code compiled for the x86-64 baseline) then runs many
//! times slower until the next `vzeroupper` (measured by
//! `cargo run --release --example perf`, `docs/PERFORMANCE.md`).

use nalgebra::DMatrix;

use crate::Scalar;

/// Below this many multiply-adds a product goes to nalgebra even with the
/// `faer` feature.
const SMALL_PRODUCT: usize = 32 * 32 * 32;

/// op(A)·B with op(A) = Aᵀ when `transpose_a`, else A. The inner
/// dimensions must agree.
pub(crate) fn product<T: Scalar>(a: &DMatrix<T>, transpose_a: bool, b: &DMatrix<T>) -> DMatrix<T> {
    // Small products: nalgebra's, whose fixed cost per call is lower.
    let flops = a
        .nrows()
        .saturating_mul(a.ncols())
        .saturating_mul(b.ncols());
    if flops < SMALL_PRODUCT {
        return if transpose_a { a.tr_mul(b) } else { a * b };
    }
    #[cfg(feature = "faer")]
    {
        use faer::linalg::matmul::matmul;
        use faer::{Accum, MatMut, MatRef, Par};
        let view = MatRef::from_column_major_slice(a.as_slice(), a.nrows(), a.ncols());
        let lhs = if transpose_a { view.transpose() } else { view };
        let rhs = MatRef::from_column_major_slice(b.as_slice(), b.nrows(), b.ncols());
        let (r, c) = (lhs.nrows(), rhs.ncols());
        let mut out = DMatrix::<T>::zeros(r, c);
        matmul(
            MatMut::from_column_major_slice_mut(out.as_mut_slice(), r, c),
            Accum::Replace,
            lhs,
            rhs,
            T::one(),
            Par::Seq,
        );
        clear_upper_state();
        out
    }
    #[cfg(not(feature = "faer"))]
    {
        if transpose_a {
            a.tr_mul(b)
        } else {
            a * b
        }
    }
}

/// The Q factor (n×min(n, k)) of a thin Householder QR of an n×k matrix:
/// faer's blocked QR with the `faer` feature, nalgebra's otherwise.
pub(crate) fn thin_q<T: Scalar>(y: &DMatrix<T>) -> DMatrix<T> {
    #[cfg(feature = "faer")]
    {
        use faer::MatRef;
        let (n, k) = y.shape();
        let q = MatRef::from_column_major_slice(y.as_slice(), n, k)
            .qr()
            .compute_thin_Q();
        clear_upper_state();
        DMatrix::from_fn(q.nrows(), q.ncols(), |i, j| q[(i, j)])
    }
    #[cfg(not(feature = "faer"))]
    {
        y.clone().qr().q()
    }
}

/// Executes `vzeroupper` (on x86-64 with AVX; a no-op elsewhere) without
/// `unsafe`: a vector operation dispatched through `pulp` to the widest
/// instruction set, which the compiler ends with `vzeroupper`.
#[cfg(feature = "faer")]
#[inline]
pub(crate) fn clear_upper_state() {
    struct Clear;
    impl pulp::WithSimd for Clear {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, simd: S) {
            std::hint::black_box(simd.splat_f64s(0.0));
        }
    }
    pulp::Arch::new().dispatch(Clear);
}
