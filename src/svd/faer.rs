//! The faer backend: Householder bidiagonalisation, then with vectors
//! faer's divide-and-conquer bidiagonal SVD, and values only the crate's
//! dqds on the bidiagonal ([`dqds`](super::dqds), relatively accurate,
//! `docs/THEORY.md` T22); for inputs more than 11/6 times as tall as wide, a
//! QR factorisation first. This is the scheme of LAPACK's `dgesdd`
//! (whose values-only path also ends in dqds, `dlasq1`), and on this crate's
//! measurements it runs at LAPACK speed (`docs/PERFORMANCE.md`).
//!
//! The input is viewed in place (a `DMatrix` and a faer `MatRef` share the
//! column-major layout), and U is written straight into the result's buffer;
//! only V, which faer returns untransposed, is copied once into Vᵀ. faer runs
//! single-threaded here ([`Par::Seq`]): the crate's parallelism is across
//! heads (`analysis`), and nested thread pools would only compete.
//!
//! The call goes through [`faer_call`](crate::simd::faer_call), which
//! clears the vector state faer leaves dirty.
//!
//! faer bounds its own iteration count (max(30, bits/2)·k² QR steps) and
//! reports only that it stopped: [`Error::NoConvergence`] then carries the
//! cap and no iteration count. The result goes through the crate's gate
//! like the other backends' results.
//!
//! Complexity: O(n·m·min(n, m)).

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::svd::{self as fsvd, ComputeSvdVectors};
use faer::{MatMut, MatRef, Par};
use nalgebra::DMatrix;

use super::dqds::DqdsError;
use super::{Method, Raw};
use crate::num::scale::scale_back;
use crate::view::MatrixRef;
use crate::{Error, Result, Scalar};

/// SVD of a non-empty, finite matrix through faer.
pub(crate) fn svd<T: Scalar>(a: &MatrixRef<'_, T>, vectors: bool) -> Result<Raw<T>> {
    // faer 0.24 loses accuracy when max|a| is near the underflow threshold
    // and does not converge near overflow (`docs/ACCURACY.md`); such inputs
    // are divided by max|a| first, and σ multiplied back at the end.
    let amax = a.amax();
    let (lo, hi) = safe_range::<T>();
    if amax == T::zero() || (amax >= lo && amax <= hi) {
        return match crate::num::dense::faer_ref(a) {
            Some(view) => svd_unscaled(view, vectors),
            None => {
                let copy = a.to_dmatrix();
                let (n, m) = copy.shape();
                svd_unscaled(
                    MatRef::from_column_major_slice(copy.as_slice(), n, m),
                    vectors,
                )
            }
        };
    }
    let scaled = a.map(|x| x / amax);
    let (n, m) = scaled.shape();
    let mut raw = svd_unscaled(
        MatRef::from_column_major_slice(scaled.as_slice(), n, m),
        vectors,
    )?;
    scale_back(&mut raw.sigma, &[amax])?;
    Ok(raw)
}

/// The range of max|a| that faer is given unscaled:
/// [√MIN_POSITIVE/ε, √MAX·ε] (about [7e-139, 3e138] in f64, [9e-13, 2e12] in
/// f32), which leaves every attention matrix (entries in [0, 1]) in place.
fn safe_range<T: Scalar>() -> (T, T) {
    (
        T::MIN_POSITIVE.sqrt() / T::EPSILON,
        T::MAX.sqrt() * T::EPSILON,
    )
}

/// Inputs taller than this ratio (rows/columns, after transposing wide
/// ones) are QR-factorised before the values-only bidiagonalisation
/// (LAPACK's and faer's crossover).
const QR_RATIO: f64 = 11.0 / 6.0;

