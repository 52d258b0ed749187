//! NumPy `.npy` files: the header parser behind [`Tensor`],
//! and whole-stack reading and writing.
//!
//! Accepted files are what `np.save` writes for float arrays: dtype `f2`,
//! `f4` or `f8` in either byte order (`<f4`, `>f8`, …), C or Fortran order,
//! format versions 1–3. A header is at most [`MAX_HEADER`] bytes and is
//! parsed here (a Python-literal dict with `descr`, `fortran_order` and
//! `shape`); anything else in it is an [`Error::File`](crate::Error::File) saying what.
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

use std::io::Write;
use std::path::Path;

use super::dtype::{Dtype, Endian};
use super::{Tensor, file_error};
use crate::{HeadSource, Precision, Result, Scalar, Stack};

/// The largest `.npy` header read, in bytes (NumPy's own limit for
/// loading without `allow_pickle`-style opt-ins is far smaller in
/// practice; real headers are under 200 bytes).
pub const MAX_HEADER: usize = 1 << 16;

/// What a `.npy` header says.
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) fortran: bool,
    /// Where the data starts, in bytes from the start of the file.
    pub(crate) data_offset: usize,
}

/// Bytes of the fixed part before the header text: magic (6), version (2),
/// length (2 for version 1, 4 after).
pub(crate) fn preamble_len(version: u8) -> usize {
    if version == 1 { 10 } else { 12 }
}

/// Parses the preamble `start` (at least 12 bytes, or the whole file if
/// shorter) into (version, header length).
pub(crate) fn preamble(path: &str, start: &[u8]) -> Result<(u8, usize)> {
    if start.len() < 10 || &start[..6] != b"\x93NUMPY" {
        return Err(file_error(
            path,
            "not a .npy file (the magic \\x93NUMPY is missing)",
        ));
    }
    let version = start[6];
    let len = match version {
        1 => usize::from(u16::from_le_bytes([start[8], start[9]])),
        2 | 3 if start.len() >= 12 => {
            u32::from_le_bytes([start[8], start[9], start[10], start[11]]) as usize
        }
        2 | 3 => return Err(file_error(path, "truncated .npy preamble")),
        v => {
            return Err(file_error(
                path,
                format!("unsupported .npy format version {v} (1, 2 and 3 are read)"),
            ));
        }
    };
    if len > MAX_HEADER {
        return Err(file_error(
            path,
            format!("a .npy header of {len} bytes is larger than the {MAX_HEADER} accepted"),
        ));
    }
    Ok((version, len))
}

/// Parses the header text that follows the preamble.
pub(crate) fn parse_header(path: &str, version: u8, text: &[u8]) -> Result<Header> {
    let data_offset = preamble_len(version) + text.len();
    let text =
        std::str::from_utf8(text).map_err(|_| file_error(path, "the .npy header is not text"))?;
    let mut p = Lit {
        s: text.as_bytes(),
        i: 0,
    };
    // The header is quoted in messages, cut to a bounded length.
    let quoted: String = text.chars().take(120).collect();
    let more = if text.chars().count() > 120 {
        "…"
    } else {
        ""
    };
    let bad = |what: &str| {
        file_error(
            path,
            format!("malformed .npy header ({what}): {quoted:?}{more}"),
        )
    };
    p.ws();
    if !p.eat(b'{') {
        return Err(bad("no dict"));
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string().ok_or_else(|| bad("a key is not a string"))?;
        p.ws();
        if !p.eat(b':') {
            return Err(bad("no ':' after a key"));
        }
        p.ws();
        let seen = match key.as_str() {
            "descr" => descr.is_some(),
            "fortran_order" => fortran.is_some(),
            "shape" => shape.is_some(),
            _ => false,
        };
        if seen {
            return Err(bad("a key given twice"));
        }
        match key.as_str() {
            "descr" => {
                if p.peek() == Some(b'[') {
                    return Err(file_error(
                        path,
                        "structured dtype: expected a plain float array",
                    ));
                }
                descr = Some(p.string().ok_or_else(|| bad("descr"))?);
            }
            "fortran_order" => fortran = Some(p.boolean().ok_or_else(|| bad("fortran_order"))?),
            "shape" => shape = Some(p.tuple().ok_or_else(|| bad("shape"))?),
            _ => return Err(bad("unknown key")),
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            if p.eat(b'}') {
                break;
            }
            return Err(bad("no ',' between entries"));
        }
    }
    // NumPy pads the dict with spaces and a newline; anything else after
    // it is not a header this crate understands.
    p.ws();
    if p.peek().is_some() {
        return Err(bad("text after the dict"));
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        return Err(bad("descr, fortran_order and shape are all required"));
    };
    let dtype = parse_descr(path, &descr)?;
    Ok(Header {
        dtype,
        shape,
        fortran,
        data_offset,
    })
}

