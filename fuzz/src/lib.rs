//! Shared input decoding for the fuzz targets.
//!
//! Every target reads its input through an [`Unstructured`]: shapes are small
//! (0..=12, occasionally 13..=40) and floats come from a mix of a table of
//! special values (NaN, ±∞, −0.0, subnormals, ±1e300, ±MAX, …), raw bit
//! patterns reinterpreted as `f32`/`f64`, small "ordinary" values and values
//! of any magnitude. Running out of input yields zeros, so every input
//! decodes to something.
//!
//! Set `FUZZ_VERBOSE=1` when replaying an input
//! (`cargo fuzz run <target> <file>`) to print the decoded arguments as Rust
//! literals before the calls, ready to paste into a regression test.

use attention_svd::stochastic::StochasticParams;
use std::fmt::{Debug, Write as _};

use attention_svd::attention::Mask;
use attention_svd::svd::Backend;
use attention_svd::Scalar;
pub use libfuzzer_sys::arbitrary::Unstructured;
use nalgebra::DMatrix;

/// Defines the fuzz target of a binary as `run::<f64>` or `run::<f32>` on
/// the decoded input, the precision chosen by the input's first flag: the
/// one f32/f64 dispatch every target shares.
#[macro_export]
macro_rules! fuzz_both_precisions {
    ($run:ident) => {
        libfuzzer_sys::fuzz_target!(|data: &[u8]| {
            let mut u = $crate::Unstructured::new(data);
            if $crate::flag(&mut u) {
                $run::<f64>(&mut u);
            } else {
                $run::<f32>(&mut u);
            }
        });
    };
}

/// `f32` or `f64`, with the conversions the decoders need.
pub trait FuzzFloat: Scalar + Debug {
    /// The type's name in Rust source (`"f32"` / `"f64"`).
    const RUST: &'static str;
    /// Reinterprets raw bits (the low 32 bits for `f32`).
    fn from_raw(bits: u64) -> Self;
    /// The value's bits as a Rust expression, exact.
    fn literal(self) -> String;
}

impl FuzzFloat for f64 {
    const RUST: &'static str = "f64";
    fn from_raw(bits: u64) -> Self {
        f64::from_bits(bits)
    }
    fn literal(self) -> String {
        if self.is_nan() {
            format!("f64::from_bits({:#018x})", self.to_bits())
        } else if self == f64::INFINITY {
            "f64::INFINITY".into()
        } else if self == f64::NEG_INFINITY {
            "f64::NEG_INFINITY".into()
        } else {
            // Debug prints the shortest representation that round-trips.
            format!("{self:?}")
        }
    }
}

impl FuzzFloat for f32 {
    const RUST: &'static str = "f32";
    fn from_raw(bits: u64) -> Self {
        f32::from_bits(bits as u32)
    }
    fn literal(self) -> String {
        if self.is_nan() {
            format!("f32::from_bits({:#010x})", self.to_bits())
        } else if self == f32::INFINITY {
            "f32::INFINITY".into()
        } else if self == f32::NEG_INFINITY {
            "f32::NEG_INFINITY".into()
        } else {
            format!("{self:?}")
        }
    }
}

/// Special values, as f64 (rounded to the target type by `Scalar::lit`).
const SPECIAL: [f64; 32] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    2.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::MIN_POSITIVE,
    5e-324,
    -5e-324,
    1e-300,
    -1e-300,
    1e300,
    -1e300,
    f64::MAX,
    f64::MIN,
    f64::EPSILON,
    1e30,
    -1e30,
    1e-30,
    1e15,
    1e-15,
    f32::MAX as f64,
    f32::MIN_POSITIVE as f64,
    1e-45,
    1e38,
    -1e38,
    1e-38,
    1e154,
    1e-154,
];

/// One byte, 0 once the input is exhausted.
/// One of the crate's backends ([`Backend::all`]: a new backend is fuzzed
/// as soon as it is listed there).
pub fn backend(u: &mut Unstructured) -> Backend {
    let all = Backend::all();
    all[byte(u) as usize % all.len()]
}

pub fn byte(u: &mut Unstructured) -> u8 {
    u.arbitrary::<u8>().unwrap_or(0)
}

/// A fair-ish coin.
pub fn flag(u: &mut Unstructured) -> bool {
    byte(u) & 1 == 1
}

