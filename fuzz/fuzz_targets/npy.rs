//! `npy::read_stack::<f64>` and `::<f32>`, `npy::file_precision`,
//! `io::Tensor::open` (heads read from the file) and `io::Tensor::read`
//! (a stream) on `.npy` files of three kinds: the raw fuzz bytes; a
//! well-formed header (version 1/2/3, any of several dtypes, C or Fortran
//! order, fuzzed shape including huge and zero dimensions) over a fuzzed
//! payload; and a structure-aware hostile header (`hostile`): the header
//! dictionary built from fuzzed entries — nested literals up to 64 deep,
//! duplicate and unknown keys, list-valued, nested and string-valued
//! shapes, `'shape': (…)` inside strings, either quote, missing braces —
//! with a lying header length (short, long, 0, u16/u32 maxima), wrong
//! padding, and a payload short of, equal to or beyond the shape's claim.
//!
//! Never panics; Ok ⇒ every value finite and the product of the shape equal
//! to the data length.
#![no_main]

use std::io::Write;
use std::path::PathBuf;

use attention_svd::io::npy::read_stack;
use attention_svd::Stack;
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;

fn path() -> PathBuf {
    std::env::temp_dir().join(format!("attention_svd_fuzz_npy_{}.npy", std::process::id()))
}

// Non-ASCII entries: a dtype whose first char is several bytes long once
// panicked in a byte-index split (found by review, not by this target).
const DESCRS: [&str; 16] = [
    "<f8", "<f4", ">f8", ">f4", "<f2", "<i4", "|u1", "<c16", "|b1", "<f16", "=f8", "<U3", "\u{e9}8",
    "\u{e9}", "<\u{3b1}4", "",
];

fn dim_value(u: &mut Unstructured) -> String {
    match byte(u) {
        0..=199 => ((byte(u) % 7) as u64).to_string(),
        200..=209 => u.arbitrary::<u64>().unwrap_or(0).to_string(),
        210..=219 => (1u64 << (byte(u) % 64)).to_string(),
        220..=229 => u64::MAX.to_string(),
        230..=239 => "-1".into(),
        240..=247 => "18446744073709551616".into(),
        _ => ((byte(u) % 41) as u64).to_string(),
    }
}

