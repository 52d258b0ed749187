//! Rank collapse across layers (Dong, Cordonnier & Loukas 2021) and
//! attention rollout (Abnar & Zuidema 2020).
//!
//! # Rank collapse
//!
//! Pure attention drives token representations towards identical rows: a
//! matrix of the form 1xᵀ. For an n×m matrix A, with ‖X‖₁,∞ = √(‖X‖₁·‖X‖_∞)
//! Dong et al.'s composite norm (‖·‖₁ the largest absolute column sum, ‖·‖_∞
//! the largest absolute row sum), x̄ the mean row and x̃ the column-wise
//! median row, [`rank_collapse`] reports
//!
//! ```text
//! residual_composite          min over x ∈ {x̄, x̃, 0} of ‖A − 1xᵀ‖₁,∞
//! residual_relative           residual_composite / ‖A‖₁,∞          (≤ 1: x = 0 is a candidate)
//! residual_frobenius_relative ‖A − 1x̄ᵀ‖_F / ‖A‖_F = min_x ‖A − 1xᵀ‖_F / ‖A‖_F
//! sigma_ratio                 σ₂/σ₁
//! rank_one_residual           √(Σ_{i≥2} σᵢ²) / ‖A‖_F = ‖A − A₁‖_F / ‖A‖_F
//! ```
//!
//! Dong et al. define the residual with the x that minimises the composite
//! norm, which has no closed form; x̃ minimises ‖A − 1xᵀ‖₁ exactly and x̄ the
//! Frobenius distance, so `residual_composite` is an upper bound on their
//! residual that is exact whenever one of the candidates is optimal (always
//! when the rows are identical). The residual is 0 exactly when all rows are
//! equal (`docs/THEORY.md`, T16), and ‖A − 1x̄ᵀ‖_F ≥ ‖A − A₁‖_F because 1x̄ᵀ
//! has rank ≤ 1 (Eckart–Young, T8).
//!
//! Across layers, the map from the input of layer 1 to the output of layer
//! l is P_l = A_l·A_{l−1}⋯A_1: [`collapse_across_layers`] reports the
//! collapse of P_l per head (the same head index in every layer) and for the
//! head average Ā_l = (1/h)Σ_t A_l^(t). Products of row-stochastic matrices
//! are row-stochastic (T15).
//!
//! # Rollout
//!
//! Attention rollout models the residual connection as ½I:
//!
//! ```text
//! R_0 = I,   R_l = (½·Ā_l + ½·I)·R_{l−1}
//! ```
//!
//! Each factor is row-stochastic, so every R_l is (T15). [`rollout`]
//! returns R_1, …, R_L.
//!
//! # Complexity
//!
//! O(L·h·n³) for the per-head products of a [L, h, n, n] stack plus one
//! SVD per product; memory O(h·n²) for the products and O(L·n²) for the
//! rollouts.
//!
//! # Examples
//!
//! ```
//! use attention_svd::collapse::rank_collapse;
//! use attention_svd::svd::Backend;
//! use nalgebra::dmatrix;
//!
//! // Identical rows: fully collapsed.
//! let a = dmatrix![0.2_f64, 0.8; 0.2, 0.8; 0.2, 0.8];
//! let c = rank_collapse(&a, Backend::Auto).unwrap();
//! assert!(c.residual_relative < 1e-15 && c.sigma_ratio < 1e-15);
//! ```

use nalgebra::DMatrix;

use crate::svd::{singular_values, Backend};
use crate::{check, Error, Result, Scalar, Stack};

/// How close a matrix is to having identical rows; see the
/// [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Collapse {
    /// min over x ∈ {mean row, median row, 0} of √(‖A − 1xᵀ‖₁‖A − 1xᵀ‖_∞).
    pub residual_composite: f64,
    /// residual_composite / √(‖A‖₁‖A‖_∞), in [0, 1] (0 for A = 0).
    pub residual_relative: f64,
    /// ‖R‖_F / ‖A‖_F (0 for A = 0).
    pub residual_frobenius_relative: f64,
    /// σ₂/σ₁ (0 if min(n, m) = 1 or A = 0).
    pub sigma_ratio: f64,
    /// √(Σ_{i≥2}σᵢ²)/‖A‖_F, the relative distance to the best rank-1
    /// approximation (0 for A = 0).
    pub rank_one_residual: f64,
}