/// A dimension: mostly 0..=12, sometimes 13..=40.
pub fn dim(u: &mut Unstructured) -> usize {
    let b = byte(u);
    if b < 232 {
        (b % 13) as usize
    } else {
        13 + (b % 28) as usize
    }
}

/// A float of any kind (see the module docs).
pub fn float<T: FuzzFloat>(u: &mut Unstructured) -> T {
    let tag = byte(u);
    match tag {
        0..=47 => T::lit(SPECIAL[(tag % 32) as usize]),
        48..=63 => {
            let b = u.arbitrary::<u64>().unwrap_or(0);
            T::from_raw(b)
        }
        64..=191 => {
            // Ordinary values: k/16 for k in −128..=127.
            let k = u.arbitrary::<i8>().unwrap_or(0);
            T::lit(f64::from(k) / 16.0)
        }
        192..=239 => {
            // A 16-bit mantissa at a random binary exponent in −1100..=1100:
            // overflows to ±∞ or underflows to subnormals / ±0 at the ends.
            let k = u.arbitrary::<i16>().unwrap_or(0);
            let e = u.arbitrary::<i16>().unwrap_or(0) % 1101;
            T::lit(f64::from(k) * 2f64.powi(i32::from(e)))
        }
        _ => {
            // Uniform-ish in [0, 1): probabilities.
            let k = u.arbitrary::<u16>().unwrap_or(0);
            T::lit(f64::from(k) / 65536.0)
        }
    }
}

/// A finite float only (for structure parameters).
pub fn finite_float<T: FuzzFloat>(u: &mut Unstructured) -> T {
    let x = float::<T>(u);
    if x.finite() {
        x
    } else {
        T::zero()
    }
}

/// An n×m matrix in one of several structured fill modes.
pub fn matrix<T: FuzzFloat>(u: &mut Unstructured, n: usize, m: usize) -> DMatrix<T> {
    match byte(u) % 10 {
        // Element by element.
        0..=3 => DMatrix::from_fn(n, m, |_, _| float(u)),
        // Constant (all-ones-like: nalgebra's known silent failure).
        4 => {
            let c = float(u);
            DMatrix::from_element(n, m, c)
        }
        // Rank one x·yᵀ.
        5 => {
            let x: Vec<T> = (0..n).map(|_| float(u)).collect();
            let y: Vec<T> = (0..m).map(|_| float(u)).collect();
            DMatrix::from_fn(n, m, |i, j| x[i] * y[j])
        }
        // Small entries times one common (possibly extreme) scale.
        6 => {
            let s = float::<T>(u);
            DMatrix::from_fn(n, m, |_, _| {
                T::lit(f64::from(u.arbitrary::<i8>().unwrap_or(0)) / 16.0) * s
            })
        }
        // Graded B·D: column j scaled by 10^(−g·j).
        7 => {
            let g = f64::from(byte(u) % 40);
            DMatrix::from_fn(n, m, |_, j| {
                T::lit(f64::from(u.arbitrary::<i8>().unwrap_or(0)) / 16.0 * 10f64.powf(-g * j as f64))
            })
        }
        // Row-stochastic rows (attention-like), possibly with exact zeros.
        8 => {
            let mut a = DMatrix::from_fn(n, m, |_, _| {
                let k = byte(u);
                if k < 64 {
                    T::zero()
                } else {
                    T::lit(f64::from(k))
                }
            });
            for mut row in a.row_iter_mut() {
                let s = row.sum();
                if s > T::zero() {
                    row /= s;
                }
            }
            a
        }
        // Sparse: mostly zeros with a few specials.
        _ => DMatrix::from_fn(n, m, |_, _| if flag(u) { T::zero() } else { float(u) }),
    }
}

