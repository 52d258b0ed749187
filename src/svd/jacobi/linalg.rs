//! The dense kernels of the preconditioned Jacobi SVD, all in `f64` on
//! column-major buffers: the Gram matrix AᵀA, Householder QR (factor, and
//! apply Q), and an upper triangular solve. With the `faer` feature they are
//! faer's cache-blocked kernels (each call through
//! [`faer_call`](crate::simd::faer_call)); without it,
//! plain loops and nalgebra, which are slower but compute the same thing.

use nalgebra::DMatrix;

/// A column-major block of a buffer: `rows × cols`, column j starting at
/// `data[j·ld]`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub data: &'a [f64],
    pub rows: usize,
    pub cols: usize,
    pub ld: usize,
}

impl<'a> View<'a> {
    /// Columns `j0..j1` of a `rows × _` matrix stored with leading dimension `ld`.
    pub fn cols_of(data: &'a [f64], rows: usize, ld: usize, j0: usize, j1: usize) -> Self {
        let end = if j1 > j0 {
            (j1 - 1) * ld + rows
        } else {
            j0 * ld
        };
        View {
            data: &data[j0 * ld..end],
            rows,
            cols: j1 - j0,
            ld,
        }
    }

    #[cfg(not(feature = "faer"))]
    fn at(&self, i: usize, j: usize) -> f64 {
        self.data[j * self.ld + i]
    }
}

/// The lower triangle (diagonal included) of `aᵀa` into `dst` (`a.cols`
/// square, leading dimension `ldd`); the strict upper triangle is left as
/// it was.
pub(super) fn gram_lower(dst: &mut [f64], ldd: usize, a: View<'_>) {
    let n = a.cols;
    if n == 0 {
        return;
    }
    #[cfg(feature = "faer")]
    {
        use faer::linalg::matmul::triangular::{BlockStructure, matmul};
        use faer::{Accum, MatMut, MatRef, Par};
        let av = MatRef::from_column_major_slice_with_stride(a.data, a.rows, a.cols, a.ld);
        let end = (n - 1) * ldd + n;
        let dv = MatMut::from_column_major_slice_with_stride_mut(&mut dst[..end], n, n, ldd);
        crate::simd::faer_call(|| {
            matmul(
                dv,
                BlockStructure::TriangularLower,
                Accum::Replace,
                av.transpose(),
                BlockStructure::Rectangular,
                av,
                BlockStructure::Rectangular,
                1.0,
                Par::Seq,
            )
        });
    }
    #[cfg(not(feature = "faer"))]
    {
        for j in 0..n {
            for i in j..n {
                let mut s = 0.0;
                for l in 0..a.rows {
                    s += a.at(l, i) * a.at(l, j);
                }
                dst[j * ldd + i] = s;
            }
        }
    }
}

/// A Householder QR factorisation A = Q·R of an r×c matrix, r ≥ c.
pub(super) struct Qr {
    cols: usize,
    repr: Repr,
}

enum Repr {
    /// faer's factored form: Householder vectors below the diagonal, R on
    /// and above it, and the block Householder coefficients.
    #[cfg(feature = "faer")]
    Faer {
        factors: DMatrix<f64>,
        coeff: DMatrix<f64>,
    },
    /// The crate's blocked Householder QR, which reduces every column.
    Blocked(super::qr::BlockedQr),
}