/// The composite norm √(‖A‖₁·‖A‖_∞) of Dong et al. (2021).
///
/// # Errors
///
/// [`Error::Empty`], [`Error::NonFinite`]; [`Error::Overflow`] if a line
/// sum overflows.
///
/// # Examples
///
/// ```
/// use attention_svd::collapse::composite_norm;
/// use nalgebra::dmatrix;
/// // ‖A‖₁ = 4 (column 2), ‖A‖_∞ = 3 (row 2): √12.
/// let a = dmatrix![1.0_f64, 1.0; 1.0, -2.0; 0.0, 1.0];
/// assert!((composite_norm(&a).unwrap() - 12f64.sqrt()).abs() < 1e-15);
/// ```
pub fn composite_norm<T: Scalar>(a: &DMatrix<T>) -> Result<T> {
    check::matrix(a, "matrix")?;
    let one = a
        .column_iter()
        .map(|c| c.iter().fold(T::zero(), |s, x| s + x.abs()))
        .fold(T::zero(), |x, y| x.max(y));
    let inf = a
        .row_iter()
        .map(|r| r.iter().fold(T::zero(), |s, x| s + x.abs()))
        .fold(T::zero(), |x, y| x.max(y));
    if !one.finite() || !inf.finite() {
        return Err(Error::Overflow {
            what: "composite norm",
        });
    }
    // √one·√inf: no overflow of the product.
    Ok(one.sqrt() * inf.sqrt())
}

/// The rank-collapse measures of `a`; see the [module docs](self).
///
/// # Errors
///
/// As [`composite_norm`], and the errors of the values-only SVD.
pub fn rank_collapse<T: Scalar>(a: &DMatrix<T>, backend: Backend) -> Result<Collapse> {
    let norm = composite_norm(a)?;
    let n = T::from_count(a.nrows());
    let mean_row = a.row_sum() / n;
    let residual = |x: &nalgebra::RowDVector<T>| {
        let mut r = a.clone();
        for mut row in r.row_iter_mut() {
            row -= x;
        }
        r
    };
    let r_mean = residual(&mean_row);
    // The composite norm over x ∈ {mean row, median row, 0}: the median row
    // minimises ‖A − 1xᵀ‖₁ exactly, x = 0 gives ‖A‖₁,∞ itself.
    let median_row = nalgebra::RowDVector::from_iterator(
        a.ncols(),
        a.column_iter().map(|c| {
            let mut v: Vec<T> = c.iter().copied().collect();
            v.sort_by(|x, y| x.partial_cmp(y).expect("finite"));
            let h = v.len() / 2;
            if v.len() % 2 == 1 {
                v[h]
            } else {
                v[h - 1] * T::lit(0.5) + v[h] * T::lit(0.5)
            }
        }),
    );
    let rnorm = composite_norm(&r_mean)?
        .min(composite_norm(&residual(&median_row))?)
        .min(norm);
    let sigma = singular_values(a, backend)?;
    let s1 = sigma[0];
    let fro = crate::lowrank::frobenius_error(&sigma, 0)?;
    let ratio = |x: T, y: T| {
        if y == T::zero() {
            0.0
        } else {
            (x / y).to_f64()
        }
    };
    Ok(Collapse {
        residual_composite: rnorm.to_f64(),
        residual_relative: ratio(rnorm, norm),
        residual_frobenius_relative: ratio(frobenius(&r_mean), fro),
        sigma_ratio: sigma.get(1).map_or(0.0, |&s2| ratio(s2, s1)),
        rank_one_residual: ratio(crate::lowrank::frobenius_error(&sigma, 1)?, fro),
    })
}

