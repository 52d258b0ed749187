//! The crate's single error type, and the two small types its variants
//! carry ([`Violation`], [`Method`]).
//!
//! Every fallible public function returns [`Result<T>`](Result). Each variant
//! carries the data a caller needs to act on it (which row, which entry, how
//! far off). Floating-point payloads are stored as `f64` whatever the scalar
//! type of the computation, so the enum is not generic.
//!
//! This module is the bottom floor of the crate (`docs/ARCHITECTURE.md`): it
//! imports nothing from the crate. [`Violation`] is re-exported by
//! [`stochastic`](crate::stochastic) and [`Method`] by [`svd`](crate::svd),
//! where they are documented in context.

use std::fmt;

/// The algorithm that computed a singular value decomposition (see
/// [`svd`](crate::svd)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Method {
    /// nalgebra's bidiagonal implicit-shift QR.
    Nalgebra,
    /// faer's bidiagonalisation and divide-and-conquer (values only: the
    /// crate's dqds on faer's bidiagonal).
    Faer,
    /// The crate's one-sided Jacobi.
    Jacobi,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Nalgebra => "nalgebra",
            Method::Faer => "faer",
            Method::Jacobi => "Jacobi",
        })
    }
}

/// One way in which a matrix fails to be stochastic (see
/// [`stochastic`](crate::stochastic)).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Violation {
    /// An entry is NaN or ±∞.
    NonFinite {
        /// Row of the entry.
        row: usize,
        /// Column of the entry.
        col: usize,
    },
    /// An entry is below −τ.
    Negative {
        /// Row of the entry.
        row: usize,
        /// Column of the entry.
        col: usize,
        /// The entry.
        value: f64,
    },
    /// A row sum differs from 1 by more than τ.
    RowSum {
        /// The row.
        row: usize,
        /// Its sum.
        sum: f64,
        /// sum − 1.
        deviation: f64,
    },
    /// A column sum differs from 1 by more than τ.
    ColumnSum {
        /// The column.
        col: usize,
        /// Its sum.
        sum: f64,
        /// sum − 1.
        deviation: f64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::NonFinite { row, col } => {
                write!(f, "entry ({row}, {col}) is not finite")
            }
            Violation::Negative { row, col, value } => {
                write!(f, "entry ({row}, {col}) is negative: {value:e}")
            }
            Violation::RowSum {
                row,
                sum,
                deviation,
            } => write!(f, "row {row} sums to {sum} (off by {deviation:e})"),
            Violation::ColumnSum {
                col,
                sum,
                deviation,
            } => write!(f, "column {col} sums to {sum} (off by {deviation:e})"),
        }
    }
}

impl Violation {
    /// How far off this violation is: |deviation| for sums, |value| for
    /// negative entries, +∞ for non-finite entries.
    ///
    /// ```
    /// # use attention_svd::stochastic::Violation;
    /// let v = Violation::RowSum { row: 0, sum: 0.9, deviation: -0.1 };
    /// assert_eq!(v.magnitude(), 0.1);
    /// ```
    pub fn magnitude(&self) -> f64 {
        match self {
            Violation::NonFinite { .. } => f64::INFINITY,
            Violation::Negative { value, .. } => value.abs(),
            Violation::RowSum { deviation, .. } | Violation::ColumnSum { deviation, .. } => {
                deviation.abs()
            }
        }
    }
}

