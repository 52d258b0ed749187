//! The fused masked softmax: logits, mask, row maxima, exponentials and
//! normalisation per block of query rows in cache, written straight into the
//! result (the algorithm of the [`attention`](super) module docs).

use std::borrow::Cow;

use super::mask::Resolved;
use crate::view::MatrixRef;
use crate::{Error, Scalar};

/// Why [`fused_softmax`] stopped early.
pub(super) enum Stop {
    /// A block of the product s·QKᵀ is not finite.
    Overflow,
    /// A mask error (bias overflow or a fully masked row).
    Mask(Error),
}

/// Target size of the block buffer of b rows of the (allowed part of the)
/// logits, kept in the per-core cache between the passes of the softmax.
const BLOCK_BYTES: usize = 1 << 20;

/// Rows per block: a multiple of 8 in [128, 512] (at most n) with
/// b·m·size_of::<T>() ≈ [`BLOCK_BYTES`] where that allows. The floor of
/// 128 rows matters more than the cache at large m: each column of a block
/// is written to the column-major result as one contiguous run of b
/// entries, every run on another page once n·size_of::<T>() ≥ 4 KB, and
/// runs of 32 or 64 entries (what the 1 MB buffer alone gives at m = 4096)
/// left the unmasked n = 4096 softmax markedly slower (`docs/PERFORMANCE.md`,
/// runs of `cargo run --release --example perf -- --only softmax`). A
/// larger buffer for every m was measured too: it made the causal softmax
/// at n = 1024 slower (a block skips only the keys above its last row). The
/// buffer never holds more entries than the result (b ≤ n).
fn block_rows<T>(n: usize, m: usize) -> usize {
    let b = BLOCK_BYTES / (m * std::mem::size_of::<T>()).max(1);
    (b.clamp(128, 512) / 8 * 8).min(n)
}

/// The fused masked softmax of the module docs, by blocks of b consecutive
/// rows, into `out` (n·m entries, column-major). `fill(i0, b, jlo, z)`
/// writes the logits of rows i0..i0+b and columns jlo..jlo+w, column by
/// column (entry (r, j) at `z[j·b + r]`, w = z.len()/b), and returns
/// `false` if they overflowed. Keys outside the causal/window range of
/// every row of the block are never computed: their weights are exactly 0,
/// written here unless `out` is `zeroed` already (a fresh zeroed
/// allocation); every other entry is written.
pub(super) fn fused_softmax<T: Scalar>(
    n: usize,
    m: usize,
    mask: &Resolved<T>,
    mut fill: impl FnMut(usize, usize, usize, &mut [T]) -> bool,
    out: &mut [T],
    zeroed: bool,
) -> std::result::Result<(), Stop> {
    debug_assert_eq!(out.len(), n * m);
    let bmax = block_rows::<T>(n, m);
    let mut buf = vec![T::zero(); bmax * m];
    let mut max = vec![T::zero(); bmax];
    let mut sum = vec![T::zero(); bmax];
    let mut overflow = vec![false; bmax];
    let pointwise = mask.has_pointwise();
    for i0 in (0..n).step_by(bmax) {
        let b = bmax.min(n - i0);
        // The ends of the causal/window range grow with the row.
        let jlo = mask.key_range(i0).start;
        let jhi = mask.key_range(i0 + b - 1).end;
        if jhi <= jlo {
            return Err(Stop::Mask(Error::FullyMaskedRow { row: i0 }));
        }
        let z = &mut buf[..b * (jhi - jlo)];
        if !fill(i0, b, jlo, z) {
            return Err(Stop::Overflow);
        }
        // Pass 1a: −∞ outside each row's causal/window range (O(b²) entries).
        for r in 0..b {
            let range = mask.key_range(i0 + r);
            let s = range.start.clamp(jlo, jhi);
            let e = range.end.clamp(s, jhi);
            for j in (jlo..s).chain(e..jhi) {
                z[(j - jlo) * b + r] = T::NEG_INFINITY;
            }
        }
        // Pass 1b: boolean masks and bias, column by column.
        let overflow = &mut overflow[..b];
        overflow.fill(false);
        if pointwise || mask.bias.is_some() {
            for (j, col) in (jlo..).zip(z.chunks_exact_mut(b)) {
                for (r, zr) in col.iter_mut().enumerate() {
                    if *zr == T::NEG_INFINITY || overflow[r] {
                        continue;
                    }
                    let i = i0 + r;
                    if pointwise && !mask.allows(i, j) {
                        *zr = T::NEG_INFINITY;
                        continue;
                    }
                    if let Some(bias) = &mask.bias {
                        let (logit, bij) = (*zr, bias[(i, j)]);
                        *zr += bij;
                        // +∞, or −∞ from two finite terms, is an overflow, not a mask.
                        if *zr == T::INFINITY || (!zr.finite() && logit.finite() && bij.finite()) {
                            overflow[r] = true;
                        }
                    }
                }
            }
        }
        // Pass 1c: row maxima; errors in row order.
        let (max, sum) = (&mut max[..b], &mut sum[..b]);
        T::row_max(z, max);
        for r in 0..b {
            if overflow[r] {
                return Err(Stop::Mask(Error::Overflow {
                    what: "logit plus bias",
                }));
            }
            if max[r] == T::NEG_INFINITY {
                return Err(Stop::Mask(Error::FullyMaskedRow { row: i0 + r }));
            }
        }
        // Pass 2: exponentiate relative to the maximum (every term ≤ 1,
        // the maximum's exactly 1) and sum.
        T::exp_sum(z, max, sum);
        // Pass 3: normalise into the output rows; sum ≥ 1.
        T::normalise_into(z, sum, &mut out[jlo * n + i0..], n);
        if !zeroed {
            for j in (0..jlo).chain(jhi..m) {
                out[j * n + i0..j * n + i0 + b].fill(T::zero());
            }
        }
    }
    Ok(())
}

