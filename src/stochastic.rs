//! Checks that a matrix is row-, column- or doubly-stochastic.
//!
//! # Definition
//!
//! An n×m matrix A is **row-stochastic** when every entry is non-negative and
//! every row sums to one; **column-stochastic** when Aᵀ is row-stochastic;
//! **doubly stochastic** when it is both (which forces n = m). Attention
//! weights are row-stochastic by construction.
//!
//! # Tolerance
//!
//! Within a tolerance τ, A passes when every entry is finite, every entry is
//! ≥ −τ, and every line sum s satisfies |s − 1| ≤ τ. The default,
//! [`default_tolerance`]`(len)` = 4·len·ε for lines of `len` entries, covers
//! the rounding of a softmax row computed in the same type (≤ len·ε, see
//! `docs/THEORY.md`, T1) with a factor 4 to spare. Attention computed in f32
//! (as most PyTorch models do) and checked after widening to f64 carries
//! f32 rounding: pass the f32 tolerance explicitly.
//!
//! Line sums are accumulated with Neumaier's compensated summation, so the
//! check adds O(ε) error of its own, independently of the length.
//!
//! # Complexity
//!
//! O(n·m) time, O(1) extra memory (O(number of violations) for
//! [`violations`]).
//!
//! # Examples
//!
//! ```
//! use attention_svd::stochastic::{check_row_stochastic, Violation};
//! use attention_svd::Error;
//! use nalgebra::dmatrix;
//!
//! let a = dmatrix![0.5_f64, 0.5; 0.25, 0.70];
//! match check_row_stochastic(&a, None) {
//!     Err(Error::NotStochastic { violation: Violation::RowSum { row, deviation, .. }, .. }) => {
//!         assert_eq!(row, 1);
//!         assert!((deviation + 0.05).abs() < 1e-15);
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```

use std::fmt;

use nalgebra::DMatrix;

use crate::{check, Error, Result, Scalar};

/// Which lines of the matrix must be probability vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stochasticity {
    /// Every row sums to one (attention weights).
    Row,
    /// Every column sums to one.
    Column,
    /// Rows and columns sum to one; the matrix must be square.
    Doubly,
}

/// One way in which a matrix fails to be stochastic.
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

/// The default tolerance for lines of `len` entries: 4·len·ε of `T`.
///
/// # Examples
///
/// ```
/// use attention_svd::stochastic::default_tolerance;
/// assert_eq!(default_tolerance::<f64>(128), 512.0 * f64::EPSILON);
/// ```
pub fn default_tolerance<T: Scalar>(len: usize) -> T {
    T::lit(4.0) * T::from_count(len.max(1)) * T::EPSILON
}

/// Checks that every row of `a` is a probability vector within `tol`
/// (default [`default_tolerance`] of the row length m).
///
/// # Errors
///
/// [`Error::NotStochastic`] with the most severe [`Violation`] (a non-finite
/// entry first, then the most negative entry, then the largest row-sum
/// deviation); [`Error::Empty`]; [`Error::InvalidTolerance`] if `tol` is not
/// finite and positive.
///
/// # Examples
///
/// ```
/// use attention_svd::stochastic::check_row_stochastic;
/// use nalgebra::dmatrix;
///
/// assert!(check_row_stochastic(&dmatrix![0.2_f32, 0.8; 1.0, 0.0], None).is_ok());
/// assert!(check_row_stochastic(&dmatrix![0.2_f32, 0.7; 1.0, 0.0], Some(0.2)).is_ok());
/// ```
pub fn check_row_stochastic<T: Scalar>(a: &DMatrix<T>, tol: Option<T>) -> Result<()> {
    check_stochastic(a, Stochasticity::Row, tol)
}

/// Checks that every column of `a` is a probability vector within `tol`
/// (default [`default_tolerance`] of the column length n).
///
/// # Errors
///
/// As [`check_row_stochastic`], with column sums.
///
/// # Examples
///
/// ```
/// use attention_svd::stochastic::check_column_stochastic;
/// use nalgebra::dmatrix;
///
/// assert!(check_column_stochastic(&dmatrix![0.2_f64, 1.0; 0.8, 0.0], None).is_ok());
/// ```
pub fn check_column_stochastic<T: Scalar>(a: &DMatrix<T>, tol: Option<T>) -> Result<()> {
    check_stochastic(a, Stochasticity::Column, tol)
}

