//! Peak memory of the whole-model analysis on a large stack: a
//! [12, 12, 512, 512] f32 attention file (151 MB) must be analysed with the
//! process's peak resident memory under twice the file's size.
//!
//! A separate test binary, so that the peak (Linux `VmHWM`) belongs to this
//! test alone. The file is generated here, streamed one head at a time, and
//! removed afterwards; it is never committed.

use attention_svd::io::npy;
use std::io::Write;

use attention_svd::analysis::{AnalysisParams, analyze};

const SHAPE: [usize; 4] = [12, 12, 512, 512];

/// Peak resident set size of this process in bytes (Linux), if available.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Writes a C-order little-endian f32 `.npy` of row-stochastic matrices,
/// one head at a time (softmax of a deterministic pseudo-random logit field).
fn write_attention_file(path: &std::path::Path) -> u64 {
    let [l, h, n, m] = SHAPE;
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({l}, {h}, {n}, {m}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(b"\x93NUMPY\x01\x00").unwrap();
    f.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut row = vec![0f32; m];
    for _head in 0..l * h {
        for _i in 0..n {
            let mut sum = 0f64;
            for x in row.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                let e = (6.0 * u).exp();
                *x = e as f32;
                sum += e;
            }
            for x in row.iter_mut() {
                *x = (f64::from(*x) / sum) as f32;
                f.write_all(&x.to_le_bytes()).unwrap();
            }
        }
    }
    f.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn large_stack_is_analysed_within_twice_its_size() {
    let path =
        std::env::temp_dir().join(format!("attention_svd_memory_{}.npy", std::process::id()));
    let size = write_attention_file(&path);
    let before = peak_rss();
    let stack = npy::read_stack::<f32>(&path).unwrap();
    let report = analyze(&stack, AnalysisParams::default()).unwrap();
    drop(stack);
    std::fs::remove_file(&path).ok();
    assert_eq!(report.heads.len(), 144);
    assert!(report.heads.iter().all(|h| h.singular_values.len() == 512));
    assert!(report.heads.iter().all(|h| h.max_row_sum_deviation < 1e-5));
    if let (Some(before), Some(peak)) = (before, peak_rss()) {
        eprintln!(
            "file {:.1} MB; peak RSS {:.1} MB before reading, {:.1} MB after analysis ({:.2}× the file)",
            size as f64 / 1e6,
            before as f64 / 1e6,
            peak as f64 / 1e6,
            peak as f64 / size as f64
        );
        assert!(peak < 2 * size, "peak RSS {peak} ≥ 2 × {size}");
    }
}