impl Qr {
    /// Factors `a` (r×c, r ≥ c ≥ 1), consuming it.
    ///
    /// faer's blocked QR is used unless it deflates: it skips (leaves
    /// unreduced) a column whose remaining norm is below 16·(r − k)·ε of
    /// the column's norm, which drops that remainder from R — a backward
    /// error of up to 16·r·ε per column, where Householder QR commits
    /// O(ε). Such inputs (numerically rank-deficient) are factored again
    /// with the crate's blocked Householder QR (`qr.rs`), which reduces
    /// every column; without the `faer` feature it is the only one.
    pub fn new(a: DMatrix<f64>) -> Self {
        let (rows, cols) = a.shape();
        debug_assert!(rows >= cols && cols >= 1);
        #[cfg(feature = "faer")]
        {
            use faer::dyn_stack::{MemBuffer, MemStack};
            use faer::linalg::qr::no_pivoting::factor;
            use faer::{MatMut, Par};
            let mut factors = a.clone();
            let bs = factor::recommended_block_size::<f64>(rows, cols);
            let mut coeff = DMatrix::<f64>::zeros(bs, cols);
            let mut buf = MemBuffer::new(factor::qr_in_place_scratch::<f64>(
                rows,
                cols,
                bs,
                Par::Seq,
                Default::default(),
            ));
            let info = crate::simd::faer_call(|| {
                factor::qr_in_place(
                    MatMut::from_column_major_slice_mut(factors.as_mut_slice(), rows, cols),
                    MatMut::from_column_major_slice_mut(coeff.as_mut_slice(), bs, cols),
                    Par::Seq,
                    MemStack::new(&mut buf),
                    Default::default(),
                )
            });
            if info.rank == cols {
                return Qr {
                    cols,
                    repr: Repr::Faer { factors, coeff },
                };
            }
        }
        Qr {
            cols,
            repr: Repr::Blocked(super::qr::BlockedQr::new(a)),
        }
    }

    /// The c×c upper triangular factor R.
    pub fn r(&self) -> DMatrix<f64> {
        match &self.repr {
            #[cfg(feature = "faer")]
            Repr::Faer { factors, .. } => {
                let c = self.cols;
                DMatrix::from_fn(c, c, |i, j| if i <= j { factors[(i, j)] } else { 0.0 })
            }
            Repr::Blocked(qr) => qr.r(),
        }
    }

    /// Q·[m; 0]: `m` has c rows, the result r rows.
    pub fn apply_q(&self, m: &DMatrix<f64>) -> DMatrix<f64> {
        debug_assert_eq!(m.nrows(), self.cols);
        match &self.repr {
            #[cfg(feature = "faer")]
            Repr::Faer { factors, coeff } => {
                let (r, c) = (factors.nrows(), self.cols);
                use faer::dyn_stack::{MemBuffer, MemStack};
                use faer::linalg::householder;
                use faer::{Conj, MatMut, MatRef, Par};
                let k = m.ncols();
                let mut out = DMatrix::<f64>::zeros(r, k);
                for j in 0..k {
                    out.view_mut((0, j), (c, 1)).copy_from(&m.column(j));
                }
                let bs = coeff.nrows();
                let mut buf = MemBuffer::new(
                    householder::apply_block_householder_sequence_on_the_left_in_place_scratch::<f64>(
                        r, bs, k,
                    ),
                );
                crate::simd::faer_call(|| {
                    householder::apply_block_householder_sequence_on_the_left_in_place_with_conj(
                        MatRef::from_column_major_slice(factors.as_slice(), r, c),
                        MatRef::from_column_major_slice(coeff.as_slice(), bs, c),
                        Conj::No,
                        MatMut::from_column_major_slice_mut(out.as_mut_slice(), r, k),
                        Par::Seq,
                        MemStack::new(&mut buf),
                    )
                });
                out
            }
            Repr::Blocked(qr) => qr.apply_q(m),
        }
    }
}

/// Solves R·X = B for X in place (R upper triangular c×c, B c×k).
pub(super) fn solve_upper(r: &DMatrix<f64>, b: &mut DMatrix<f64>) {
    let (c, k) = b.shape();
    #[cfg(feature = "faer")]
    {
        use faer::linalg::triangular_solve::solve_upper_triangular_in_place;
        use faer::{MatMut, MatRef, Par};
        crate::simd::faer_call(|| {
            solve_upper_triangular_in_place(
                MatRef::from_column_major_slice(r.as_slice(), c, c),
                MatMut::from_column_major_slice_mut(b.as_mut_slice(), c, k),
                Par::Seq,
            )
        });
    }
    #[cfg(not(feature = "faer"))]
    {
        let _ = (c, k);
        // A zero pivot leaves non-finite entries, which the caller rejects.
        let _ = r.solve_upper_triangular_mut(b);
    }
}