fn parse_descr(path: &str, descr: &str) -> Result<Dtype> {
    // Quoted within a bound; split on a char boundary (the first char may
    // be any UTF-8).
    let mut shown: String = descr.chars().take(24).collect();
    if descr.chars().nth(24).is_some() {
        shown.push('…');
    }
    let (order, kind) = match descr.chars().next() {
        Some(c) => descr.split_at(c.len_utf8()),
        None => ("", ""),
    };
    let endian = match order {
        "<" | "=" | "|" => Endian::Little,
        ">" => Endian::Big,
        _ => {
            return Err(file_error(
                path,
                format!("unsupported dtype {shown:?}: expected float16, float32 or float64"),
            ));
        }
    };
    let precision = match kind {
        "f2" => Precision::F16,
        "f4" => Precision::F32,
        "f8" => Precision::F64,
        _ => {
            return Err(file_error(
                path,
                format!(
                    "unsupported dtype {shown:?}: expected float16, float32 or float64 \
                     (bfloat16 arrays go in .safetensors files)"
                ),
            ));
        }
    };
    Ok(Dtype { precision, endian })
}

/// A cursor over a Python literal.
struct Lit<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lit<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn string(&mut self) -> Option<String> {
        let q = self.peek().filter(|&c| c == b'\'' || c == b'"')?;
        self.i += 1;
        let start = self.i;
        while self.peek()? != q {
            if self.peek()? == b'\\' {
                return None;
            }
            self.i += 1;
        }
        let out = std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .to_string();
        self.i += 1;
        Some(out)
    }
    fn boolean(&mut self) -> Option<bool> {
        for (word, v) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Some(v);
            }
        }
        None
    }
    fn tuple(&mut self) -> Option<Vec<usize>> {
        if !self.eat(b'(') {
            return None;
        }
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Some(dims);
            }
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            // At most 19 digits: every such number fits u64 and usize on
            // 64-bit targets; larger ones are rejected, not wrapped.
            if self.i == start || self.i - start > 19 {
                return None;
            }
            let d: u64 = std::str::from_utf8(&self.s[start..self.i])
                .ok()?
                .parse()
                .ok()?;
            dims.push(usize::try_from(d).ok()?);
            let _ = self.eat(b'L');
            self.ws();
            if !self.eat(b',') {
                self.ws();
                if self.eat(b')') {
                    return Some(dims);
                }
                return None;
            }
            if dims.len() > 32 {
                return None;
            }
        }
    }
}

/// Reads a float `.npy` file of rank 2, 3 or 4 into memory as a [`Stack`]
/// converted to `T` ([n, m] becomes [1, 1, n, m]; [h, n, m] becomes
/// [1, h, n, m]).
///
/// For files larger than memory, read heads as they are needed with
/// [`Tensor::open`] instead.
///
/// # Errors
///
/// [`Error::File`](crate::Error::File) as listed in the [`io`](super) module docs, and for a
/// batched (rank-5) array.
pub fn read_stack<T: Scalar>(path: impl AsRef<Path>) -> Result<Stack<T>> {
    let path = path.as_ref();
    let t = Tensor::<T>::open(path, None)?;
    if let Some(b) = t.batch() {
        return Err(file_error(
            &path.display().to_string(),
            format!(
                "a batch of {b} stacks (rank 5): read it with io::Tensor and pick one with entry(b)"
            ),
        ));
    }
    t.to_stack()
}

