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
//! use attention_svd::nalgebra::dmatrix;
//! use attention_svd::stochastic::{check_stochastic, StochasticParams, Violation};
//! use attention_svd::Error;
//!
//! let a = dmatrix![0.5_f64, 0.5; 0.25, 0.70];
//! match check_stochastic(&a, StochasticParams::row()) {
//!     Err(Error::NotStochastic { violation: Violation::RowSum { row, deviation, .. }, .. }) => {
//!         assert_eq!(row, 1);
//!         assert!((deviation + 0.05).abs() < 1e-15);
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```

pub use crate::error::Violation;
use crate::num::sum::compensated_sum;
use crate::view::{AsMatrixRef, MatrixRef};
use crate::{Error, Result, Scalar, check};

/// Which lines of the matrix must be probability vectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Stochasticity {
    /// Every row sums to one (attention weights).
    #[default]
    Row,
    /// Every column sums to one.
    Column,
    /// Rows and columns sum to one; the matrix must be square.
    Doubly,
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

/// What [`check_stochastic`] and [`violations`] check: the kind of
/// stochasticity and the tolerance τ (default [`default_tolerance`] of the
/// line length).
///
/// # Examples
///
/// ```
/// use attention_svd::stochastic::{StochasticParams, Stochasticity};
/// let p = StochasticParams::<f32>::row().tolerance(1e-5);
/// assert_eq!(p, StochasticParams::default().kind(Stochasticity::Row).tolerance(1e-5));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StochasticParams<T> {
    kind: Stochasticity,
    tolerance: Option<T>,
}

impl<T: Scalar> Default for StochasticParams<T> {
    /// Rows, with the default tolerance.
    fn default() -> Self {
        StochasticParams {
            kind: Stochasticity::Row,
            tolerance: None,
        }
    }
}

impl<T: Scalar> StochasticParams<T> {
    /// Rows must sum to one (the default).
    pub fn row() -> Self {
        Self::default()
    }

    /// Columns must sum to one.
    pub fn column() -> Self {
        Self::default().kind(Stochasticity::Column)
    }

    /// Rows and columns must sum to one.
    pub fn doubly() -> Self {
        Self::default().kind(Stochasticity::Doubly)
    }

    /// Sets the kind of stochasticity.
    pub fn kind(mut self, kind: Stochasticity) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the tolerance τ (finite and positive; checked when used).
    pub fn tolerance(mut self, tol: T) -> Self {
        self.tolerance = Some(tol);
        self
    }
}

/// Checks that `a` is stochastic of the given kind within the tolerance;
/// see the [module docs](self).
///
/// # Errors
///
/// [`Error::NotStochastic`] with the most severe [`Violation`] (a non-finite
/// entry first, then the most negative entry, then the largest line-sum
/// deviation); [`Error::Empty`]; [`Error::InvalidTolerance`] if the
/// tolerance is not finite and positive; [`Error::NotSquare`] for
/// [`Stochasticity::Doubly`] on a non-square matrix.
///
/// # Examples
///
/// ```
/// use attention_svd::nalgebra::dmatrix;
/// use attention_svd::stochastic::{check_stochastic, StochasticParams};
///
/// assert!(check_stochastic(&dmatrix![0.2_f32, 0.8; 1.0, 0.0], StochasticParams::row()).is_ok());
/// assert!(check_stochastic(&dmatrix![0.2_f32, 0.7; 1.0, 0.0], StochasticParams::row().tolerance(0.2)).is_ok());
/// assert!(check_stochastic(&dmatrix![0.2_f64, 1.0; 0.8, 0.0], StochasticParams::column()).is_ok());
/// assert!(check_stochastic(&dmatrix![0.3_f64, 0.7; 0.3, 0.7], StochasticParams::doubly()).is_err());
/// ```
pub fn check_stochastic<T: Scalar>(
    a: &impl AsMatrixRef<T>,
    params: StochasticParams<T>,
) -> Result<()> {
    let a = a.as_matrix_ref();
    let tolerance = resolve_tolerance(&a, params)?;
    let all = collect_violations(&a, params.kind, tolerance);
    match worst(all) {
        None => Ok(()),
        Some(violation) => Err(Error::NotStochastic {
            violation,
            tolerance: tolerance.to_f64(),
        }),
    }
}

/// Every violation of the given kind of stochasticity within the
/// tolerance, in the order: non-finite and negative entries (row-major),
/// then row sums, then column sums. An empty vector means the check passes.
///
/// # Errors
///
/// [`Error::Empty`], [`Error::InvalidTolerance`], and [`Error::NotSquare`]
/// for [`Stochasticity::Doubly`] on a non-square matrix.
///
/// # Examples
///
/// ```
/// use attention_svd::nalgebra::dmatrix;
/// use attention_svd::stochastic::{violations, StochasticParams, Violation};
///
/// let a = dmatrix![1.5_f64, -0.5; 0.5, 0.5; 0.9, 0.0];
/// let v = violations(&a, StochasticParams::row()).unwrap();
/// assert_eq!(v.len(), 2);
/// assert!(matches!(v[0], Violation::Negative { row: 0, col: 1, .. }));
/// assert!(matches!(v[1], Violation::RowSum { row: 2, .. }));
/// ```
pub fn violations<T: Scalar>(
    a: &impl AsMatrixRef<T>,
    params: StochasticParams<T>,
) -> Result<Vec<Violation>> {
    let a = a.as_matrix_ref();
    let tol = resolve_tolerance(&a, params)?;
    Ok(collect_violations(&a, params.kind, tol))
}

