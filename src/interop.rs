//! Conversions from other array libraries (feature `ndarray`).
//!
//! # ndarray
//!
//! - A 2-D array (`Array2`, `ArrayView2`, any layout) is a matrix input of
//!   every routine ([`AsMatrixRef`]): element `[i, j]` is entry (i, j), so
//!   for attention rows are queries and columns are keys, as in numpy and
//!   PyTorch. A C-order or Fortran-order array (or any array whose memory
//!   is one contiguous block with non-negative strides) is read in place;
//!   any other layout is copied once.
//! - A 4-D array [layers, heads, n, m] (or 3-D [heads, n, m]) is a
//!   [`HeadSource`]: [`analysis::analyze`](crate::analysis::analyze) and
//!   [`collapse`](crate::collapse) read it head by head, whatever its
//!   layout, copying one n×m head at a time.
//! - [`Stack::from_ndarray`] takes ownership of a 4-D array, without
//!   copying when it is in standard (C) layout.
//!
//! # Examples
//!
//! ```
//! use attention_svd::analysis::{analyze, AnalysisParams};
//! use attention_svd::svd::{singular_values, Backend};
//! use ndarray::{Array2, Array4};
//!
//! let a = Array2::from_shape_fn((4, 4), |(i, j)| if j <= i { 1.0 / (i + 1) as f64 } else { 0.0 });
//! let s = singular_values(&a, Backend::Auto).unwrap();
//! assert!(s[0] >= 1.0);
//!
//! // A whole model's attention [l, h, n, m], analysed in one call.
//! let stack = Array4::from_shape_fn((2, 3, 4, 4), |(_, _, i, j)| if j <= i { 1.0 / (i + 1) as f32 } else { 0.0 });
//! let report = analyze(&stack, AnalysisParams::default()).unwrap();
//! assert_eq!(report.heads.len(), 6);
//! ```

use nalgebra::DMatrix;
use ndarray::{ArrayBase, Data, Ix2, Ix3, Ix4};

use crate::view::{AsMatrixRef, MatrixRef, sealed};
use crate::{Error, HeadSource, Precision, Result, Scalar, Stack};

impl<S: Data> sealed::Sealed for ArrayBase<S, Ix2> {}

impl<T: Scalar, S: Data<Elem = T>> AsMatrixRef<T> for ArrayBase<S, Ix2> {
    fn as_matrix_ref(&self) -> MatrixRef<'_, T> {
        let (n, m) = self.dim();
        let strides = self.strides();
        if strides.iter().all(|&s| s >= 0)
            && let Some(data) = self.as_slice_memory_order()
            && let Some(r) = MatrixRef::from_slice_with_strides(
                data,
                (n, m),
                (strides[0] as usize, strides[1] as usize),
            )
        {
            return r;
        }
        MatrixRef::owned(DMatrix::from_fn(n, m, |i, j| self[[i, j]]))
    }
}

fn head_out_of_range() -> Error {
    Error::InvalidParameter {
        name: "layer/head",
        reason: "index out of range of the array",
    }
}

impl<T: Scalar, S: Data<Elem = T> + Sync> HeadSource for ArrayBase<S, Ix4> {
    type Elem = T;

    fn shape(&self) -> [usize; 4] {
        let (l, h, n, m) = self.dim();
        [l, h, n, m]
    }

    fn precision(&self) -> Precision {
        Precision::of::<T>()
    }

    fn head(&self, layer: usize, head: usize) -> Result<DMatrix<T>> {
        let (l, h, n, m) = self.dim();
        if layer >= l || head >= h {
            return Err(head_out_of_range());
        }
        Ok(DMatrix::from_fn(n, m, |i, j| self[[layer, head, i, j]]))
    }
}

impl<T: Scalar, S: Data<Elem = T> + Sync> HeadSource for ArrayBase<S, Ix3> {
    type Elem = T;

    fn shape(&self) -> [usize; 4] {
        let (h, n, m) = self.dim();
        [1, h, n, m]
    }

    fn precision(&self) -> Precision {
        Precision::of::<T>()
    }

    fn head(&self, layer: usize, head: usize) -> Result<DMatrix<T>> {
        let (h, n, m) = self.dim();
        if layer >= 1 || head >= h {
            return Err(head_out_of_range());
        }
        Ok(DMatrix::from_fn(n, m, |i, j| self[[head, i, j]]))
    }
}

impl<T: Scalar> Stack<T> {
    /// A stack from a 4-D ndarray array [layers, heads, rows, cols] (feature
    /// `ndarray`), taking its buffer without copying when the array is in
    /// standard (C) layout, copying into C order otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if a dimension is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use attention_svd::Stack;
    /// let a = ndarray::Array4::<f64>::from_elem((1, 2, 3, 3), 1.0 / 3.0);
    /// let s = Stack::from_ndarray(a).unwrap();
    /// assert_eq!(s.shape(), [1, 2, 3, 3]);
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
    pub fn from_ndarray(array: ndarray::Array4<T>) -> Result<Self> {
        let (l, h, n, m) = array.dim();
        let data = if array.is_standard_layout() {
            let (data, offset) = array.into_raw_vec_and_offset();
            let len = l * h * n * m;
            match offset {
                Some(0) | None if data.len() == len => data,
                Some(off) => data[off..off + len].to_vec(),
                None => data[..len].to_vec(),
            }
        } else {
            array.iter().copied().collect()
        };
        Stack::new([l, h, n, m], data)
    }
}