/// ‖a‖_F on the scale of max|aᵢⱼ| (no overflow or underflow of squares).
fn frobenius<T: Scalar>(a: &DMatrix<T>) -> T {
    let amax = a.amax();
    if amax == T::zero() {
        return T::zero();
    }
    amax * crate::stochastic::compensated_sum(a.iter().map(|&x| (x / amax) * (x / amax))).sqrt()
}

/// The product A_L·A_{L−1}⋯A_1 of `matrices` = [A_1, …, A_L] (the first
/// layer applied first).
///
/// # Errors
///
/// [`Error::Empty`] for an empty list or matrix; [`Error::ShapeMismatch`]
/// if consecutive shapes do not chain (A_l must have as many columns as
/// A_{l−1} has rows); [`Error::NonFinite`]; [`Error::Overflow`].
///
/// # Examples
///
/// ```
/// use attention_svd::collapse::attention_product;
/// use nalgebra::dmatrix;
///
/// let a1 = dmatrix![1.0_f64, 0.0; 0.5, 0.5];
/// let a2 = dmatrix![0.0_f64, 1.0; 1.0, 0.0];
/// assert_eq!(attention_product(&[a1.clone(), a2.clone()]).unwrap(), &a2 * &a1);
/// ```
pub fn attention_product<T: Scalar>(matrices: &[DMatrix<T>]) -> Result<DMatrix<T>> {
    let Some(first) = matrices.first() else {
        return Err(Error::Empty {
            what: "list of matrices",
            rows: 0,
            cols: 0,
        });
    };
    check::matrix(first, "matrix")?;
    let mut p = first.clone();
    for a in &matrices[1..] {
        check::matrix(a, "matrix")?;
        if a.ncols() != p.nrows() {
            return Err(Error::ShapeMismatch {
                what: "next matrix of the product",
                expected: (a.nrows(), p.nrows()),
                found: a.shape(),
            });
        }
        p = a * p;
        if p.iter().any(|x| !x.finite()) {
            return Err(Error::Overflow {
                what: "product of matrices",
            });
        }
    }
    Ok(p)
}

/// The head average Ā = (1/h)Σ_t A^(t) of one layer of a stack.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if `layer` is out of range;
/// [`Error::NonFinite`] for NaN/±∞ entries.
///
/// # Examples
///
/// ```
/// use attention_svd::collapse::head_average;
/// use attention_svd::Stack;
/// use nalgebra::dmatrix;
///
/// let s = Stack::new([1, 2, 1, 2], vec![1.0_f64, 0.0, 0.0, 1.0]).unwrap();
/// assert_eq!(head_average(&s, 0).unwrap(), dmatrix![0.5, 0.5]);
/// ```
pub fn head_average<T: Scalar>(stack: &Stack<T>, layer: usize) -> Result<DMatrix<T>> {
    let [_, h, n, m] = stack.shape();
    let mut avg = DMatrix::<T>::zeros(n, m);
    let weight = T::one() / T::from_count(h);
    for t in 0..h {
        let a = stack.matrix(layer, t)?;
        check::finite(&a, "attention matrix")?;
        // Scale each term first: the sum of h finite terms cannot overflow.
        avg += a * weight;
    }
    Ok(avg)
}