fn collect_violations<T: Scalar>(
    a: &MatrixRef<'_, T>,
    kind: Stochasticity,
    tol: T,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for row in 0..a.nrows() {
        for col in 0..a.ncols() {
            let x = a.get(row, col);
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
    if out.iter().any(|v| matches!(v, Violation::NonFinite { .. })) {
        // Sums of lines with NaN/∞ carry no further information.
        return out;
    }
    if matches!(kind, Stochasticity::Row | Stochasticity::Doubly) {
        for (row, sum) in line_sums(a, true).into_iter().enumerate() {
            if let Some((sum, deviation)) = exceeds(sum, tol) {
                out.push(Violation::RowSum {
                    row,
                    sum,
                    deviation,
                });
            }
        }
    }
    if matches!(kind, Stochasticity::Column | Stochasticity::Doubly) {
        for (col, sum) in line_sums(a, false).into_iter().enumerate() {
            if let Some((sum, deviation)) = exceeds(sum, tol) {
                out.push(Violation::ColumnSum {
                    col,
                    sum,
                    deviation,
                });
            }
        }
    }
    out
}

/// max_i |Σ_j a_ij − 1|: how far the rows are from summing to one.
///
/// # Errors
///
/// [`Error::Empty`]; [`Error::NonFinite`] for NaN/±∞ entries. Sums are
/// formed on the scale of each line's largest entry, so the result is
/// finite whenever it is representable; a deviation beyond the type's
/// range is [`Error::Overflow`].
///
/// # Examples
///
/// ```
/// use attention_svd::nalgebra::dmatrix;
/// use attention_svd::stochastic::max_row_sum_deviation;
///
/// let d = max_row_sum_deviation(&dmatrix![0.5_f64, 0.5; 0.5, 0.25]).unwrap();
/// assert_eq!(d, 0.25);
/// // Σ = MAX + MAX − MAX = MAX: representable, although MAX + MAX is not.
/// let m = f64::MAX;
/// assert_eq!(max_row_sum_deviation(&dmatrix![m, m, -m]).unwrap(), m);
/// ```
pub fn max_row_sum_deviation<T: Scalar>(a: &impl AsMatrixRef<T>) -> Result<T> {
    let a = a.as_matrix_ref();
    check::matrix(&a, "matrix")?;
    max_deviation(line_sums(&a, true), "row sum")
}

/// max_j |Σ_i a_ij − 1|: how far the columns are from summing to one.
///
/// # Errors
///
/// As [`max_row_sum_deviation`].
///
/// # Examples
///
/// ```
/// use attention_svd::nalgebra::dmatrix;
/// use attention_svd::stochastic::max_column_sum_deviation;
///
/// let d = max_column_sum_deviation(&dmatrix![0.5_f64, 0.5; 0.5, 0.25]).unwrap();
/// assert_eq!(d, 0.25);
/// ```
pub fn max_column_sum_deviation<T: Scalar>(a: &impl AsMatrixRef<T>) -> Result<T> {
    let a = a.as_matrix_ref();
    check::matrix(&a, "matrix")?;
    max_deviation(line_sums(&a, false), "column sum")
}

fn resolve_tolerance<T: Scalar>(a: &MatrixRef<'_, T>, params: StochasticParams<T>) -> Result<T> {
    check::non_empty(a, "matrix")?;
    let (n, m) = a.shape();
    if params.kind == Stochasticity::Doubly && n != m {
        return Err(Error::NotSquare { rows: n, cols: m });
    }
    match params.tolerance {
        Some(t) => check::tolerance(t, "tolerance"),
        None => Ok(default_tolerance(match params.kind {
            Stochasticity::Row => m,
            Stochasticity::Column | Stochasticity::Doubly => n,
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

/// A line sum as (scale, Σ aᵢ/scale): scale = the line's max |aᵢ| (1 if
/// that is below 1), so the scaled sum of finite entries cannot overflow.
type LineSum<T> = (T, T);

/// Row (`rows = true`) or column sums of a finite matrix, scaled.
fn line_sums<T: Scalar>(a: &MatrixRef<'_, T>, rows: bool) -> Vec<LineSum<T>> {
    let (n, m) = a.shape();
    let (lines, len) = if rows { (n, m) } else { (m, n) };
    let at = |l: usize, t: usize| if rows { a.get(l, t) } else { a.get(t, l) };
    (0..lines)
        .map(|l| {
            let scale = (0..len).fold(T::one(), |s, t| s.max(at(l, t).abs()));
            (scale, compensated_sum((0..len).map(|t| at(l, t) / scale)))
        })
        .collect()
}

/// sum − 1 computed on the line's scale: scale·(Σ/scale − 1/scale). Finite
/// whenever the deviation itself is representable.
fn deviation<T: Scalar>((scale, scaled): LineSum<T>) -> T {
    (scaled - T::one() / scale) * scale
}

/// (sum, deviation) in f64 if |sum − 1| > τ (non-finite counts as beyond).
fn exceeds<T: Scalar>(line: LineSum<T>, tol: T) -> Option<(f64, f64)> {
    let d = deviation(line);
    let beyond = !d.finite() || d.abs() > tol;
    beyond.then(|| {
        let (scale, scaled) = line;
        (scaled.to_f64() * scale.to_f64(), d.to_f64())
    })
}

fn max_deviation<T: Scalar>(sums: Vec<LineSum<T>>, what: &'static str) -> Result<T> {
    let mut max = T::zero();
    for line in sums {
        let d = deviation(line);
        if !d.finite() {
            return Err(Error::Overflow { what });
        }
        max = max.max(d.abs());
    }
    Ok(max)
}
