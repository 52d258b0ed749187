//! `io::Tensor::read` on `.npy` and `.safetensors` streams (raw fuzz bytes,
//! or a well-formed safetensors header with fuzzed dtypes, shapes and
//! offsets over a fuzzed payload), `io::Tensor::open` on `.npz` archives
//! (a zip of one to three stored or deflated members holding a small `.npy`
//! or raw bytes, then up to eight fuzzed bytes overwritten anywhere: sizes,
//! offsets, methods and names of the local and central headers lie), and
//! `io::Export::open` on fuzzed sidecars (a valid one with one field
//! replaced, or raw bytes).
//!
//! Never panics; Ok ⇒ the shape is positive, every head reads without a
//! panic, and every value of a head read is finite.
#![no_main]

use std::io::Write;

use attention_svd::io::{Export, Format, Role, Tensor};
use attention_svd::HeadSource;
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;

const DTYPES: [&str; 7] = ["F16", "BF16", "F32", "F64", "I64", "U8", "F8_E4M3"];

fn dim(u: &mut Unstructured) -> u64 {
    match byte(u) {
        0..=219 => u64::from(byte(u) % 5),
        220..=239 => 1 << (byte(u) % 64),
        _ => u.arbitrary::<u64>().unwrap_or(0),
    }
}

fn safetensors(u: &mut Unstructured) -> Vec<u8> {
    let count = 1 + byte(u) % 3;
    let mut header = String::from("{");
    let mut offset = 0u64;
    for t in 0..count {
        let dtype = DTYPES[(byte(u) as usize) % DTYPES.len()];
        let rank = byte(u) % 7;
        let dims: Vec<u64> = (0..rank).map(|_| dim(u)).collect();
        let size = match dtype {
            "F64" | "I64" => 8,
            "F32" => 4,
            "F16" | "BF16" => 2,
            _ => 1,
        };
        let len = dims
            .iter()
            .try_fold(size, |a: u64, &d| a.checked_mul(d))
            .unwrap_or(u64::MAX);
        let len = if flag(u) { len } else { u64::from(byte(u)) };
        let end = offset.saturating_add(len);
        let dims: Vec<String> = dims.iter().map(u64::to_string).collect();
        header.push_str(&format!(
            "{}\"t{t}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            if t > 0 { "," } else { "" },
            dims.join(",")
        ));
        offset = end;
    }
    header.push('}');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    if byte(u) > 240 {
        out = u.arbitrary::<u64>().unwrap_or(0).to_le_bytes().to_vec();
    }
    out.extend_from_slice(header.as_bytes());
    let rest = u.len().min(1 << 16);
    out.extend_from_slice(u.bytes(rest).unwrap_or(&[]));
    out
}

fn check(t: attention_svd::Result<Tensor<f64>>) {
    let Ok(t) = t else { return };
    let t = match t.batch() {
        Some(b) => match t.entry(b - 1) {
            Ok(e) => e,
            Err(_) => return,
        },
        None => t,
    };
    let [l, h, n, m] = t.shape();
    assert!(l > 0 && h > 0 && n > 0 && m > 0, "empty shape in Ok");
    for layer in 0..l.min(4) {
        for head in 0..h.min(4) {
            if let Ok(a) = t.head(layer, head) {
                assert_eq!((a.nrows(), a.ncols()), (n, m));
                assert!(a.iter().all(|x| x.is_finite()), "non-finite value in Ok head");
            }
        }
    }
}

/// A small well-formed float `.npy` (shape a×b, fuzzed values) or raw bytes.
fn npy_member(u: &mut Unstructured) -> Vec<u8> {
    if byte(u) < 40 {
        let len = usize::from(byte(u));
        return u.bytes(len.min(u.len())).unwrap_or(&[]).to_vec();
    }
    let (a, b) = (1 + byte(u) % 4, 1 + byte(u) % 4);
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({a}, {b}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for _ in 0..a * b {
        out.extend_from_slice(&float::<f64>(u).to_le_bytes());
    }
    out
}

/// A `.npz` archive of fuzzed members, then bytes overwritten (module docs).
fn npz(u: &mut Unstructured) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for t in 0..1 + byte(u) % 3 {
        let method = if flag(u) {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        let name = match byte(u) % 4 {
            0 => format!("t{t}"),
            _ => format!("t{t}.npy"),
        };
        let member = npy_member(u);
        let ok = w
            .start_file(name, SimpleFileOptions::default().compression_method(method))
            .is_ok()
            && w.write_all(&member).is_ok();
        if !ok {
            break;
        }
    }
    let mut bytes = w.finish().map(|c| c.into_inner()).unwrap_or_default();
    for _ in 0..byte(u) % 9 {
        if bytes.is_empty() {
            break;
        }
        let at = u.arbitrary::<u16>().unwrap_or(0) as usize % bytes.len();
        bytes[at] = byte(u);
    }
    bytes
}

const SIDECAR: &str = include_str!("../../data/minilm/lighthouse_n16.json");

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    match byte(&mut u) % 4 {
        0 => {
            let bytes = safetensors(&mut u);
            let name = format!("t{}", byte(&mut u) % 3);
            let tensor = if flag(&mut u) { Some(name.as_str()) } else { None };
            check(Tensor::read("fuzz", Format::Safetensors, &mut bytes.as_slice(), tensor));
        }
        1 => {
            let rest = u.len();
            let bytes = u.bytes(rest).unwrap_or(&[]).to_vec();
            let format = if bytes.first() == Some(&0x93) { Format::Npy } else { Format::Safetensors };
            check(Tensor::read("fuzz", format, &mut bytes.as_slice(), None));
        }
        2 => {
            let raw = flag(&mut u);
            let bytes = if raw {
                let rest = u.len();
                u.bytes(rest).unwrap_or(&[]).to_vec()
            } else {
                npz(&mut u)
            };
            let name = match byte(&mut u) % 4 {
                0 => None,
                1 => Some("t1.npy"),
                _ => Some("t0"),
            };
            let p = std::env::temp_dir()
                .join(format!("attention_svd_fuzz_io_{}.npz", std::process::id()));
            std::fs::write(&p, &bytes).expect("write");
            check(Tensor::open(&p, name));
            let _ = std::fs::remove_file(&p);
        }
        _ => {
            let dir = std::env::temp_dir().join(format!("attention_svd_fuzz_io_{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let text = if flag(&mut u) {
                let mut v: serde_json::Value = serde_json::from_str(SIDECAR).expect("valid sidecar");
                let fields = ["version", "kv_group", "prompts", "arrays", "batched", "model"];
                let f = fields[(byte(&mut u) as usize) % fields.len()];
                let rest = u.len();
                let raw = String::from_utf8_lossy(u.bytes(rest).unwrap_or(&[])).into_owned();
                v[f] = serde_json::from_str(&raw).unwrap_or(serde_json::Value::String(raw));
                serde_json::to_vec(&v).expect("serialise")
            } else {
                let rest = u.len();
                u.bytes(rest).unwrap_or(&[]).to_vec()
            };
            let p = dir.join("s.json");
            std::fs::File::create(&p).and_then(|mut f| f.write_all(&text)).expect("write");
            if let Ok(e) = Export::open(&p) {
                for role in [Role::Attn, Role::Q, Role::K, Role::V] {
                    let _ = e.tensor::<f64>(role);
                }
            }
            let _ = std::fs::remove_file(&p);
        }
    }
});