/// Checks that the square matrix `a` is doubly stochastic within `tol`
/// (default [`default_tolerance`] of n).
///
/// # Errors
///
/// As [`check_row_stochastic`], and [`Error::NotSquare`].
///
/// # Examples
///
/// ```
/// use attention_svd::stochastic::check_doubly_stochastic;
/// use nalgebra::dmatrix;
///
/// assert!(check_doubly_stochastic(&dmatrix![0.3_f64, 0.7; 0.7, 0.3], None).is_ok());
/// assert!(check_doubly_stochastic(&dmatrix![0.3_f64, 0.7; 0.3, 0.7], None).is_err());
/// ```
pub fn check_doubly_stochastic<T: Scalar>(a: &DMatrix<T>, tol: Option<T>) -> Result<()> {
    check_stochastic(a, Stochasticity::Doubly, tol)
}

/// Checks `a` for the given kind of stochasticity; see
/// [`check_row_stochastic`].
///
/// # Errors
///
/// As [`check_row_stochastic`]; [`Error::NotSquare`] for
/// [`Stochasticity::Doubly`] on a non-square matrix.
///
/// # Examples
///
/// ```
/// use attention_svd::stochastic::{check_stochastic, Stochasticity};
/// use nalgebra::dmatrix;
///
/// let a = dmatrix![0.5_f64, 0.5; 0.5, 0.5];
/// assert!(check_stochastic(&a, Stochasticity::Doubly, None).is_ok());
/// ```
pub fn check_stochastic<T: Scalar>(
    a: &DMatrix<T>,
    kind: Stochasticity,
    tol: Option<T>,
) -> Result<()> {
    let tolerance = resolve_tolerance(a, kind, tol)?;
    let all = violations(a, kind, Some(tolerance))?;
    match worst(all) {
        None => Ok(()),
        Some(violation) => Err(Error::NotStochastic {
            violation,
            tolerance: tolerance.to_f64(),
        }),
    }
}

/// Every violation of the given kind of stochasticity within `tol` (default
/// as in [`check_stochastic`]), in the order: non-finite and negative
/// entries (row-major), then row sums, then column sums.
///
/// An empty vector means the check passes.
///
/// # Errors
///
/// [`Error::Empty`], [`Error::InvalidTolerance`], and [`Error::NotSquare`]
/// for [`Stochasticity::Doubly`] on a non-square matrix.
///
/// # Examples
///
/// ```
/// use attention_svd::stochastic::{violations, Stochasticity, Violation};
/// use nalgebra::dmatrix;
///
/// let a = dmatrix![1.5_f64, -0.5; 0.5, 0.5; 0.9, 0.0];
/// let v = violations(&a, Stochasticity::Row, None).unwrap();
/// assert_eq!(v.len(), 2);
/// assert!(matches!(v[0], Violation::Negative { row: 0, col: 1, .. }));
/// assert!(matches!(v[1], Violation::RowSum { row: 2, .. }));
/// ```
pub fn violations<T: Scalar>(
    a: &DMatrix<T>,
    kind: Stochasticity,
    tol: Option<T>,
) -> Result<Vec<Violation>> {
    let tol = resolve_tolerance(a, kind, tol)?;
    let mut out = Vec::new();
    for row in 0..a.nrows() {
        for col in 0..a.ncols() {
            let x = a[(row, col)];
            if !x.finite() {
                out.push(Violation::NonFinite { row, col });
            } else if x < -tol {
                out.push(Violation::Negative {
                    row,
                    col,
                    value: x.to_f64(),
                });
            }
        }
    }
    if !out.is_empty() && out.iter().any(|v| matches!(v, Violation::NonFinite { .. })) {
        // Sums of lines with NaN/∞ carry no further information.
        return Ok(out);
    }
    if matches!(kind, Stochasticity::Row | Stochasticity::Doubly) {
        for (row, sum) in row_sums(a).into_iter().enumerate() {
            let deviation = deviation_of(sum);
            if deviation.abs() > tol {
                out.push(Violation::RowSum {
                    row,
                    sum: sum.to_f64(),
                    deviation: deviation.to_f64(),
                });
            }
        }
    }
    if matches!(kind, Stochasticity::Column | Stochasticity::Doubly) {
        for (col, sum) in column_sums(a).into_iter().enumerate() {
            let deviation = deviation_of(sum);
            if deviation.abs() > tol {
                out.push(Violation::ColumnSum {
                    col,
                    sum: sum.to_f64(),
                    deviation: deviation.to_f64(),
                });
            }
        }
    }
    Ok(out)
}

