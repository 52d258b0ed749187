//! Reading and writing stacks of matrices as NumPy `.npy` files
//! (feature `npy`, on by default).
//!
//! Accepted files are what `np.save` writes for float arrays: dtype `f4` or
//! `f8` in either byte order (`<f4`, `>f8`, …), C or Fortran order, of rank
//! 2 ([n, m]), 3 ([h, n, m]) or 4 ([l, h, n, m]) — the layout of Hugging
//! Face's `output_attentions` stacked over layers, and of TransformerLens.
//! Per-head queries and keys use the same layout, [l, h, n, d].
//!
//! Every problem is an [`Error::File`] that names the file and what is
//! wrong: not a `.npy` file, truncated data, unsupported dtype (integers,
//! float16, complex, structured), wrong rank, a zero-sized dimension, NaN
//! or ±∞ (with its index), or queries and keys whose shapes disagree.
//! Parsing is done by the maintained `npyz` crate.
//!
//! # Examples
//!
//! ```
//! use attention_svd::io::npy;
//! use attention_svd::nalgebra::dmatrix;
//! use attention_svd::Stack;
//!
//! let path = std::env::temp_dir().join("attention_svd_npy_doc.npy");
//! let s = Stack::from_matrices(1, 1, &[dmatrix![0.25_f32, 0.75; 1.0, 0.0]]).unwrap();
//! npy::write_stack(&path, &s).unwrap();
//! let back: Stack<f64> = npy::read_stack(&path).unwrap();
//! assert_eq!(back.shape(), [1, 1, 2, 2]);
//! assert_eq!(back.head(0, 0).unwrap().get(0, 1), 0.75);
//! # std::fs::remove_file(&path).ok();
//! ```

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::Path;

use npyz::{Order, TypeChar, WriterBuilder};

use crate::Precision;
use crate::{Error, Result, Scalar, Stack};

fn file_error(path: &Path, problem: impl Into<String>) -> Error {
    Error::File {
        path: path.display().to_string(),
        problem: problem.into(),
    }
}

/// Reads a float `.npy` file of rank 2, 3 or 4 as a [`Stack`] converted to
/// `T` ([n, m] becomes [1, 1, n, m]; [h, n, m] becomes [1, h, n, m]).
///
/// Converting an `f8` file to `f32` rounds to nearest.
///
/// # Errors
///
/// [`Error::File`] as listed in the [module docs](self).
pub fn read_stack<T: Scalar>(path: impl AsRef<Path>) -> Result<Stack<T>> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| file_error(path, format!("cannot open: {e}")))?;
    let mut reader = BufReader::new(file);
    let prefix = precheck_header(path, &mut reader)?;
    let npy = npyz::NpyFile::new(std::io::Cursor::new(prefix).chain(reader))
        .map_err(|e| file_error(path, format!("not a .npy file: {e}")))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let order = npy.order();
    let size = match npy.dtype() {
        npyz::DType::Plain(ts) if ts.type_char() == TypeChar::Float => ts.size_field(),
        other => {
            return Err(file_error(
                path,
                format!(
                    "unsupported dtype {}: expected float32 or float64",
                    other.descr()
                ),
            ));
        }
    };
    if size != 4 && size != 8 {
        return Err(file_error(
            path,
            format!("unsupported float size of {size} bytes: expected float32 or float64"),
        ));
    }
    if !(2..=4).contains(&shape.len()) {
        return Err(file_error(
            path,
            format!(
                "array of rank {} (shape {shape:?}): expected [n, m], [h, n, m] or [l, h, n, m]",
                shape.len()
            ),
        ));
    }
    if shape.contains(&0) {
        return Err(file_error(path, format!("empty array of shape {shape:?}")));
    }
    let Some(expected) = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
        return Err(file_error(
            path,
            format!("shape {shape:?} has more elements than this machine can address"),
        ));
    };
    // A regular file must be large enough for the values its header
    // promises before anything is allocated for them. (Pipes have no size:
    // their data is read as it comes, with no allocation up front.)
    let meta = std::fs::metadata(path).ok();
    let regular = meta.as_ref().is_some_and(|m| m.is_file());
    if regular {
        let file_len = meta.map_or(0, |m| m.len());
        let needed = (expected as u128) * u128::from(size);
        if needed > u128::from(file_len) {
            return Err(file_error(
                path,
                format!(
                    "truncated: shape {shape:?} needs {needed} bytes of data, the file has {file_len}"
                ),
            ));
        }
    }
    let truncated = |e: std::io::Error| {
        file_error(
            path,
            format!("truncated or unreadable data ({expected} values expected): {e}"),
        )
    };
    let mut data: Vec<T> = Vec::with_capacity(if regular { expected } else { 0 });
    // The first value that is not finite in the file, or that does not fit T.
    let mut bad: Option<(usize, f64)> = None;
    let mut push = |x: f64, data: &mut Vec<T>| {
        let v = T::lit(x);
        if bad.is_none() && !v.finite() {
            bad = Some((data.len(), x));
        }
        data.push(v);
    };
    if size == 4 {
        let reader = npy
            .data::<f32>()
            .map_err(|e| file_error(path, e.to_string()))?;
        for x in reader {
            push(f64::from(x.map_err(truncated)?), &mut data);
        }
    } else {
        let reader = npy
            .data::<f64>()
            .map_err(|e| file_error(path, e.to_string()))?;
        for x in reader {
            push(x.map_err(truncated)?, &mut data);
        }
    }
    if data.len() != expected {
        return Err(file_error(
            path,
            format!(
                "truncated: {} values for shape {shape:?} ({expected} expected)",
                data.len()
            ),
        ));
    }
    if let Some((pos, x)) = bad {
        let index = match order {
            Order::C => unravel_c(pos, &shape),
            Order::Fortran => unravel_fortran(pos, &shape),
        };
        let problem = if x.is_finite() {
            format!(
                "value {x:e} at index {index:?} is out of the range of {}",
                T::NAME
            )
        } else {
            format!("non-finite value at index {index:?}")
        };
        return Err(file_error(path, problem));
    }
    let data = match order {
        Order::C => data,
        Order::Fortran => fortran_to_c(&data, &shape),
    };
    let mut full = [1usize; 4];
    full[4 - shape.len()..].copy_from_slice(&shape);
    Stack::new(full, data).map_err(|e| file_error(path, e.to_string()))
}