/// A mask of up to three parts combined with `and`, shaped for n queries and
/// m keys most of the time (sometimes with a wrong shape, which must be a
/// typed error).
pub fn mask<T: FuzzFloat>(u: &mut Unstructured, n: usize, m: usize, src: &mut String) -> Mask<T> {
    let parts = byte(u) % 4;
    let mut mask = Mask::none();
    let mut exprs: Vec<String> = Vec::new();
    for _ in 0..parts {
        let (part, expr) = match byte(u) % 6 {
            0 => (Mask::none(), "Mask::none()".to_string()),
            1 => (Mask::causal(), "Mask::causal()".to_string()),
            2 => {
                let w = (byte(u) % 14) as usize;
                (Mask::sliding_window(w), format!("Mask::sliding_window({w})"))
            }
            3 => {
                let len = if byte(u) < 240 { m } else { dim(u) };
                let v: Vec<bool> = (0..len).map(|_| byte(u) >= 64).collect();
                let e = format!("Mask::key_padding(vec!{v:?})");
                (Mask::key_padding(v), e)
            }
            4 => {
                let (r, c) = if byte(u) < 240 { (n, m) } else { (dim(u), dim(u)) };
                let b = DMatrix::from_fn(r, c, |_, _| byte(u) >= 64);
                let e = format!(
                    "Mask::from_bool(DMatrix::from_row_slice({r}, {c}, &{:?}))",
                    row_major(&b)
                );
                (Mask::from_bool(b), e)
            }
            _ => {
                let (r, c) = if byte(u) < 240 { (n, m) } else { (dim(u), dim(u)) };
                let b = DMatrix::from_fn(r, c, |_, _| {
                    if byte(u) < 48 {
                        T::NEG_INFINITY
                    } else {
                        float(u)
                    }
                });
                let e = format!("Mask::bias({})", matrix_literal(&b));
                (Mask::bias(b), e)
            }
        };
        mask = mask.and(part);
        exprs.push(expr);
    }
    *src = match exprs.len() {
        0 => format!("Mask::<{}>::none()", T::RUST),
        _ => {
            let mut s = exprs[0].clone();
            for e in &exprs[1..] {
                write!(s, ".and({e})").unwrap();
            }
            s
        }
    };
    mask
}

/// The entries in row-major order.
pub fn row_major<T: Clone + nalgebra::Scalar>(a: &DMatrix<T>) -> Vec<T> {
    a.transpose().as_slice().to_vec()
}

/// A matrix as a Rust expression.
pub fn matrix_literal<T: FuzzFloat>(a: &DMatrix<T>) -> String {
    let entries: Vec<String> = row_major(a).into_iter().map(|x| x.literal()).collect();
    format!(
        "DMatrix::<{}>::from_row_slice({}, {}, &[{}])",
        T::RUST,
        a.nrows(),
        a.ncols(),
        entries.join(", ")
    )
}

/// A slice as a Rust expression.
pub fn slice_literal<T: FuzzFloat>(s: &[T]) -> String {
    let entries: Vec<String> = s.iter().map(|x| x.literal()).collect();
    format!("vec![{}]", entries.join(", "))
}

/// Whether to print decoded inputs (`FUZZ_VERBOSE=1`).
pub fn verbose() -> bool {
    std::env::var_os("FUZZ_VERBOSE").is_some()
}

/// Panics with the message and the input description.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $ctx:expr, $($fmt:tt)+) => {
        if !$cond {
            panic!("invariant violated: {}\ninput:\n{}", format!($($fmt)+), $ctx());
        }
    };
}

/// Checks the documented guarantees of attention weights: shape n×m, every
/// entry finite in [0, 1], rows summing to 1 within the default tolerance,
/// masked entries exactly 0.
pub fn check_attention<T: FuzzFloat>(
    a: &DMatrix<T>,
    mask: &Mask<T>,
    n: usize,
    m: usize,
    ctx: &dyn Fn() -> String,
) {
    ensure!(a.shape() == (n, m), ctx, "output shape {:?} ≠ ({n}, {m})", a.shape());
    for (idx, &x) in a.iter().enumerate() {
        let (i, j) = (idx % n, idx / n);
        ensure!(
            x.finite() && x >= T::zero() && x <= T::one(),
            ctx,
            "entry ({i}, {j}) = {x:?} is not finite in [0, 1]"
        );
    }
    if let Err(e) = attention_svd::stochastic::check_stochastic(a, StochasticParams::row()) {
        panic!(
            "invariant violated: output not row-stochastic: {e}\noutput: {}\ninput:\n{}",
            matrix_literal(a),
            ctx()
        );
    }
    match mask.to_bool(n, m) {
        Ok(allowed) => {
            for i in 0..n {
                for j in 0..m {
                    ensure!(
                        allowed[(i, j)] || a[(i, j)] == T::zero(),
                        ctx,
                        "masked entry ({i}, {j}) = {:?} is not 0",
                        a[(i, j)]
                    );
                }
            }
        }
        Err(e) => panic!(
            "invariant violated: the call succeeded but mask.to_bool({n}, {m}) fails: {e}\ninput:\n{}",
            ctx()
        ),
    }
}