/// max_i |Σ_j a_ij − 1|: how far the rows are from summing to one.
///
/// # Errors
///
/// [`Error::Empty`]; [`Error::NonFinite`] for NaN/±∞ entries;
/// [`Error::Overflow`] if a row sum exceeds the type's range.
///
/// # Examples
///
/// ```
/// use attention_svd::stochastic::max_row_sum_deviation;
/// use nalgebra::dmatrix;
///
/// let d = max_row_sum_deviation(&dmatrix![0.5_f64, 0.5; 0.5, 0.25]).unwrap();
/// assert_eq!(d, 0.25);
/// ```
pub fn max_row_sum_deviation<T: Scalar>(a: &DMatrix<T>) -> Result<T> {
    check::matrix(a, "matrix")?;
    max_deviation(row_sums(a), "row sum")
}

/// max_j |Σ_i a_ij − 1|: how far the columns are from summing to one.
///
/// # Errors
///
/// [`Error::Empty`]; [`Error::NonFinite`] for NaN/±∞ entries;
/// [`Error::Overflow`] if a column sum exceeds the type's range.
///
/// # Examples
///
/// ```
/// use attention_svd::stochastic::max_column_sum_deviation;
/// use nalgebra::dmatrix;
///
/// let d = max_column_sum_deviation(&dmatrix![0.5_f64, 0.5; 0.5, 0.25]).unwrap();
/// assert_eq!(d, 0.25);
/// ```
pub fn max_column_sum_deviation<T: Scalar>(a: &DMatrix<T>) -> Result<T> {
    check::matrix(a, "matrix")?;
    max_deviation(column_sums(a), "column sum")
}

fn resolve_tolerance<T: Scalar>(a: &DMatrix<T>, kind: Stochasticity, tol: Option<T>) -> Result<T> {
    check::non_empty(a, "matrix")?;
    if kind == Stochasticity::Doubly && a.nrows() != a.ncols() {
        return Err(Error::NotSquare {
            rows: a.nrows(),
            cols: a.ncols(),
        });
    }
    match tol {
        Some(t) => check::tolerance(t, "tol"),
        None => Ok(default_tolerance(match kind {
            Stochasticity::Row => a.ncols(),
            Stochasticity::Column => a.nrows(),
            Stochasticity::Doubly => a.nrows(),
        })),
    }
}

fn worst(all: Vec<Violation>) -> Option<Violation> {
    // Non-finite first, then negative entries, then sums; within a class the
    // largest magnitude (the first one on ties).
    let class = |v: &Violation| match v {
        Violation::NonFinite { .. } => 0,
        Violation::Negative { .. } => 1,
        _ => 2,
    };
    let mut best: Option<Violation> = None;
    for v in all {
        let better = match &best {
            None => true,
            Some(b) => {
                class(&v) < class(b) || (class(&v) == class(b) && v.magnitude() > b.magnitude())
            }
        };
        if better {
            best = Some(v);
        }
    }
    best
}

/// sum − 1, or +∞ when the sum overflowed (compensated summation then
/// yields ±∞ or NaN).
fn deviation_of<T: Scalar>(sum: T) -> T {
    if sum.finite() {
        sum - T::one()
    } else {
        T::INFINITY
    }
}

fn max_deviation<T: Scalar>(sums: Vec<T>, what: &'static str) -> Result<T> {
    let mut max = T::zero();
    for s in sums {
        if !s.finite() {
            return Err(Error::Overflow { what });
        }
        max = max.max((s - T::one()).abs());
    }
    Ok(max)
}

/// Neumaier's compensated sum: error O(ε)·Σ|x| independent of the length.
pub(crate) fn compensated_sum<T: Scalar>(values: impl Iterator<Item = T>) -> T {
    let mut sum = T::zero();
    let mut c = T::zero();
    for x in values {
        let t = sum + x;
        if sum.abs() >= x.abs() {
            c += (sum - t) + x;
        } else {
            c += (x - t) + sum;
        }
        sum = t;
    }
    sum + c
}

fn row_sums<T: Scalar>(a: &DMatrix<T>) -> Vec<T> {
    (0..a.nrows())
        .map(|i| compensated_sum(a.row(i).iter().copied()))
        .collect()
}

fn column_sums<T: Scalar>(a: &DMatrix<T>) -> Vec<T> {
    (0..a.ncols())
        .map(|j| compensated_sum(a.column(j).iter().copied()))
        .collect()
}
