//! Borrowed matrix input: [`AsMatrixRef`], implemented by everything the
//! crate reads as a matrix, and [`MatrixRef`], what it turns into.

use std::borrow::Cow;

use nalgebra::constraint::{DimEq, ShapeConstraint};
use nalgebra::{
    ArrayStorage, DMatrix, Dim, Dyn, Matrix, MatrixView, VecStorage, ViewStorage, ViewStorageMut,
};

/// A read-only n×m matrix borrowed from the caller (or, rarely, a copy of
/// it); see [`AsMatrixRef`].
///
/// Obtained from [`AsMatrixRef::as_matrix_ref`]; most users never name it.
///
/// # Examples
///
/// ```
/// use attention_svd::nalgebra::dmatrix;
/// use attention_svd::{AsMatrixRef, MatrixRef};
///
/// let a = dmatrix![1.0_f32, 2.0; 3.0, 4.0];
/// let r: MatrixRef<'_, f32> = a.as_matrix_ref();
/// assert_eq!(r.shape(), (2, 2));
/// assert_eq!(r.get(1, 0), 3.0);
/// ```
#[derive(Clone, Debug)]
pub struct MatrixRef<'a, T: nalgebra::Scalar> {
    repr: Repr<'a, T>,
}

#[derive(Clone, Debug)]
enum Repr<'a, T: nalgebra::Scalar> {
    /// Entry (i, j) at `data[i·rs + j·cs]`.
    Slice {
        data: &'a [T],
        shape: (usize, usize),
        strides: (usize, usize),
    },
    /// A nalgebra view whose storage gives no safe access to its slice.
    View(MatrixView<'a, T, Dyn, Dyn, Dyn, Dyn>),
    /// A column-major copy, for inputs that could not be borrowed.
    Owned(DMatrix<T>),
}

impl<'a, T: nalgebra::Scalar + Copy> MatrixRef<'a, T> {
    /// A matrix whose entry (i, j) is `data[i·row_stride + j·col_stride]`.
    ///
    /// Returns `None` if `data` is too short for the shape and strides, or
    /// if n·m or an offset overflows.
    ///
    /// # Examples
    ///
    /// ```
    /// use attention_svd::MatrixRef;
    ///
    /// // A row-major (C-order) 2×3 array, as numpy stores it.
    /// let data = [1.0_f64, 2.0, 3.0, 4.0, 5.0, 6.0];
    /// let a = MatrixRef::from_slice_with_strides(&data, (2, 3), (3, 1)).unwrap();
    /// assert_eq!(a.get(1, 2), 6.0);
    /// ```
    pub fn from_slice_with_strides(
        data: &'a [T],
        shape: (usize, usize),
        strides: (usize, usize),
    ) -> Option<Self> {
        let (n, m) = shape;
        n.checked_mul(m)?;
        let needed = if n == 0 || m == 0 {
            0
        } else {
            (n - 1)
                .checked_mul(strides.0)?
                .checked_add((m - 1).checked_mul(strides.1)?)?
                .checked_add(1)?
        };
        (data.len() >= needed).then(|| MatrixRef {
            repr: Repr::Slice {
                data: &data[..needed],
                shape,
                strides,
            },
        })
    }

    /// A column-major n×m matrix (`data.len()` must be n·m).
    pub fn from_column_major_slice(data: &'a [T], n: usize, m: usize) -> Option<Self> {
        (n.checked_mul(m) == Some(data.len()))
            .then(|| Self::from_slice_with_strides(data, (n, m), (1, n)))
            .flatten()
    }

    /// A row-major (C-order) n×m matrix (`data.len()` must be n·m).
    pub fn from_row_major_slice(data: &'a [T], n: usize, m: usize) -> Option<Self> {
        (n.checked_mul(m) == Some(data.len()))
            .then(|| Self::from_slice_with_strides(data, (n, m), (m, 1)))
            .flatten()
    }

    /// A copy, as a `MatrixRef` that owns its data.
    pub(crate) fn owned(a: DMatrix<T>) -> Self {
        MatrixRef {
            repr: Repr::Owned(a),
        }
    }

    /// (rows, columns).
    pub fn shape(&self) -> (usize, usize) {
        match &self.repr {
            Repr::Slice { shape, .. } => *shape,
            Repr::View(v) => v.shape(),
            Repr::Owned(a) => a.shape(),
        }
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.shape().0
    }

    /// Number of columns.
    pub fn ncols(&self) -> usize {
        self.shape().1
    }

    /// `true` if the matrix has no entries.
    pub fn is_empty(&self) -> bool {
        let (n, m) = self.shape();
        n == 0 || m == 0
    }

    /// Entry (i, j).
    ///
    /// # Panics
    ///
    /// If (i, j) is out of bounds.
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> T {
        match &self.repr {
            Repr::Slice {
                data,
                shape,
                strides,
            } => {
                assert!(i < shape.0 && j < shape.1, "index out of bounds");
                data[i * strides.0 + j * strides.1]
            }
            Repr::View(v) => v[(i, j)],
            Repr::Owned(a) => a[(i, j)],
        }
    }