/// Reads the magic, version and header of a `.npy` file and rejects shapes
/// whose element count overflows 64 bits before `npyz` sees them (its
/// header parser multiplies the dimensions unchecked). Returns the bytes
/// read, to be replayed in front of the rest of the file. Anything this
/// quick scan does not understand is left for `npyz` to report.
fn precheck_header(path: &Path, reader: &mut impl Read) -> Result<Vec<u8>> {
    let mut prefix = Vec::new();
    let mut start = [0u8; 12];
    let got = read_up_to(path, reader, &mut start)?;
    prefix.extend_from_slice(&start[..got]);
    if got < 10 || &start[..6] != b"\x93NUMPY" {
        return Ok(prefix);
    }
    let header_len = if start[6] == 1 {
        (usize::from(u16::from_le_bytes([start[8], start[9]])) + 10).saturating_sub(got)
    } else if got == 12 {
        let len = u32::from_le_bytes([start[8], start[9], start[10], start[11]]) as usize;
        if len > 1 << 24 {
            return Err(file_error(
                path,
                format!("header of {len} bytes is too large"),
            ));
        }
        len
    } else {
        return Ok(prefix);
    };
    let mut header = vec![0u8; header_len];
    let got = read_up_to(path, reader, &mut header)?;
    header.truncate(got);
    let text = String::from_utf8_lossy(if start[6] == 1 {
        // For version 1 the first two header bytes were read with `start`.
        &prefix[10..]
    } else {
        &[]
    })
    .into_owned()
        + &String::from_utf8_lossy(&header);
    prefix.extend_from_slice(&header);
    if let Some(dims) = shape_of(&text) {
        // npyz multiplies the dimensions, and their suffixes for the strides,
        // unchecked: bound the product of the non-zero ones, with room for
        // the item size. (No real array comes near 2⁴⁸ elements.)
        let nonzero = dims
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1u64, |acc, &d| acc.checked_mul(d));
        if nonzero.is_none_or(|p| p > 1 << 48) {
            return Err(file_error(
                path,
                format!("shape {dims:?} has more elements than this machine can address"),
            ));
        }
    }
    Ok(prefix)
}

/// Reads until `buf` is full or the input ends; returns the count read.
fn read_up_to(path: &Path, reader: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(file_error(path, format!("cannot read: {e}"))),
        }
    }
    Ok(filled)
}

/// The integers of the `'shape': (…)` entry of a header dict, if present
/// and well formed.
fn shape_of(header: &str) -> Option<Vec<u64>> {
    let at = header
        .find("'shape'")
        .or_else(|| header.find("\"shape\""))?;
    let rest = &header[at..];
    let open = rest.find('(')?;
    let close = rest[open..].find(')')? + open;
    rest[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.trim_end_matches('L').parse::<u64>().ok())
        .collect()
}

