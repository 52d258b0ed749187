//! A stack of per-(layer, head) matrices: attention weights [l, h, n, m] or
//! per-head queries/keys [l, h, n, d].
//!
//! The layout is the one Hugging Face (`output_attentions=True`, stacked
//! over layers) and TransformerLens use: a dense, C-order (row-major)
//! array indexed by (layer, head, row, column). A single matrix [n, m] is a
//! stack with one layer and one head; [h, n, m] has one layer.
//!
//! Memory is the array itself; [`Stack::matrix`] copies one matrix out
//! (O(rows·cols)) so that heads can be processed one at a time.

use nalgebra::DMatrix;

use crate::{Error, Result, Scalar};

/// A dense [layers, heads, rows, cols] array in C order.
///
/// # Examples
///
/// ```
/// use attention_svd::Stack;
/// use nalgebra::dmatrix;
///
/// let s = Stack::from_matrices(1, 2, &[dmatrix![1.0_f32, 0.0; 0.5, 0.5], dmatrix![0.0, 1.0; 1.0, 0.0]]).unwrap();
/// assert_eq!(s.shape(), [1, 2, 2, 2]);
/// assert_eq!(s.matrix(0, 1).unwrap(), dmatrix![0.0, 1.0; 1.0, 0.0]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Stack<T> {
    shape: [usize; 4],
    data: Vec<T>,
}

impl<T: Scalar> Stack<T> {
    /// Wraps C-order `data` of shape [layers, heads, rows, cols].
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] if `data.len()` is not the product of the
    /// shape; [`Error::Empty`] if any dimension is 0.
    pub fn new(shape: [usize; 4], data: Vec<T>) -> Result<Self> {
        let [l, h, r, c] = shape;
        if shape.contains(&0) {
            return Err(Error::Empty {
                what: "stack",
                rows: l.saturating_mul(h).saturating_mul(r),
                cols: c,
            });
        }
        let expected = l
            .checked_mul(h)
            .and_then(|x| x.checked_mul(r))
            .and_then(|x| x.checked_mul(c));
        if expected != Some(data.len()) {
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
    pub fn from_matrices(layers: usize, heads: usize, matrices: &[DMatrix<T>]) -> Result<Self> {
        if layers.checked_mul(heads) != Some(matrices.len()) {
            return Err(Error::ShapeMismatch {
                what: "number of matrices",
                expected: (layers.saturating_mul(heads), 1),
                found: (matrices.len(), 1),
            });
        }
        let (r, c) = matrices.first().map_or((0, 0), |m| m.shape());
        let mut data = Vec::with_capacity(matrices.len() * r * c);
        for m in matrices {
            if m.shape() != (r, c) {
                return Err(Error::ShapeMismatch {
                    what: "matrix in stack",
                    expected: (r, c),
                    found: m.shape(),
                });
            }
            // C order: row by row.
            for i in 0..r {
                data.extend(m.row(i).iter().copied());
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

    /// The rows×cols matrix of (layer, head), copied out.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if the layer or head is out of range.
    pub fn matrix(&self, layer: usize, head: usize) -> Result<DMatrix<T>> {
        let [l, h, r, c] = self.shape;
        if layer >= l || head >= h {
            return Err(Error::InvalidParameter {
                name: "layer/head",
                reason: "index out of range of the stack",
            });
        }
        let start = (layer * h + head) * r * c;
        Ok(DMatrix::from_row_slice(
            r,
            c,
            &self.data[start..start + r * c],
        ))
    }

    /// Converts every element to another scalar type (exact when widening).
    pub fn cast<U: Scalar>(&self) -> Stack<U> {
        Stack {
            shape: self.shape,
            data: self.data.iter().map(|&x| U::lit(x.to_f64())).collect(),
        }
    }
}