/// s·Q·Kᵀ by blocks of rows, from the inputs or from copies scaled to
/// max-abs 1 (with the combined factor applied afterwards).
pub(super) struct Product<'a, T: Scalar> {
    q: Cow<'a, MatrixRef<'a, T>>,
    #[cfg(feature = "faer")]
    k: Cow<'a, MatrixRef<'a, T>>,
    /// Kᵀ for nalgebra's `gemm`, which takes no transposed operand.
    #[cfg(not(feature = "faer"))]
    kt: nalgebra::DMatrix<T>,
    alpha: T,
    post: [T; 2],
    pub(super) rescaled: bool,
}

/// A view faer can read without copying (one unit stride), or a copy.
fn unit_strided<'a, T: Scalar>(a: &'a MatrixRef<'a, T>) -> Cow<'a, MatrixRef<'a, T>> {
    if a.unit_strided().is_some() {
        Cow::Borrowed(a)
    } else {
        Cow::Owned(MatrixRef::owned(a.to_dmatrix()))
    }
}

impl<'a, T: Scalar> Product<'a, T> {
    fn new(
        q: Cow<'a, MatrixRef<'a, T>>,
        k: Cow<'a, MatrixRef<'a, T>>,
        alpha: T,
        post: [T; 2],
        rescaled: bool,
    ) -> Self {
        Product {
            #[cfg(not(feature = "faer"))]
            kt: k.as_nalgebra().transpose(),
            q,
            #[cfg(feature = "faer")]
            k,
            alpha,
            post,
            rescaled,
        }
    }

    pub(super) fn direct(q: &'a MatrixRef<'a, T>, k: &'a MatrixRef<'a, T>, scale: T) -> Self {
        Self::new(
            unit_strided(q),
            unit_strided(k),
            scale,
            [T::one(), T::one()],
            false,
        )
    }

    pub(super) fn rescaled(q: &MatrixRef<'_, T>, k: &MatrixRef<'_, T>, scale: T) -> Self {
        let aq = q.amax();
        let ak = k.amax();
        let factor = scale * aq * ak;
        let (alpha, post) = if factor.finite() {
            (factor, [T::one(), T::one()])
        } else {
            (scale, [aq, ak])
        };
        let scaled = |a: &MatrixRef<'_, T>, by: T| Cow::Owned(MatrixRef::owned(a.map(|x| x / by)));
        Self::new(scaled(q, aq), scaled(k, ak), alpha, post, true)
    }

    /// Writes rows i0..i0+b, columns jlo..jlo+w of the logits into `z`
    /// (b×w, column-major); `false` if any is not finite.
    pub(super) fn fill(&self, i0: usize, b: usize, jlo: usize, z: &mut [T]) -> bool {
        let w = z.len() / b;
        #[cfg(feature = "faer")]
        {
            use crate::num::dense::faer_ref;
            let lhs = faer_ref(&self.q).expect("unit stride").subrows(i0, b);
            let rhs = faer_ref(&self.k)
                .expect("unit stride")
                .subrows(jlo, w)
                .transpose();
            let dst = faer::MatMut::from_column_major_slice_mut(z, b, w);
            crate::simd::faer_call(|| {
                faer::linalg::matmul::matmul(
                    dst,
                    faer::Accum::Replace,
                    lhs,
                    rhs,
                    self.alpha,
                    faer::Par::Seq,
                )
            });
        }
        #[cfg(not(feature = "faer"))]
        {
            let mut dst = nalgebra::DMatrixViewMut::from_slice(z, b, w);
            dst.gemm(
                self.alpha,
                &self.q.as_nalgebra().rows(i0, b),
                &self.kt.columns(jlo, w),
                T::zero(),
            );
        }
        for p in self.post {
            if p != T::one() {
                T::scale_block(z, p);
            }
        }
        T::all_finite(z)
    }
}
