//! Attention masks: which keys each query may attend to, plus additive biases.

use nalgebra::DMatrix;

use crate::{Error, Result, Scalar};

/// A combination of attention masks and an additive bias.
///
/// For `n` queries and `m` keys, a mask decides for each (query i, key j)
/// whether the logit is kept or replaced by −∞ (weight exactly 0), and may
/// add a bias `b_ij` to the kept logits:
///
/// ```text
/// z_ij = s·q_i·k_j + b_ij   if (i, j) is allowed
/// z_ij = −∞                 otherwise
/// ```
///
/// Parts combine with [`Mask::and`]: a pair is allowed when *every* part allows
/// it, and biases add. The parts are:
///
/// | constructor | allows key j for query i when |
/// |---|---|
/// | [`Mask::none`] | always |
/// | [`Mask::causal`] | j ≤ i + (m − n) |
/// | [`Mask::sliding_window`]`(w)` | i + (m − n) − w < j ≤ i + (m − n) |
/// | [`Mask::key_padding`]`(valid)` | `valid[j]` |
/// | [`Mask::from_bool`]`(allowed)` | `allowed[(i, j)]` |
/// | [`Mask::bias`]`(b)` | `b[(i, j)] ≠ −∞` (and adds `b[(i, j)]`) |
///
/// The offset m − n aligns the *last* query with the *last* key, so a block
/// of n new queries against a longer key cache of length m (incremental
/// decoding) is masked as the bottom n rows of the full m×m causal mask.
/// With n = m it is the usual lower-triangular mask.
///
/// Shapes are checked when the mask is applied: the key-padding vector must
/// have length m, boolean masks and biases must be n×m. A bias may hold −∞
/// (a masked entry) but not NaN or +∞.
///
/// # Examples
///
/// ```
/// use attention_svd::attention::Mask;
///
/// // Causal attention over a padded batch entry whose last key is padding.
/// let mask = Mask::<f64>::causal().and(Mask::key_padding(vec![true, true, false]));
/// let allowed = mask.to_bool(3, 3).unwrap();
/// assert!(allowed[(1, 0)] && allowed[(1, 1)]);
/// assert!(!allowed[(0, 1)]); // the future
/// assert!(!allowed[(2, 2)]); // padding
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Mask<T> {
    causal: bool,
    window: Option<usize>,
    key_valid: Vec<Vec<bool>>,
    allowed: Vec<DMatrix<bool>>,
    bias: Vec<DMatrix<T>>,
}

impl<T: Scalar> Default for Mask<T> {
    fn default() -> Self {
        Self::none()
    }
}

impl<T: Scalar> Mask<T> {
    /// No mask: every query attends to every key.
    ///
    /// ```
    /// # use attention_svd::attention::Mask;
    /// assert!(Mask::<f64>::none().to_bool(2, 3).unwrap().iter().all(|&x| x));
    /// ```
    pub fn none() -> Self {
        Mask {
            causal: false,
            window: None,
            key_valid: Vec::new(),
            allowed: Vec::new(),
            bias: Vec::new(),
        }
    }

    /// Causal mask: query i attends to key j when j ≤ i + (m − n).
    ///
    /// ```
    /// # use attention_svd::attention::Mask;
    /// // Two new queries against four cached keys: positions 2 and 3.
    /// let b = Mask::<f32>::causal().to_bool(2, 4).unwrap();
    /// assert_eq!(b.row(0).iter().filter(|&&x| x).count(), 3);
    /// assert!(b.row(1).iter().all(|&x| x));
    /// ```
    pub fn causal() -> Self {
        Mask {
            causal: true,
            ..Self::none()
        }
    }

    /// Causal sliding window of `width` keys: query i attends to the `width`
    /// most recent keys up to and including its own position,
    /// i + (m − n) − width < j ≤ i + (m − n).
    ///
    /// A width of 0 is rejected with [`Error::InvalidParameter`] when the mask
    /// is applied.
    ///
    /// ```
    /// # use attention_svd::attention::Mask;
    /// let b = Mask::<f64>::sliding_window(2).to_bool(4, 4).unwrap();
    /// assert_eq!((b[(3, 1)], b[(3, 2)], b[(3, 3)]), (false, true, true));
    /// ```
    pub fn sliding_window(width: usize) -> Self {
        Mask {
            causal: true,
            window: Some(width),
            ..Self::none()
        }
    }

