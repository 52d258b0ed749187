//! Householder QR without rank deflation, blocked (compact WY), in `f64`.
//!
//! For an r×c matrix A (r ≥ c), column j's reflector H_j = I − τ_j·v_j·v_jᵀ
//! (v_j with a unit entry j and zeros above) maps the remainder x of column
//! j to β·e_j, β = −sign(x₀)·‖x‖, τ = (β − x₀)/β (LAPACK's `dlarfg`);
//! A = H₀·H₁·…·H_{c−1}·[R; 0]. Every column is reduced, however small its
//! remainder: the backward error is that of Householder QR, O(r·ε) per
//! column relative to the column's norm (Higham 2002, Thm 19.4), which the
//! Jacobi SVD's relative accuracy rests on. (faer's QR instead leaves a
//! column unreduced when its remainder is below 16·(r − j)·ε of its norm.)
//!
//! Columns are factored in panels of [`PANEL`]: the reflectors of a panel
//! are applied to its own columns one by one (level 2), then to all later
//! columns at once as I − V·T·Vᵀ, T upper triangular (Schreiber & Van Loan
//! 1989; LAPACK's `dlarft` and `dlarfb`), with three matrix products
//! (level 3, faer's kernels with the feature). O(2·r·c² − 2c³/3) flops.

use nalgebra::DMatrix;

use crate::num::dense::product_into;
use crate::view::MatrixRef;

/// Columns per panel.
const PANEL: usize = 32;

/// The factored form: R on and above the diagonal of `a`, the reflectors'
/// vectors below it, and per panel its V (explicit, unit lower
/// trapezoidal) and T.
pub(super) struct BlockedQr {
    a: DMatrix<f64>,
    panels: Vec<Panel>,
}

struct Panel {
    /// First column (and row) of the panel.
    start: usize,
    /// V: (r − start)×w, unit entries on its diagonal, zeros above.
    v: DMatrix<f64>,
    /// T: w×w upper triangular, with H_start·…·H_{start+w−1} = I − V·T·Vᵀ.
    t: DMatrix<f64>,
}

/// dst ← op(A)·B for whole matrices (`transpose_a`: Aᵀ·B).
fn mul(a: &DMatrix<f64>, transpose_a: bool, b: &DMatrix<f64>) -> DMatrix<f64> {
    let rows = if transpose_a { a.ncols() } else { a.nrows() };
    let mut out = DMatrix::<f64>::zeros(rows, b.ncols());
    fn view(m: &DMatrix<f64>) -> MatrixRef<'_, f64> {
        MatrixRef::from_column_major_slice(m.as_slice(), m.nrows(), m.ncols())
            .expect("a matrix fits its data")
    }
    product_into(
        out.as_mut_slice(),
        (rows, b.ncols()),
        1.0,
        &view(a),
        transpose_a,
        &view(b),
    );
    out
}

impl BlockedQr {
    /// Factors `a` (r×c, r ≥ c ≥ 1), consuming it.
    pub(super) fn new(mut a: DMatrix<f64>) -> Self {
        let (r, c) = a.shape();
        debug_assert!(r >= c && c >= 1);
        let mut panels = Vec::new();
        let mut tau = vec![0.0f64; c];
        for start in (0..c).step_by(PANEL) {
            let w = PANEL.min(c - start);
            // Level 2: the panel's own columns.
            for j in start..start + w {
                tau[j] = reflect_column(&mut a, j);
                let (v_tail, rest) = {
                    let data = a.as_mut_slice();
                    let (head, rest) = data.split_at_mut((j + 1) * r);
                    (&head[j * r + j + 1..(j + 1) * r], rest)
                };
                for col in rest.chunks_exact_mut(r).take(start + w - j - 1) {
                    apply_reflector(v_tail, tau[j], &mut col[j..]);
                }
            }
            // V explicit and T (forward, column by column).
            let rows = r - start;
            let v = DMatrix::from_fn(rows, w, |i, k| match i.cmp(&k) {
                std::cmp::Ordering::Less => 0.0,
                std::cmp::Ordering::Equal => 1.0,
                std::cmp::Ordering::Greater => a[(start + i, start + k)],
            });
            let mut t = DMatrix::<f64>::zeros(w, w);
            for k in 0..w {
                let tk = tau[start + k];
                t[(k, k)] = tk;
                if k > 0 && tk != 0.0 {
                    // z = −τ_k·V[:, ..k]ᵀ·v_k, then T[..k, k] = T[..k, ..k]·z.
                    let vk = v.column(k);
                    let z: Vec<f64> = (0..k)
                        .map(|p| -tk * v.column(p).rows(k, rows - k).dot(&vk.rows(k, rows - k)))
                        .collect();
                    for p in 0..k {
                        t[(p, k)] = (p..k).map(|q| t[(p, q)] * z[q]).sum();
                    }
                }
            }
            // Level 3: the later columns, C ← (I − V·T·Vᵀ)ᵀ·C = C − V·Tᵀ·(Vᵀ·C).
            let after = start + w;
            if after < c {
                let cmat = a.view((start, after), (rows, c - after)).into_owned();
                let vtc = mul(&v, true, &cmat);
                let tvtc = mul(&t, true, &vtc);
                let update = mul(&v, false, &tvtc);
                let mut dst = a.view_mut((start, after), (rows, c - after));
                dst -= update;
            }
            panels.push(Panel { start, v, t });
        }
        BlockedQr { a, panels }
    }

    /// The c×c upper triangular factor R.
    pub(super) fn r(&self) -> DMatrix<f64> {
        let c = self.a.ncols();
        DMatrix::from_fn(c, c, |i, j| if i <= j { self.a[(i, j)] } else { 0.0 })
    }