    /// The matrix as a nalgebra view (no copy).
    pub fn as_nalgebra(&self) -> MatrixView<'_, T, Dyn, Dyn, Dyn, Dyn> {
        match &self.repr {
            Repr::Slice {
                data,
                shape,
                strides,
            } => MatrixView::from_slice_with_strides_generic(
                data,
                Dyn(shape.0),
                Dyn(shape.1),
                Dyn(strides.0),
                Dyn(strides.1),
            ),
            Repr::View(v) => v.as_view(),
            Repr::Owned(a) => a.as_view(),
        }
    }

    /// The entries in column-major order, borrowed when they are stored
    /// that way, copied otherwise.
    pub(crate) fn column_major(&self) -> Cow<'_, [T]> {
        if let Some(s) = self.column_major_slice() {
            return Cow::Borrowed(s);
        }
        let (n, m) = self.shape();
        let mut out = Vec::with_capacity(n * m);
        for j in 0..m {
            out.extend((0..n).map(|i| self.get(i, j)));
        }
        Cow::Owned(out)
    }

    /// The entries as a column-major slice, if stored that way.
    pub(crate) fn column_major_slice(&self) -> Option<&[T]> {
        match &self.repr {
            Repr::Slice {
                data,
                shape,
                strides,
            } => {
                let (n, m) = *shape;
                let col_major = (strides.0 == 1 || n <= 1) && (strides.1 == n || m <= 1);
                (col_major && data.len() == n * m).then_some(*data)
            }
            Repr::View(_) => None,
            Repr::Owned(a) => Some(a.as_slice()),
        }
    }

    /// A slice and strides (row, column) with one unit stride, if stored so
    /// (what faer's safe constructors accept).
    pub(crate) fn unit_strided(&self) -> Option<(&[T], (usize, usize))> {
        match &self.repr {
            Repr::Slice { data, strides, .. } if strides.0 == 1 || strides.1 == 1 => {
                Some((data, *strides))
            }
            Repr::Slice { .. } | Repr::View(_) => None,
            Repr::Owned(a) => Some((a.as_slice(), (1, a.nrows()))),
        }
    }

    /// A column-major copy.
    pub fn to_dmatrix(&self) -> DMatrix<T> {
        match &self.repr {
            Repr::Owned(a) => a.clone(),
            _ => {
                let (n, m) = self.shape();
                DMatrix::from_vec(n, m, self.column_major().into_owned())
            }
        }
    }

    /// A column-major copy with every entry mapped through `f`.
    pub(crate) fn map<U: nalgebra::Scalar>(&self, mut f: impl FnMut(T) -> U) -> DMatrix<U> {
        let (n, m) = self.shape();
        let mut out = Vec::with_capacity(n * m);
        for j in 0..m {
            out.extend((0..n).map(|i| f(self.get(i, j))));
        }
        DMatrix::from_vec(n, m, out)
    }

    /// The submatrix of rows `r0..r0+nr` and columns `c0..c0+nc`: borrowed
    /// from the caller's data when this matrix is a slice with strides (an
    /// owned nalgebra matrix, a stack's head, numpy-layout data), copied
    /// when it is a nalgebra view or a copy itself.
    ///
    /// # Panics
    ///
    /// If the block is out of bounds.
    pub fn submatrix(
        &self,
        (r0, c0): (usize, usize),
        (nr, nc): (usize, usize),
    ) -> MatrixRef<'a, T> {
        let (n, m) = self.shape();
        assert!(r0 + nr <= n && c0 + nc <= m, "submatrix out of bounds");
        match &self.repr {
            Repr::Slice { data, strides, .. } => {
                let data: &'a [T] = data;
                let start = if nr == 0 || nc == 0 {
                    0
                } else {
                    r0 * strides.0 + c0 * strides.1
                };
                MatrixRef::from_slice_with_strides(&data[start..], (nr, nc), *strides)
                    .expect("a block of a valid view is valid")
            }
            Repr::View(v) => MatrixRef::owned(v.view((r0, c0), (nr, nc)).into_owned()),
            Repr::Owned(a) => MatrixRef::owned(a.view((r0, c0), (nr, nc)).into_owned()),
        }
    }

    /// The maximum absolute entry (0 for an empty matrix).
    pub(crate) fn amax(&self) -> T
    where
        T: crate::Scalar,
    {
        match self.column_major_slice() {
            Some(s) => s.iter().fold(T::zero(), |m, x| m.max(x.abs())),
            None => self.as_nalgebra().amax(),
        }
    }
}

pub(crate) mod sealed {
    /// Seals [`AsMatrixRef`](super::AsMatrixRef).
    pub trait Sealed {}
}

