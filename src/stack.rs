//! Stacks of per-(layer, head) matrices: attention weights [l, h, n, m] or
//! per-head queries, keys and values [l, h, n, d].
//!
//! - [`Stack`] owns a dense C-order (row-major) array indexed by (layer,
//!   head, row, column): the layout Hugging Face (`output_attentions=True`,
//!   stacked over layers), TransformerLens and numpy use. A single matrix
//!   [n, m] is a stack with one layer and one head; [h, n, m] has one layer.
//! - [`StackView`] borrows such an array with any non-negative strides (a
//!   [`Stack`], a batch entry of a larger array, an ndarray view), and
//!   [`StackView::head`] borrows one matrix of it without copying.
//! - [`HeadSource`] is what the whole-model routines
//!   ([`analysis`](crate::analysis), [`collapse`](crate::collapse)) read:
//!   anything that can hand out one head's matrix at a time — a stack in
//!   memory, a view of one, or a file read head by head
//!   ([`io`](crate::io)), so that peak memory stays O(threads·n·m).

use nalgebra::DMatrix;

use crate::view::{AsMatrixRef, MatrixRef};
use crate::{Error, Precision, Result, Scalar};

/// A dense [layers, heads, rows, cols] array in C order.
///
/// # Examples
///
/// ```
/// use attention_svd::nalgebra::dmatrix;
/// use attention_svd::Stack;
///
/// let s = Stack::from_matrices(1, 2, &[dmatrix![1.0_f32, 0.0; 0.5, 0.5], dmatrix![0.0, 1.0; 1.0, 0.0]]).unwrap();
/// assert_eq!(s.shape(), [1, 2, 2, 2]);
/// assert_eq!(s.head(0, 1).unwrap().to_dmatrix(), dmatrix![0.0, 1.0; 1.0, 0.0]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Stack<T> {
    shape: [usize; 4],
    data: Vec<T>,
}

/// The element count of a 4-D shape, or `ShapeMismatch`-style failure
/// when it overflows.
fn element_count(shape: [usize; 4]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

fn empty_error(shape: [usize; 4]) -> Error {
    let [l, h, r, c] = shape;
    Error::Empty {
        what: "stack",
        rows: l.saturating_mul(h).saturating_mul(r),
        cols: c,
    }
}

impl<T: Scalar> Stack<T> {
    /// Wraps C-order `data` of shape [layers, heads, rows, cols] (no copy).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if any dimension is 0; [`Error::ShapeMismatch`] if
    /// `data.len()` is not the product of the shape.
    pub fn new(shape: [usize; 4], data: Vec<T>) -> Result<Self> {
        if shape.contains(&0) {
            return Err(empty_error(shape));
        }
        if element_count(shape) != Some(data.len()) {
            let [l, h, r, c] = shape;
            return Err(Error::ShapeMismatch {
                what: "stack data",
                expected: (l.saturating_mul(h).saturating_mul(r), c),
                found: (data.len(), 1),
            });
        }
        Ok(Stack { shape, data })
    }

    /// Builds a stack from `layers·heads` equally shaped matrices in
    /// (layer, head) order.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] if the count or the shapes disagree;
    /// [`Error::Empty`] for empty matrices or counts.
    pub fn from_matrices<M: AsMatrixRef<T>>(
        layers: usize,
        heads: usize,
        matrices: &[M],
    ) -> Result<Self> {
        if layers.checked_mul(heads) != Some(matrices.len()) {
            return Err(Error::ShapeMismatch {
                what: "number of matrices",
                expected: (layers.saturating_mul(heads), 1),
                found: (matrices.len(), 1),
            });
        }
        let (r, c) = matrices
            .first()
            .map_or((0, 0), |m| m.as_matrix_ref().shape());
        let mut data = Vec::with_capacity(matrices.len().saturating_mul(r * c));
        for m in matrices {
            let m = m.as_matrix_ref();
            if m.shape() != (r, c) {
                return Err(Error::ShapeMismatch {
                    what: "matrix in stack",
                    expected: (r, c),
                    found: m.shape(),
                });
            }
            for i in 0..r {
                data.extend((0..c).map(|j| m.get(i, j)));
            }
        }
        Self::new([layers, heads, r, c], data)
    }

    /// [layers, heads, rows, cols].
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// Number of layers.
    pub fn layers(&self) -> usize {
        self.shape[0]
    }

    /// Number of heads per layer.
    pub fn heads(&self) -> usize {
        self.shape[1]
    }

    /// The C-order data.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The C-order data, by value.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// The whole stack as a [`StackView`].
    pub fn view(&self) -> StackView<'_, T> {
        let [_, h, r, c] = self.shape;
        StackView {
            shape: self.shape,
            strides: [h * r * c, r * c, c, 1],
            data: &self.data,
        }
    }

    /// The rows×cols matrix of (layer, head), borrowed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if the layer or head is out of range.
    pub fn head(&self, layer: usize, head: usize) -> Result<MatrixRef<'_, T>> {
        self.view().head(layer, head)
    }

    /// Converts every element to another scalar type.
    ///
    /// # Errors
    ///
    /// When narrowing (f64 to f32): [`Error::Overflow`] for a finite value
    /// beyond the target's range and [`Error::Underflow`] for a nonzero
    /// value that would round to zero, each naming the first such index.
    /// Widening is exact and never fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use attention_svd::{Error, Stack};
    /// let s = Stack::new([1, 1, 1, 2], vec![1e300_f64, 0.5]).unwrap();
    /// assert!(matches!(s.cast::<f32>(), Err(Error::Overflow { .. })));
    /// assert_eq!(s.cast::<f64>().unwrap(), s);
    /// ```
    pub fn cast<U: Scalar>(&self) -> Result<Stack<U>> {
        let mut data = Vec::with_capacity(self.data.len());
        for &x in &self.data {
            data.push(crate::scalar::convert::<T, U>(x, "stack element")?);
        }
        Ok(Stack {
            shape: self.shape,
            data,
        })
    }
}