/// Singular values only: faer's bidiagonalisation (of R for tall inputs),
/// then dqds in f64 (f32 bidiagonals are widened exactly and the values
/// rounded back).
fn values_unscaled<T: Scalar>(view: MatRef<'_, T>) -> Result<Raw<T>> {
    use faer::linalg::qr::no_pivoting::factor as qr;
    use faer::linalg::svd::bidiag;
    let a = if view.nrows() < view.ncols() {
        view.transpose()
    } else {
        view
    };
    let (m, n) = a.shape();
    let mut work: faer::Mat<T> = if m as f64 > QR_RATIO * n as f64 {
        let mut factors = a.to_owned();
        let bs = qr::recommended_block_size::<T>(m, n);
        let mut coeff = faer::Mat::<T>::zeros(bs, n);
        let mut buf = MemBuffer::new(qr::qr_in_place_scratch::<T>(
            m,
            n,
            bs,
            Par::Seq,
            Default::default(),
        ));
        crate::simd::faer_call(|| {
            qr::qr_in_place(
                factors.as_mut(),
                coeff.as_mut(),
                Par::Seq,
                MemStack::new(&mut buf),
                Default::default(),
            )
        });
        faer::Mat::from_fn(
            n,
            n,
            |i, j| if i <= j { factors[(i, j)] } else { T::zero() },
        )
    } else {
        a.to_owned()
    };
    let rows = work.nrows();
    // Block size 1 for the Householder factors: only vectors would need the
    // blocked T factors (measured 1–16 % faster, `docs/PERFORMANCE.md`).
    let mut hl = faer::Mat::<T>::zeros(1, n);
    let mut hr = faer::Mat::<T>::zeros(1, n.saturating_sub(1));
    let mut buf = MemBuffer::new(bidiag::bidiag_in_place_scratch::<T>(
        rows,
        n,
        Par::Seq,
        Default::default(),
    ));
    crate::simd::faer_call(|| {
        bidiag::bidiag_in_place(
            work.as_mut(),
            hl.as_mut(),
            hr.as_mut(),
            Par::Seq,
            MemStack::new(&mut buf),
            Default::default(),
        )
    });
    let mut d: Vec<f64> = (0..n).map(|i| work[(i, i)].to_f64()).collect();
    let e: Vec<f64> = (0..n.saturating_sub(1))
        .map(|i| work[(i, i + 1)].to_f64())
        .collect();
    let mut scratch = Vec::new();
    match super::dqds::bidiagonal_singular_values_with_work(&mut d, &e, &mut scratch) {
        Ok(_) => {}
        Err(DqdsError::NoConvergence {
            iterations,
            max_iterations,
            ..
        }) => {
            return Err(Error::NoConvergence {
                method: Method::Faer,
                iterations: Some(iterations),
                max_iterations,
                off_diagonal: None,
            });
        }
        Err(DqdsError::Overflow) => {
            return Err(Error::Overflow {
                what: "singular value",
            });
        }
        Err(DqdsError::NonFinite { .. } | DqdsError::Length { .. }) => {
            return Err(Error::Breakdown {
                method: Method::Faer,
                reason: "non-finite bidiagonal",
            });
        }
    }
    let mut sigma = Vec::with_capacity(n);
    for x in d {
        sigma.push(
            crate::scalar::convert::<f64, T>(x, "singular value").map_err(|_| Error::Overflow {
                what: "singular value",
            })?,
        );
    }
    Ok(Raw {
        u: None,
        sigma,
        v_t: None,
    })
}

fn svd_unscaled<T: Scalar>(view: MatRef<'_, T>, vectors: bool) -> Result<Raw<T>> {
    if !vectors {
        return values_unscaled(view);
    }
    let (n, m) = (view.nrows(), view.ncols());
    let k = n.min(m);
    let want = if vectors {
        ComputeSvdVectors::Thin
    } else {
        ComputeSvdVectors::No
    };
    let mut scratch = MemBuffer::new(fsvd::svd_scratch::<T>(
        n,
        m,
        want,
        want,
        Par::Seq,
        Default::default(),
    ));
    let mut s = Diag::<T>::zeros(k);
    let mut u = vectors.then(|| DMatrix::<T>::zeros(n, k));
    let mut v = vectors.then(|| DMatrix::<T>::zeros(m, k));
    let outcome = crate::simd::faer_call(|| {
        fsvd::svd(
            view,
            s.as_mut(),
            u.as_mut()
                .map(|u| MatMut::from_column_major_slice_mut(u.as_mut_slice(), n, k)),
            v.as_mut()
                .map(|v| MatMut::from_column_major_slice_mut(v.as_mut_slice(), m, k)),
            Par::Seq,
            MemStack::new(&mut scratch),
            Default::default(),
        )
    });
    if outcome.is_err() {
        return Err(Error::NoConvergence {
            method: Method::Faer,
            iterations: None,
            max_iterations: faer_iteration_cap::<T>(k),
            off_diagonal: None,
        });
    }
    Ok(Raw {
        sigma: s.column_vector().iter().copied().collect(),
        u,
        v_t: v.map(|v| v.transpose()),
    })
}

/// faer's bound on the implicit-shift QR steps for k values of type `T`
/// (`faer::linalg::svd::bidiag_svd`): max(30, bits/2)·k².
fn faer_iteration_cap<T: Scalar>(k: usize) -> usize {
    ((T::MANTISSA_DIGITS / 2) as usize)
        .max(30)
        .saturating_mul(k)
        .saturating_mul(k)
}