    /// Q·[m; 0]: `m` has c rows, the result r rows.
    pub(super) fn apply_q(&self, m: &DMatrix<f64>) -> DMatrix<f64> {
        let (r, c) = self.a.shape();
        debug_assert_eq!(m.nrows(), c);
        let mut out = DMatrix::<f64>::zeros(r, m.ncols());
        out.rows_mut(0, c).copy_from(m);
        // Q = H₀·…·H_{c−1}: the last panel's block reflector acts first.
        for p in self.panels.iter().rev() {
            let rows = r - p.start;
            let block = out.rows(p.start, rows).into_owned();
            let vtb = mul(&p.v, true, &block);
            let tvtb = mul(&p.t, false, &vtb);
            let update = mul(&p.v, false, &tvtb);
            let mut dst = out.rows_mut(p.start, rows);
            dst -= update;
        }
        out
    }
}

/// Replaces column j's remainder a[j.., j] by β·e_j and its entries below
/// the diagonal by the reflector's vector v[1..]; returns τ (0 when the
/// part below the diagonal is already zero: H = I).
fn reflect_column(a: &mut DMatrix<f64>, j: usize) -> f64 {
    let r = a.nrows();
    let col = &mut a.as_mut_slice()[j * r + j..(j + 1) * r];
    let (head, tail) = col.split_first_mut().expect("j < r");
    let tail_norm2: f64 = tail.iter().map(|x| x * x).sum();
    if tail_norm2 == 0.0 {
        return 0.0;
    }
    let alpha = *head;
    let norm = alpha.hypot(tail_norm2.sqrt());
    let beta = if alpha >= 0.0 { -norm } else { norm };
    let inv = 1.0 / (alpha - beta);
    for x in tail.iter_mut() {
        *x *= inv;
    }
    *head = beta;
    (beta - alpha) / beta
}

/// x ← (I − τ·v·vᵀ)·x with v = [1; v_tail] (x has 1 + v_tail.len() entries).
fn apply_reflector(v_tail: &[f64], tau: f64, x: &mut [f64]) {
    if tau == 0.0 {
        return;
    }
    let (x0, xt) = x.split_first_mut().expect("non-empty");
    let dot = *x0
        + v_tail
            .iter()
            .zip(xt.iter())
            .map(|(v, x)| v * x)
            .sum::<f64>();
    let k = tau * dot;
    *x0 -= k;
    for (x, v) in xt.iter_mut().zip(v_tail) {
        *x -= k * v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(r: usize, c: usize, a: DMatrix<f64>) {
        let qr = BlockedQr::new(a.clone());
        let rr = qr.r();
        for i in 0..c {
            for j in 0..i {
                assert_eq!(rr[(i, j)], 0.0);
            }
        }
        // A = Q·[R; 0] and QᵀQ = I (Q formed by applying it to I).
        let q = qr.apply_q(&DMatrix::identity(c, c));
        let tol = 64.0 * r as f64 * f64::EPSILON;
        // Column by column, relative to each column's norm: the backward
        // error the Jacobi SVD's relative accuracy needs (graded columns).
        let e = &q * &rr - &a;
        for j in 0..c {
            let res = e.column(j).norm() / a.column(j).norm().max(f64::MIN_POSITIVE);
            assert!(res <= tol, "{r}×{c}: residual of column {j} {res:e}");
        }
        let orth = (q.transpose() * &q - DMatrix::<f64>::identity(c, c)).norm();
        assert!(orth <= tol, "{r}×{c}: orthogonality {orth:e}");
    }

    /// Reconstruction (column by column, relative to the column) and
    /// orthogonality within a small multiple of r·ε, for
    /// one panel, several panels with a partial last one, tall inputs, a
    /// rank-deficient input (zero and repeated columns, which faer's QR
    /// deflates) and a graded one.
    #[test]
    fn factors_reconstruct_and_are_orthogonal() {
        let f = |i: usize, j: usize| (((i * 37 + j * 101) % 97) as f64 / 97.0 - 0.5) * 2.0;
        for (r, c) in [(1, 1), (5, 3), (31, 31), (70, 70), (150, 67), (100, 96)] {
            check(r, c, DMatrix::from_fn(r, c, f));
        }
        let deficient = DMatrix::from_fn(80, 80, |i, j| match j % 4 {
            0 => 0.0,
            1 => f(i, 1),
            _ => f(i, 1),
        });
        check(80, 80, deficient);
        // Column norms from 1 down to 1e-14.
        let graded = DMatrix::from_fn(90, 90, |i, j| f(i, j) * 10f64.powi(-(j as i32) / 6));
        check(90, 90, graded);
    }

    /// Every column is reduced: a column that differs from the one before
    /// by about 1e-13 of its norm, below faer's deflation threshold
    /// 16·(r − 1)·ε ≈ 1.4e-13 relative, keeps its remainder in R.
    #[test]
    fn tiny_remainders_are_kept() {
        let a = DMatrix::from_fn(40, 2, |i, j| {
            let x = (i as f64 * 0.3).sin();
            if j == 0 {
                x
            } else {
                x + 1e-13 * (i as f64 * 1.7).cos()
            }
        });
        let r = BlockedQr::new(a).r();
        // The remainder: 1e-13 times the part of the cosines orthogonal to
        // the sines (norm about 4), computed to about ε·‖column‖ ≈ 1e-15.
        assert!(
            r[(1, 1)].abs() > 1e-13 && r[(1, 1)].abs() < 1e-12,
            "{}",
            r[(1, 1)]
        );
    }
}