    /// Key padding: key j is attended to only when `valid[j]` is `true`.
    ///
    /// ```
    /// # use attention_svd::attention::Mask;
    /// let b = Mask::<f64>::key_padding(vec![true, false]).to_bool(3, 2).unwrap();
    /// assert!(b.column(0).iter().all(|&x| x) && !b.column(1).iter().any(|&x| x));
    /// ```
    pub fn key_padding(valid: Vec<bool>) -> Self {
        Mask {
            key_valid: vec![valid],
            ..Self::none()
        }
    }

    /// An arbitrary n×m boolean mask: `true` marks an allowed (query, key) pair.
    ///
    /// ```
    /// # use attention_svd::attention::Mask;
    /// # use nalgebra::dmatrix;
    /// let allowed = dmatrix![true, false; true, true];
    /// assert_eq!(Mask::<f32>::from_bool(allowed.clone()).to_bool(2, 2).unwrap(), allowed);
    /// ```
    pub fn from_bool(allowed: DMatrix<bool>) -> Self {
        Mask {
            allowed: vec![allowed],
            ..Self::none()
        }
    }

    /// An additive n×m bias on the logits (ALiBi, relative-position biases,
    /// or a float mask with −∞ entries as PyTorch's `attn_mask`).
    ///
    /// ```
    /// # use attention_svd::attention::{softmax_rows, Mask};
    /// # use nalgebra::dmatrix;
    /// let bias = dmatrix![0.0_f64, 2f64.ln()];
    /// let a = softmax_rows(&dmatrix![0.0, 0.0], &Mask::bias(bias)).unwrap();
    /// assert!((a[(0, 1)] - 2.0 / 3.0).abs() < 1e-15);
    /// ```
    pub fn bias(bias: DMatrix<T>) -> Self {
        Mask {
            bias: vec![bias],
            ..Self::none()
        }
    }

    /// Both masks at once: a pair is allowed when both allow it; biases add;
    /// of two sliding windows the narrower wins. Shapes are checked when the
    /// combined mask is applied.
    ///
    /// ```
    /// # use attention_svd::attention::Mask;
    /// let m = Mask::<f64>::causal().and(Mask::key_padding(vec![false, true, true]));
    /// let b = m.to_bool(3, 3).unwrap();
    /// assert!(!b[(2, 0)] && b[(2, 1)] && !b[(1, 2)]);
    /// ```
    pub fn and(mut self, other: Mask<T>) -> Self {
        self.window = match (self.window, other.window) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.causal |= other.causal;
        self.key_valid.extend(other.key_valid);
        self.allowed.extend(other.allowed);
        self.bias.extend(other.bias);
        self
    }

    /// `true` if the mask has no part at all (every pair allowed, no bias).
    ///
    /// ```
    /// # use attention_svd::attention::Mask;
    /// assert!(Mask::<f64>::none().is_none() && !Mask::<f64>::causal().is_none());
    /// ```
    pub fn is_none(&self) -> bool {
        !self.causal && self.key_valid.is_empty() && self.allowed.is_empty() && self.bias.is_empty()
    }

    /// `true` if the mask includes a causal (or sliding-window) part.
    ///
    /// ```
    /// # use attention_svd::attention::Mask;
    /// assert!(Mask::<f32>::sliding_window(8).is_causal());
    /// ```
    pub fn is_causal(&self) -> bool {
        self.causal
    }

    /// The mask as an n×m boolean matrix (`true` = allowed), with bias
    /// entries of −∞ counted as masked.
    ///
    /// # Errors
    ///
    /// The shape and parameter errors of applying the mask to n queries and
    /// m keys (see [`Mask`]); [`Error::InvalidParameter`] if n·m overflows
    /// or the n×m matrix cannot be allocated.
    pub fn to_bool(&self, n: usize, m: usize) -> Result<DMatrix<bool>> {
        let Some(len) = n.checked_mul(m) else {
            return Err(Error::InvalidParameter {
                name: "shape",
                reason: "n·m overflows usize",
            });
        };
        let r = self.resolve(n, m)?;
        // The n·m booleans are asked for by the caller, not implied by any
        // input: an allocation that cannot be made is an error, not an abort.
        let mut data: Vec<bool> = Vec::new();
        if data.try_reserve_exact(len).is_err() {
            return Err(Error::InvalidParameter {
                name: "shape",
                reason: "the n×m boolean mask does not fit in memory",
            });
        }
        for j in 0..m {
            data.extend((0..n).map(|i| {
                r.allows(i, j) && r.bias.as_ref().is_none_or(|b| b[(i, j)] != T::NEG_INFINITY)
            }));
        }
        Ok(DMatrix::from_vec(n, m, data))
    }