/// Attention rollout R_1, …, R_L of a [L, h, n, n] stack; see the
/// [module docs](self).
///
/// # Errors
///
/// [`Error::NotSquare`] if the matrices are not square; [`Error::NonFinite`]
/// for NaN/±∞ entries; [`Error::Overflow`] if the product overflows (only
/// possible for inputs far from row-stochastic).
///
/// # Examples
///
/// ```
/// use attention_svd::collapse::rollout;
/// use attention_svd::Stack;
///
/// let s = Stack::new([2, 1, 2, 2], vec![0.5_f64, 0.5, 0.1, 0.9, 1.0, 0.0, 0.0, 1.0]).unwrap();
/// let r = rollout(&s).unwrap();
/// assert_eq!(r.len(), 2);
/// for rl in &r {
///     for row in rl.row_iter() {
///         assert!((row.sum() - 1.0).abs() < 1e-15);
///     }
/// }
/// ```
pub fn rollout<T: Scalar>(stack: &Stack<T>) -> Result<Vec<DMatrix<T>>> {
    let [l, _, n, m] = stack.shape();
    if n != m {
        return Err(Error::NotSquare { rows: n, cols: m });
    }
    let half = T::lit(0.5);
    let eye = DMatrix::<T>::identity(n, n);
    let mut r = eye.clone();
    let mut out = Vec::with_capacity(l);
    for layer in 0..l {
        let step = head_average(stack, layer)? * half + &eye * half;
        r = step * r;
        if r.iter().any(|x| !x.finite()) {
            return Err(Error::Overflow { what: "rollout" });
        }
        out.push(r.clone());
    }
    Ok(out)
}

/// Rank collapse at one depth of a stack.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct DepthCollapse {
    /// Number of layers in the product (1-based: depth 1 is layer 0 alone).
    pub depth: usize,
    /// Collapse of P_l = A_l⋯A_1 for each head index.
    pub per_head: Vec<Collapse>,
    /// Collapse of Ā_l⋯Ā_1 (head-averaged attention).
    pub head_average: Collapse,
    /// Collapse of the rollout R_l.
    pub rollout: Collapse,
    /// Effective rank of the rollout R_l.
    pub rollout_effective_rank: f64,
    /// Effective rank of Ā_l⋯Ā_1.
    pub head_average_effective_rank: f64,
}

/// Rank collapse of the per-head and head-averaged attention products and
/// of the rollout, at every depth of a [L, h, n, n] stack.
///
/// # Errors
///
/// [`Error::NotSquare`] if the matrices are not square; the errors of
/// [`rank_collapse`] and of the SVD.
///
/// # Examples
///
/// ```
/// use attention_svd::collapse::collapse_across_layers;
/// use attention_svd::svd::Backend;
/// use attention_svd::Stack;
///
/// // Two layers of uniform attention: collapsed from depth 1 on.
/// let s = Stack::new([2, 1, 3, 3], vec![1.0_f64 / 3.0; 18]).unwrap();
/// let c = collapse_across_layers(&s, Backend::Auto).unwrap();
/// assert!(c[1].per_head[0].residual_relative < 1e-15);
/// ```
pub fn collapse_across_layers<T: Scalar>(
    stack: &Stack<T>,
    backend: Backend,
) -> Result<Vec<DepthCollapse>> {
    let [_, h, n, m] = stack.shape();
    if n != m {
        return Err(Error::NotSquare { rows: n, cols: m });
    }
    let rollouts = rollout(stack)?;
    let mut products: Vec<DMatrix<T>> = (0..h).map(|_| DMatrix::identity(n, n)).collect();
    let mut avg_product = DMatrix::<T>::identity(n, n);
    let mut out = Vec::with_capacity(rollouts.len());
    for (layer, r_l) in rollouts.iter().enumerate() {
        let mut per_head = Vec::with_capacity(h);
        for (t, p) in products.iter_mut().enumerate() {
            *p = stack.matrix(layer, t)? * &*p;
            per_head.push(rank_collapse(p, backend)?);
        }
        avg_product = head_average(stack, layer)? * avg_product;
        let erank = |a: &DMatrix<T>| -> Result<f64> {
            let s = singular_values(a, backend)?;
            Ok(crate::metrics::effective_rank(&s)?.to_f64())
        };
        out.push(DepthCollapse {
            depth: layer + 1,
            per_head,
            head_average: rank_collapse(&avg_product, backend)?,
            rollout: rank_collapse(r_l, backend)?,
            rollout_effective_rank: erank(r_l)?,
            head_average_effective_rank: erank(&avg_product)?,
        });
    }
    Ok(out)
}