/// `std::result::Result` specialised to this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in this crate.
///
/// # Examples
///
/// ```
/// use attention_svd::{attention::{softmax_rows, Mask}, Error};
/// use attention_svd::nalgebra::dmatrix;
///
/// let logits = dmatrix![0.0_f64, 1.0; 2.0, 3.0];
/// let mask = Mask::key_padding(vec![false, false]);
/// assert_eq!(softmax_rows(&logits, &mask), Err(Error::FullyMaskedRow { row: 0 }));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// An input matrix has no entries.
    Empty {
        /// Which input (`"matrix"`, `"queries"`, …).
        what: &'static str,
        /// Its number of rows.
        rows: usize,
        /// Its number of columns.
        cols: usize,
    },
    /// A square matrix was required.
    NotSquare {
        /// Number of rows of the input.
        rows: usize,
        /// Number of columns of the input.
        cols: usize,
    },
    /// Two inputs (or an input and a parameter) disagree in shape.
    ShapeMismatch {
        /// Which input has the wrong shape.
        what: &'static str,
        /// The shape that was required, as (rows, columns).
        expected: (usize, usize),
        /// The shape that was given, as (rows, columns).
        found: (usize, usize),
    },
    /// An input holds NaN or ±∞ where only finite numbers are allowed.
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Row of the first offending entry (its index for vectors).
        row: usize,
        /// Column of the first offending entry (0 for vectors).
        col: usize,
    },
    /// A result is too large to be represented in the scalar type
    /// (for example QKᵀ of queries and keys near the type's maximum).
    Overflow {
        /// What overflowed.
        what: &'static str,
    },
    /// A nonzero value would become zero in a narrowing conversion (f64 data
    /// analysed in f32 arithmetic, say): the crate reports the loss instead
    /// of flushing silently.
    Underflow {
        /// What would underflow.
        what: &'static str,
    },
    /// Every key of this query row is masked out, so its softmax is undefined.
    ///
    /// Policy: the crate never returns a NaN or an all-zero row for it.
    FullyMaskedRow {
        /// Index of the query row.
        row: usize,
    },
    /// A matrix is not (row-, column- or doubly-) stochastic within tolerance.
    NotStochastic {
        /// The largest violation found.
        violation: Violation,
        /// The tolerance that was applied.
        tolerance: f64,
    },
    /// A slice given as singular values is not non-negative and non-increasing.
    InvalidSpectrum {
        /// Index of the first offending value.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// An iterative SVD hit its iteration cap before converging.
    NoConvergence {
        /// The algorithm that gave up.
        method: Method,
        /// Iterations (Jacobi: sweeps; nalgebra: implicit-shift QR steps)
        /// done, when the algorithm reports them (`None` for faer, which
        /// only says that it stopped).
        iterations: Option<usize>,
        /// The cap that was hit.
        max_iterations: usize,
        /// Jacobi: the largest remaining |cos| of the angle between two columns,
        /// to compare with the threshold √rows·ε. `None` where unknown.
        off_diagonal: Option<f64>,
    },
    /// An SVD routine produced a non-finite or otherwise unusable result.
    Breakdown {
        /// The algorithm that broke down.
        method: Method,
        /// What was wrong with its output.
        reason: &'static str,
    },
    /// A rank r outside `min..=max`.
    InvalidRank {
        /// The rank that was asked for.
        rank: usize,
        /// The smallest allowed rank (0, or 1 where zero makes no sense).
        min: usize,
        /// The largest allowed rank (typically min(rows, columns)).
        max: usize,
    },
    /// A tolerance that is not a finite positive number.
    InvalidTolerance {
        /// Which tolerance.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// An energy target outside (0, 1].
    InvalidEnergy {
        /// The target given.
        target: f64,
    },
    /// A file could not be read, or does not hold what was expected.
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// An error in one (layer, head) of a stack.
    AtHead {
        /// The layer.
        layer: usize,
        /// The head.
        head: usize,
        /// The error for that head's matrix.
        source: Box<Error>,
    },
    /// An error in one layer of a stack, in a quantity of the whole layer
    /// (the head average, the rollout) rather than of one head.
    AtLayer {
        /// The layer.
        layer: usize,
        /// The error for that layer.
        source: Box<Error>,
    },
    /// Any other parameter outside its domain.
    InvalidParameter {
        /// Which parameter.
        name: &'static str,
        /// What its domain is.
        reason: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Empty { what, rows, cols } => {
                write!(f, "{what} is empty ({rows}×{cols})")
            }
            Error::NotSquare { rows, cols } => {
                write!(f, "matrix must be square, got {rows}×{cols}")
            }
            Error::ShapeMismatch {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what} has shape {}×{}, expected {}×{}",
                found.0, found.1, expected.0, expected.1
            ),
            Error::NonFinite { what, row, col } => {
                write!(f, "{what} holds a non-finite value at ({row}, {col})")
            }
            Error::Overflow { what } => write!(f, "{what} overflows the scalar type"),
            Error::Underflow { what } => {
                write!(f, "{what} is nonzero but rounds to zero in the scalar type")
            }
            Error::FullyMaskedRow { row } => {
                write!(f, "every key of query row {row} is masked out")
            }
            Error::NotStochastic {
                violation,
                tolerance,
            } => write!(f, "{violation} (tolerance {tolerance:e})"),
            Error::InvalidSpectrum { index, value } => write!(
                f,
                "singular values must be non-negative and non-increasing; \
                 value {value:e} at index {index} is not"
            ),
            Error::NoConvergence {
                method,
                iterations,
                max_iterations,
                off_diagonal,
            } => {
                let unit = match method {
                    Method::Jacobi => "sweep",
                    Method::Nalgebra => "QR step",
                    Method::Faer => "iteration",
                };
                match iterations {
                    Some(1) => write!(f, "{method} SVD did not converge after 1 {unit}")?,
                    Some(i) => write!(f, "{method} SVD did not converge after {i} {unit}s")?,
                    None => write!(f, "{method} SVD did not converge")?,
                }
                write!(f, " (cap {max_iterations})")?;
                if let Some(c) = off_diagonal {
                    write!(f, "; largest remaining |cos θ| {c:.3e}")?;
                }
                Ok(())
            }
            Error::Breakdown { method, reason } => {
                write!(f, "{method} SVD broke down: {reason}")
            }
            Error::InvalidRank { rank, min, max } => {
                write!(f, "rank {rank} is out of range {min}..={max}")
            }
            Error::InvalidTolerance { name, value } => {
                write!(
                    f,
                    "tolerance `{name}` must be finite and positive, got {value:e}"
                )
            }
            Error::InvalidEnergy { target } => {
                write!(f, "energy target must lie in (0, 1], got {target}")
            }
            Error::File { path, problem } => write!(f, "{path}: {problem}"),
            Error::AtHead {
                layer,
                head,
                source,
            } => write!(f, "layer {layer}, head {head}: {source}"),
            Error::AtLayer { layer, source } => write!(f, "layer {layer}: {source}"),
            Error::InvalidParameter { name, reason } => {
                write!(f, "invalid parameter `{name}`: {reason}")
            }
        }
    }
}

impl Error {
    /// This error, wrapped with the (layer, head) it happened in (kept as
    /// is if it already names one).
    pub(crate) fn at_head(self, layer: usize, head: usize) -> Error {
        match self {
            e @ Error::AtHead { .. } => e,
            e => Error::AtHead {
                layer,
                head,
                source: Box::new(e),
            },
        }
    }

    /// This error, wrapped with the layer it happened in (kept as is if it
    /// already names a layer).
    pub(crate) fn at_layer(self, layer: usize) -> Error {
        match self {
            e @ (Error::AtHead { .. } | Error::AtLayer { .. }) => e,
            e => Error::AtLayer {
                layer,
                source: Box::new(e),
            },
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::AtHead { source, .. } | Error::AtLayer { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}