    /// Checks every part against n queries and m keys and merges them.
    pub(crate) fn resolve(&self, n: usize, m: usize) -> Result<Resolved<T>> {
        if self.window == Some(0) {
            return Err(Error::InvalidParameter {
                name: "window",
                reason: "a sliding window must hold at least one key",
            });
        }
        let mut key_valid: Option<Vec<bool>> = None;
        for v in &self.key_valid {
            if v.len() != m {
                return Err(Error::ShapeMismatch {
                    what: "key padding mask",
                    expected: (1, m),
                    found: (1, v.len()),
                });
            }
            key_valid = Some(match key_valid {
                None => v.clone(),
                Some(k) => k.iter().zip(v).map(|(&a, &b)| a && b).collect(),
            });
        }
        let mut allowed: Option<DMatrix<bool>> = None;
        for a in &self.allowed {
            if a.shape() != (n, m) {
                return Err(Error::ShapeMismatch {
                    what: "boolean mask",
                    expected: (n, m),
                    found: a.shape(),
                });
            }
            allowed = Some(match allowed {
                None => a.clone(),
                Some(k) => k.zip_map(a, |x, y| x && y),
            });
        }
        let mut bias: Option<DMatrix<T>> = None;
        for b in &self.bias {
            if b.shape() != (n, m) {
                return Err(Error::ShapeMismatch {
                    what: "bias",
                    expected: (n, m),
                    found: b.shape(),
                });
            }
            for i in 0..n {
                for j in 0..m {
                    let x = b[(i, j)];
                    if x.is_nan_value() || x == T::INFINITY {
                        return Err(Error::NonFinite {
                            what: "bias",
                            row: i,
                            col: j,
                        });
                    }
                }
            }
            bias = Some(match bias {
                None => b.clone(),
                Some(k) => {
                    let sum = &k + b;
                    // ±∞ from two finite terms is an overflow (the rule for
                    // a logit plus its bias), not a mask: only a −∞ term masks.
                    let overflowed = sum
                        .iter()
                        .zip(k.iter().zip(b.iter()))
                        .any(|(s, (x, y))| !s.finite() && x.finite() && y.finite());
                    if overflowed {
                        return Err(Error::Overflow {
                            what: "sum of biases",
                        });
                    }
                    sum
                }
            });
        }
        Ok(Resolved {
            n,
            m,
            causal: self.causal,
            window: self.window,
            key_valid,
            allowed,
            bias,
        })
    }
}

/// A mask checked against a shape, its parts merged.
#[derive(Debug)]
pub(crate) struct Resolved<T> {
    n: usize,
    m: usize,
    causal: bool,
    window: Option<usize>,
    key_valid: Option<Vec<bool>>,
    allowed: Option<DMatrix<bool>>,
    pub(crate) bias: Option<DMatrix<T>>,
}

impl<T> Resolved<T> {
    /// The keys allowed by the causal and window parts for query i, as
    /// `lo..hi` (possibly empty).
    #[inline]
    pub(crate) fn key_range(&self, i: usize) -> std::ops::Range<usize> {
        if !self.causal {
            return 0..self.m;
        }
        // One past the last allowed key, p + 1 = i + m − n + 1, without underflow.
        let hi = (i + self.m + 1).saturating_sub(self.n).min(self.m);
        let lo = match self.window {
            Some(w) => hi.saturating_sub(w),
            None => 0,
        };
        lo..hi
    }

    /// Whether (i, j) is allowed by the boolean parts (the bias aside).
    #[inline]
    pub(crate) fn allows(&self, i: usize, j: usize) -> bool {
        self.key_range(i).contains(&j)
            && self.key_valid.as_ref().is_none_or(|v| v[j])
            && self.allowed.as_ref().is_none_or(|a| a[(i, j)])
    }

    /// Whether the mask has boolean parts beyond the causal range.
    #[inline]
    pub(crate) fn has_pointwise(&self) -> bool {
        self.key_valid.is_some() || self.allowed.is_some()
    }
}