/// Reads per-head queries and keys, both [l, h, n, d] (or [h, n, d],
/// [n, d]), and checks that they fit together: same layers, heads and head
/// dimension d (the query and key counts may differ).
///
/// # Errors
///
/// The errors of [`read_stack`] for either file, and [`Error::File`](crate::Error::File)
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
            &q_path.display().to_string(),
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

/// The header of a C-order little-endian `.npy` file (version 1) holding
/// values of `precision` (f32 or f64) in `shape`.
fn header_bytes(precision: Precision, shape: &[usize]) -> Vec<u8> {
    let descr = if precision == Precision::F32 {
        "<f4"
    } else {
        "<f8"
    };
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let dims = if dims.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let mut text = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    // Pad with spaces so that the data starts on a multiple of 64 bytes.
    let total = 10 + text.len() + 1;
    text.push_str(&" ".repeat((64 - total % 64) % 64));
    text.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// Writes a stack as a C-order little-endian `.npy` file of shape
/// [l, h, n, m], in the stack's own precision (`<f4` or `<f8`).
///
/// # Errors
///
/// [`Error::File`](crate::Error::File) if the file cannot be written.
pub fn write_stack<T: Scalar>(path: impl AsRef<Path>, stack: &Stack<T>) -> Result<()> {
    let path = path.as_ref();
    let io =
        |e: std::io::Error| file_error(&path.display().to_string(), format!("cannot write: {e}"));
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = std::io::BufWriter::new(file);
    let precision = Precision::of::<T>();
    out.write_all(&header_bytes(precision, &stack.shape()))
        .map_err(io)?;
    for &x in stack.as_slice() {
        if precision == Precision::F32 {
            out.write_all(&(x.to_f64() as f32).to_le_bytes())
        } else {
            out.write_all(&x.to_f64().to_le_bytes())
        }
        .map_err(io)?;
    }
    out.flush().map_err(io)
}

/// The precision of a float `.npy` or `.safetensors` file (from its header
/// only): the precision its values were stored in.
///
/// # Errors
///
/// [`Error::File`](crate::Error::File) if the file cannot be read or holds no float array.
pub fn file_precision(path: impl AsRef<Path>) -> Result<Precision> {
    Ok(Tensor::<f64>::open(path.as_ref(), None)?.precision())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> Result<Header> {
        parse_header("x.npy", 1, text.as_bytes())
    }

    #[test]
    fn parses_what_numpy_writes() {
        let h = header("{'descr': '<f4', 'fortran_order': False, 'shape': (6, 12, 64, 64), }   \n")
            .unwrap();
        assert_eq!(h.shape, vec![6, 12, 64, 64]);
        assert!(!h.fortran);
        assert_eq!(h.dtype.precision, Precision::F32);
        let h = header("{\"descr\": \">f2\", \"shape\": (3,), \"fortran_order\": True}").unwrap();
        assert_eq!((h.shape, h.fortran), (vec![3], true));
        assert_eq!(h.dtype.endian, Endian::Big);
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        for bad in [
            "",
            "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (1 << 40,)}",
            "{'descr': '<f4', 'shape': (2,), 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } {'x': 1}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n\0",
            "{'descr': 'é8', 'fortran_order': False, 'shape': (2,)}",
            "{'descr': 'é', 'fortran_order': False, 'shape': (2,)}",
        ] {
            assert!(header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn written_headers_align_the_data() {
        for shape in [&[2usize][..], &[1, 2, 3, 4], &[100_000, 7]] {
            let h = header_bytes(Precision::F64, shape);
            assert_eq!(h.len() % 64, 0);
            let (v, len) = preamble("x", &h).unwrap();
            let parsed = parse_header("x", v, &h[10..10 + len]).unwrap();
            assert_eq!(parsed.shape, shape);
            assert_eq!(parsed.data_offset, h.len());
        }
    }
}