/// A borrowed [layers, heads, rows, cols] array with arbitrary
/// non-negative strides (in elements).
///
/// # Examples
///
/// ```
/// use attention_svd::StackView;
///
/// // One batch entry of a C-order [batch = 2, l = 1, h = 1, 2, 2] array.
/// let data: Vec<f64> = (0..8).map(f64::from).collect();
/// let second = StackView::from_slice(&data[4..], [1, 1, 2, 2], [4, 4, 2, 1]).unwrap();
/// assert_eq!(second.head(0, 0).unwrap().get(1, 0), 6.0);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct StackView<'a, T> {
    shape: [usize; 4],
    strides: [usize; 4],
    data: &'a [T],
}

impl<'a, T: Scalar> StackView<'a, T> {
    /// A view of `data` with the given shape and strides: element
    /// (l, h, i, j) at `data[l·s₀ + h·s₁ + i·s₂ + j·s₃]`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if a dimension is 0; [`Error::ShapeMismatch`] if
    /// `data` is too short for the shape and strides (or an offset
    /// overflows).
    pub fn from_slice(data: &'a [T], shape: [usize; 4], strides: [usize; 4]) -> Result<Self> {
        if shape.contains(&0) {
            return Err(empty_error(shape));
        }
        let last = shape
            .iter()
            .zip(&strides)
            .try_fold(0usize, |acc, (&d, &s)| {
                acc.checked_add((d - 1).checked_mul(s)?)
            });
        match last {
            Some(last) if last < data.len() => Ok(StackView {
                shape,
                strides,
                data,
            }),
            _ => Err(Error::ShapeMismatch {
                what: "stack view data",
                expected: (last.map_or(usize::MAX, |l| l.saturating_add(1)), 1),
                found: (data.len(), 1),
            }),
        }
    }

    /// [layers, heads, rows, cols].
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// The strides, in elements.
    pub fn strides(&self) -> [usize; 4] {
        self.strides
    }

    /// The rows×cols matrix of (layer, head), borrowed (no copy).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if the layer or head is out of range.
    pub fn head(&self, layer: usize, head: usize) -> Result<MatrixRef<'a, T>> {
        let [l, h, r, c] = self.shape;
        if layer >= l || head >= h {
            return Err(Error::InvalidParameter {
                name: "layer/head",
                reason: "index out of range of the stack",
            });
        }
        let start = layer * self.strides[0] + head * self.strides[1];
        Ok(MatrixRef::from_slice_with_strides(
            &self.data[start..],
            (r, c),
            (self.strides[2], self.strides[3]),
        )
        .expect("a head of a valid view is valid"))
    }

    /// The top-left rows×cols block of every head (e.g. the unpadded part
    /// of one prompt of a padded batch).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if the block is larger than the heads or
    /// empty.
    pub fn crop(&self, rows: usize, cols: usize) -> Result<Self> {
        let [_, _, r, c] = self.shape;
        if rows == 0 || cols == 0 || rows > r || cols > c {
            return Err(Error::InvalidParameter {
                name: "crop",
                reason: "the block must be non-empty and fit inside every head",
            });
        }
        Ok(StackView {
            shape: [self.shape[0], self.shape[1], rows, cols],
            ..*self
        })
    }
}

impl<'a, T: Scalar> From<&'a Stack<T>> for StackView<'a, T> {
    fn from(s: &'a Stack<T>) -> Self {
        s.view()
    }
}

/// A source of per-(layer, head) matrices, read one head at a time: what
/// the whole-model routines ([`analysis`](crate::analysis),
/// [`collapse`](crate::collapse)) read — a stack in memory, a view of one,
/// attention computed from queries and keys
/// ([`QkAttention`](crate::attention::QkAttention)), or a file read head by
/// head ([`io`](crate::io)), so that peak memory stays O(threads·n·m).
///
/// Implemented by [`Stack`], [`StackView`] and the file readers of
/// [`io`](crate::io). Implementations must be cheap to call from several
/// threads at once (the analysis reads heads in parallel).
pub trait HeadSource: Sync {
    /// The scalar type heads are handed out in.
    type Elem: Scalar;

    /// [layers, heads, rows, cols].
    fn shape(&self) -> [usize; 4];

    /// The precision the values were stored in (for a stack in memory, its
    /// own type; for a file, the file's dtype), which sets the noise floor
    /// of an analysis.
    fn precision(&self) -> Precision;

    /// The rows×cols matrix of (layer, head), column-major.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for an index out of range; the reading
    /// and conversion errors of the source.
    fn head(&self, layer: usize, head: usize) -> Result<DMatrix<Self::Elem>>;
}

impl<T: Scalar> HeadSource for StackView<'_, T> {
    type Elem = T;

    fn shape(&self) -> [usize; 4] {
        self.shape
    }

    fn precision(&self) -> Precision {
        Precision::of::<T>()
    }

    fn head(&self, layer: usize, head: usize) -> Result<DMatrix<T>> {
        Ok(StackView::head(self, layer, head)?.to_dmatrix())
    }
}

/// A stack is read through its view.
impl<T: Scalar> HeadSource for Stack<T> {
    type Elem = T;

    fn shape(&self) -> [usize; 4] {
        self.shape
    }

    fn precision(&self) -> Precision {
        HeadSource::precision(&self.view())
    }

    fn head(&self, layer: usize, head: usize) -> Result<DMatrix<T>> {
        HeadSource::head(&self.view(), layer, head)
    }
}