fn well_formed(u: &mut Unstructured) -> Vec<u8> {
    let version = 1 + byte(u) % 3;
    let descr = if byte(u) < 240 {
        DESCRS[(byte(u) as usize) % DESCRS.len()].to_string()
    } else {
        let len = byte(u) % 6;
        (0..len).map(|_| (32 + byte(u) % 95) as char).filter(|&c| c != '\'').collect()
    };
    let fortran = if flag(u) { "True" } else { "False" };
    let ndim = match byte(u) {
        0..=219 => 2 + byte(u) % 3,
        _ => byte(u) % 7,
    };
    let dims: Vec<String> = (0..ndim).map(|_| dim_value(u)).collect();
    let shape = match dims.len() {
        0 => "()".to_string(),
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    let prefix = if version == 1 { 10 } else { 12 };
    // Pad to a multiple of 64 (the spec), sometimes not (tolerated by readers).
    if byte(u) < 240 {
        while (prefix + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
    }
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.push(version);
    out.push(0);
    if version == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    // Payload: the element count the header asks for (if small), give or take
    // a few, of fuzzed floats in the header's byte order; or the raw rest.
    let count: Option<u64> = dims
        .iter()
        .map(|d| d.parse::<u64>().ok())
        .try_fold(1u64, |acc, d| d.and_then(|d| acc.checked_mul(d)));
    let size = if descr.ends_with('8') { 8 } else if descr.ends_with('4') { 4 } else { 1 };
    let big_endian = descr.starts_with('>');
    match (byte(u) % 4, count) {
        (0..=2, Some(c)) if c <= 4096 => {
            let c = match byte(u) {
                0..=199 => c,
                200..=227 => c.saturating_sub(1 + u64::from(byte(u) % 4)),
                _ => c + 1,
            };
            for _ in 0..c {
                if size == 4 {
                    let x = float::<f32>(u);
                    out.extend_from_slice(&if big_endian { x.to_be_bytes() } else { x.to_le_bytes() });
                } else if size == 8 {
                    let x = float::<f64>(u);
                    out.extend_from_slice(&if big_endian { x.to_be_bytes() } else { x.to_le_bytes() });
                } else {
                    out.push(byte(u));
                }
            }
        }
        _ => {
            let rest = u.len();
            out.extend_from_slice(u.bytes(rest).unwrap_or(&[]));
        }
    }
    out
}

/// A Python literal of at most `depth` levels of nesting.
fn literal(u: &mut Unstructured, depth: u32) -> String {
    let nest = depth > 0 && byte(u) < 96;
    if nest {
        let len = byte(u) % 4;
        let inner: Vec<String> = (0..len).map(|_| literal(u, depth - 1)).collect();
        return match byte(u) % 3 {
            0 => format!("({})", inner.join(", ")),
            1 => format!("[{}]", inner.join(", ")),
            _ => format!(
                "{{{}}}",
                inner.iter().map(|v| format!("'k': {v}")).collect::<Vec<_>>().join(", ")
            ),
        };
    }
    match byte(u) % 9 {
        0 => dim_value(u),
        1 => "True".into(),
        2 => "False".into(),
        3 => "None".into(),
        4 => format!("'{}'", DESCRS[(byte(u) as usize) % DESCRS.len()]),
        5 => "\"'shape': (4294967296, 4294967296)\"".into(),
        6 => format!("'{}'", "\\'".repeat(usize::from(byte(u) % 8))),
        7 => "-".repeat(usize::from(byte(u) % 4)) + "1e400",
        _ => String::new(),
    }
}

/// A shape value: a tuple, a list, nested, a string, an integer, deep.
fn shape_value(u: &mut Unstructured, dims: &mut Vec<String>) -> String {
    let n = byte(u) % 6;
    dims.clear();
    dims.extend((0..n).map(|_| dim_value(u)));
    let joined = dims.join(", ");
    match byte(u) % 10 {
        0..=4 => {
            if n == 1 {
                format!("({joined},)")
            } else {
                format!("({joined})")
            }
        }
        5 => format!("[{joined}]"),
        6 => format!("(({joined}),)"),
        7 => format!("'({joined})'"),
        8 => dim_value(u),
        _ => {
            let depth = 1 + u32::from(byte(u) % 64);
            format!("{}{joined}{}", "(".repeat(depth as usize), ",)".repeat(depth as usize))
        }
    }
}

/// A structure-aware hostile `.npy` file (module docs).
fn hostile(u: &mut Unstructured) -> Vec<u8> {
    let version = match byte(u) % 8 {
        0..=5 => 1 + byte(u) % 3,
        6 => 0,
        _ => 4,
    };
    let quote = if byte(u) < 200 { '\'' } else { '"' };
    let key = |k: &str| format!("{quote}{k}{quote}");
    let mut dims = Vec::new();
    let mut entries: Vec<String> = Vec::new();
    let mut descr = String::from("<f8");
    for _ in 0..1 + byte(u) % 6 {
        match byte(u) % 7 {
            0 | 1 => {
                descr = DESCRS[(byte(u) as usize) % DESCRS.len()].to_string();
                entries.push(format!("{}: {quote}{descr}{quote}", key("descr")));
            }
            2 => {
                let v = match byte(u) % 4 {
                    0 => "True".to_string(),
                    1 => "False".to_string(),
                    _ => literal(u, 2),
                };
                entries.push(format!("{}: {v}", key("fortran_order")));
            }
            3 | 4 => {
                let v = shape_value(u, &mut dims);
                entries.push(format!("{}: {v}", key("shape")));
            }
            5 => {
                let depth = u32::from(byte(u) % 65);
                let v = literal(u, depth);
                entries.push(format!("{}: {v}", key("extra")));
            }
            _ => {
                let v = literal(u, 64);
                entries.push(format!("{}: {v}", key("descr")));
            }
        }
    }
    let mut header = entries.join(", ");
    if flag(u) {
        header.push_str(", ");
    }
    let header = match byte(u) % 16 {
        0 => header,
        1 => format!("{{{header}"),
        2 => format!("{header}}}"),
        _ => format!("{{{header}}}"),
    };
    let mut header = header.into_bytes();
    let prefix = if version == 1 { 10 } else { 12 };
    if byte(u) < 220 {
        while (prefix + header.len() + 1) % 64 != 0 {
            header.push(b' ');
        }
    }
    header.push(b'\n');
    let true_len = header.len() as u64;
    let claimed: u64 = match byte(u) % 12 {
        0..=6 => true_len,
        7 => true_len.saturating_sub(u64::from(1 + byte(u) % 16)),
        8 => true_len + u64::from(1 + byte(u) % 16),
        9 => 0,
        10 => u64::from(u16::MAX),
        _ => u64::from(u32::MAX),
    };
    let mut out = b"\x93NUMPY".to_vec();
    out.push(version);
    out.push(0);
    if version == 1 {
        out.extend_from_slice(&(claimed.min(u64::from(u16::MAX)) as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(claimed.min(u64::from(u32::MAX)) as u32).to_le_bytes());
    }
    out.extend_from_slice(&header);
    // The payload: the last shape's claim (when small) in bytes of the last
    // descr's size, then short of it, beyond it, or raw.
    let size: u64 = if descr.ends_with('8') {
        8
    } else if descr.ends_with('4') {
        4
    } else if descr.ends_with('2') {
        2
    } else {
        1
    };
    let count = dims
        .iter()
        .map(|d| d.parse::<u64>().ok())
        .try_fold(1u64, |acc, d| d.and_then(|d| acc.checked_mul(d)))
        .and_then(|c| c.checked_mul(size));
    let bytes = match (byte(u) % 4, count) {
        (0 | 1, Some(c)) if c <= 1 << 15 => c,
        (2, Some(c)) if c <= 1 << 15 => c.saturating_sub(u64::from(1 + byte(u) % 16)),
        (3, Some(c)) if c <= 1 << 15 => c + u64::from(1 + byte(u) % 16),
        _ => u.len().min(1 << 15) as u64,
    };
    for _ in 0..bytes {
        out.push(byte(u));
    }
    out
}

fn check_tensor(t: attention_svd::Result<attention_svd::io::Tensor<f32>>) {
    use attention_svd::HeadSource;
    let Ok(t) = t else { return };
    let [l, h, n, m] = t.shape();
    assert!(l > 0 && h > 0 && n > 0 && m > 0, "empty shape in Ok");
    for layer in 0..l.min(2) {
        for head in 0..h.min(2) {
            if let Ok(a) = t.head(layer, head) {
                assert_eq!((a.nrows(), a.ncols()), (n, m));
                assert!(a.iter().all(|x| x.is_finite()), "non-finite value in Ok head");
            }
        }
    }
}

fn check<T: FuzzFloat>(r: attention_svd::Result<Stack<T>>, bytes: &[u8]) {
    let ctx = || format!("let bytes: &[u8] = &{bytes:?};");
    if let Ok(s) = r {
        let shape = s.shape();
        let product = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        ensure!(
            product == Some(s.as_slice().len()),
            ctx,
            "shape {shape:?} does not match {} values",
            s.as_slice().len()
        );
        ensure!(s.as_slice().iter().all(|x| x.finite()), ctx, "non-finite value in Ok stack");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let bytes = match byte(&mut u) % 3 {
        0 => well_formed(&mut u),
        1 => hostile(&mut u),
        _ => {
            let rest = u.len();
            u.bytes(rest).unwrap_or(&[]).to_vec()
        }
    };
    if verbose() {
        eprintln!("file bytes ({}): {:?}", bytes.len(), bytes);
        eprintln!("as text: {:?}", String::from_utf8_lossy(&bytes));
    }
    // Headers whose shape overflows 64 bits once made npyz panic (see
    // fuzz/regressions/npy); `read_stack` now rejects them itself, so they
    // are fuzzed like any other input.
    let _ = shape_product_overflows(&bytes);
    let p = path();
    {
        let mut f = std::fs::File::create(&p).expect("create temp file");
        f.write_all(&bytes).expect("write temp file");
    }
    check(read_stack::<f64>(&p), &bytes);
    check(read_stack::<f32>(&p), &bytes);
    let _ = attention_svd::io::npy::file_precision(&p);
    check_tensor(attention_svd::io::Tensor::open(&p, None));
    check_tensor(attention_svd::io::Tensor::read(
        "fuzz",
        attention_svd::io::Format::Npy,
        &mut bytes.as_slice(),
        None,
    ));
    let _ = std::fs::remove_file(&p);
});

/// Whether the `'shape': (…)` of the header, read leniently, has a u64 product
/// that overflows (diagnostics only).
fn shape_product_overflows(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 16)]);
    let mut rest = &text[..];
    while let Some(pos) = rest.find("shape") {
        rest = &rest[pos + 5..];
        let Some(open) = rest.find('(') else { return false };
        let Some(close) = rest[open..].find(')') else { return false };
        let inner = &rest[open + 1..open + close];
        let mut acc: Option<u64> = Some(1);
        for part in inner.split(',') {
            let t = part.trim().trim_end_matches(['L', 'l']);
            if t.is_empty() {
                continue;
            }
            match t.parse::<u64>() {
                // Zeros skipped: npyz's strides multiply in reverse order,
                // so (0, 2^32, 2^32) overflows there too.
                Ok(0) => {}
                Ok(d) => acc = acc.and_then(|a| a.checked_mul(d)),
                Err(_) => {}
            }
        }
        if acc.is_none() {
            return true;
        }
    }
    false
}