/// Reads per-head queries and keys, both [l, h, n, d] (or [h, n, d],
/// [n, d]), and checks that they fit together: same layers, heads and head
/// dimension d (the query and key counts may differ).
///
/// # Errors
///
/// The errors of [`read_stack`] for either file, and [`Error::File`]
/// naming both files when their shapes disagree.
pub fn read_queries_keys<T: Scalar>(
    q_path: impl AsRef<Path>,
    k_path: impl AsRef<Path>,
) -> Result<(Stack<T>, Stack<T>)> {
    let (q_path, k_path) = (q_path.as_ref(), k_path.as_ref());
    let q = read_stack::<T>(q_path)?;
    let k = read_stack::<T>(k_path)?;
    let [ql, qh, _, qd] = q.shape();
    let [kl, kh, _, kd] = k.shape();
    if (ql, qh, qd) != (kl, kh, kd) {
        return Err(file_error(
            q_path,
            format!(
                "queries of shape {:?} do not fit the keys in {} of shape {:?}: \
                 layers, heads and head dimension must agree",
                q.shape(),
                k_path.display(),
                k.shape()
            ),
        ));
    }
    Ok((q, k))
}

/// Writes a stack as a C-order little-endian `.npy` file of shape
/// [l, h, n, m], in the stack's own precision (`<f4` or `<f8`).
///
/// # Errors
///
/// [`Error::File`] if the file cannot be written.
pub fn write_stack<T: Scalar>(path: impl AsRef<Path>, stack: &Stack<T>) -> Result<()> {
    let path = path.as_ref();
    let io = |e: std::io::Error| file_error(path, format!("cannot write: {e}"));
    let file = File::create(path).map_err(io)?;
    let shape: Vec<u64> = stack.shape().iter().map(|&d| d as u64).collect();
    let out = BufWriter::new(file);
    if T::MANTISSA_DIGITS == f32::MANTISSA_DIGITS {
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape)
            .writer(out)
            .begin_nd()
            .map_err(io)?;
        w.extend(stack.as_slice().iter().map(|x| x.to_f64() as f32))
            .map_err(io)?;
        w.finish().map_err(io)
    } else {
        let mut w = npyz::WriteOptions::<f64>::new()
            .default_dtype()
            .shape(&shape)
            .writer(out)
            .begin_nd()
            .map_err(io)?;
        w.extend(stack.as_slice().iter().map(|x| x.to_f64()))
            .map_err(io)?;
        w.finish().map_err(io)
    }
}

/// Reorders Fortran-order data (first index fastest) to C order.
fn fortran_to_c<T: Copy>(data: &[T], shape: &[usize]) -> Vec<T> {
    let rank = shape.len();
    // Fortran strides: 1, d0, d0·d1, …
    let mut strides = vec![1usize; rank];
    for k in 1..rank {
        strides[k] = strides[k - 1] * shape[k - 1];
    }
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0usize; rank];
    for _ in 0..data.len() {
        let offset: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.push(data[offset]);
        // Advance the C-order odometer (last index fastest).
        for k in (0..rank).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// The multi-index of a C-order flat position.
fn unravel_c(mut pos: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for k in (0..shape.len()).rev() {
        idx[k] = pos % shape[k];
        pos /= shape[k];
    }
    idx
}

/// The multi-index of a Fortran-order flat position.
fn unravel_fortran(mut pos: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for k in 0..shape.len() {
        idx[k] = pos % shape[k];
        pos /= shape[k];
    }
    idx
}

/// The precision of a float `.npy` file (from its header only): the
/// precision its values were stored in.
///
/// # Errors
///
/// [`Error::File`] if the file cannot be read, is not `.npy`, or is not
/// float32/float64.
pub fn file_precision(path: impl AsRef<Path>) -> Result<Precision> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| file_error(path, format!("cannot open: {e}")))?;
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .map_err(|e| file_error(path, format!("not a .npy file: {e}")))?;
    match npy.dtype() {
        npyz::DType::Plain(ts) if ts.type_char() == TypeChar::Float && ts.size_field() == 4 => {
            Ok(Precision::F32)
        }
        npyz::DType::Plain(ts) if ts.type_char() == TypeChar::Float && ts.size_field() == 8 => {
            Ok(Precision::F64)
        }
        other => Err(file_error(
            path,
            format!(
                "unsupported dtype {}: expected float32 or float64",
                other.descr()
            ),
        )),
    }
}