/// Anything the crate reads as a matrix without copying it. Routines take
/// `&impl` [`AsMatrixRef<T>`], implemented for nalgebra's
/// owned matrices (`DMatrix`, `SMatrix`), for its views (`DMatrixView`,
/// `a.columns(…)`, `a.rows(…)`, any strided `MatrixView` or
/// `MatrixViewMut`), for [`MatrixRef`] itself and, with the `ndarray`
/// feature, for ndarray's 2-D arrays and views. Nothing is copied to make
/// the call: a kernel that needs contiguous column-major data (faer's SVD
/// and products, the fused softmax) copies the input once when it is not
/// already laid out that way, and only then.
///
/// # Layout conventions
///
/// A matrix is indexed (row, column). For attention, rows are queries and
/// columns are keys: A is n×m, entry (i, j) the weight of key j for query
/// i, and every row sums to 1. Queries and keys are n×d and m×d (rows are
/// tokens). This is the layout of PyTorch's `attn_weights[b, h]` and of
/// numpy's C-order [n, m] arrays; nalgebra stores matrices column-major,
/// ndarray and numpy row-major by default: both are read without copying.
///
/// # Examples
///
/// ```
/// use attention_svd::nalgebra::{dmatrix, DMatrix};
/// use attention_svd::svd::{singular_values, Backend};
///
/// let a: DMatrix<f64> = DMatrix::from_fn(6, 4, |i, j| ((i * 4 + j) as f64).sin());
/// // A view of the first three columns, without copying them.
/// let s = singular_values(&a.columns(0, 3), Backend::Auto).unwrap();
/// assert_eq!(s.len(), 3);
/// ```
///
/// The trait is sealed.
pub trait AsMatrixRef<T: nalgebra::Scalar>: sealed::Sealed {
    /// The matrix as a [`MatrixRef`], borrowing `self`.
    fn as_matrix_ref(&self) -> MatrixRef<'_, T>;
}

impl<T: nalgebra::Scalar, R: Dim, C: Dim> sealed::Sealed for Matrix<T, R, C, VecStorage<T, R, C>> {}
impl<T: nalgebra::Scalar + Copy, R: Dim, C: Dim> AsMatrixRef<T>
    for Matrix<T, R, C, VecStorage<T, R, C>>
where
    VecStorage<T, R, C>: nalgebra::RawStorage<T, R, C> + nalgebra::IsContiguous,
{
    fn as_matrix_ref(&self) -> MatrixRef<'_, T> {
        let (n, m) = self.shape();
        MatrixRef::from_column_major_slice(self.as_slice(), n, m).expect("a matrix fits its data")
    }
}

impl<T: nalgebra::Scalar, const R: usize, const C: usize> sealed::Sealed
    for Matrix<T, nalgebra::Const<R>, nalgebra::Const<C>, ArrayStorage<T, R, C>>
{
}
impl<T: nalgebra::Scalar + Copy, const R: usize, const C: usize> AsMatrixRef<T>
    for Matrix<T, nalgebra::Const<R>, nalgebra::Const<C>, ArrayStorage<T, R, C>>
{
    fn as_matrix_ref(&self) -> MatrixRef<'_, T> {
        MatrixRef::from_column_major_slice(self.as_slice(), R, C).expect("a matrix fits its data")
    }
}

/// nalgebra views, shared and mutable, of any dimensions and strides.
macro_rules! view_storage {
    ($storage:ident) => {
        impl<T: nalgebra::Scalar, R: Dim, C: Dim, RS: Dim, CS: Dim> sealed::Sealed
            for Matrix<T, R, C, $storage<'_, T, R, C, RS, CS>>
        {
        }
        impl<T: nalgebra::Scalar + Copy, R: Dim, C: Dim, RS: Dim, CS: Dim> AsMatrixRef<T>
            for Matrix<T, R, C, $storage<'_, T, R, C, RS, CS>>
        where
            ShapeConstraint: DimEq<R, Dyn> + DimEq<C, Dyn> + DimEq<Dyn, RS> + DimEq<Dyn, CS>,
        {
            fn as_matrix_ref(&self) -> MatrixRef<'_, T> {
                MatrixRef {
                    repr: Repr::View(<MatrixView<'_, T, Dyn, Dyn, Dyn, Dyn>>::from(self)),
                }
            }
        }
    };
}

view_storage!(ViewStorage);
view_storage!(ViewStorageMut);

impl<T: nalgebra::Scalar> sealed::Sealed for MatrixRef<'_, T> {}
impl<T: nalgebra::Scalar + Copy> AsMatrixRef<T> for MatrixRef<'_, T> {
    fn as_matrix_ref(&self) -> MatrixRef<'_, T> {
        match &self.repr {
            Repr::Slice {
                data,
                shape,
                strides,
            } => MatrixRef {
                repr: Repr::Slice {
                    data,
                    shape: *shape,
                    strides: *strides,
                },
            },
            Repr::View(v) => MatrixRef {
                repr: Repr::View(v.as_view()),
            },
            Repr::Owned(a) => a.as_matrix_ref(),
        }
    }
}
