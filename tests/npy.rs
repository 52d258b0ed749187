//! `.npy` input: every dtype/order/rank flavour `np.save` writes, and a
//! clear, file-naming error for every kind of bad file.

use attention_svd::io::npy;
use std::path::PathBuf;

use attention_svd::{Error, Stack};
use nalgebra::dmatrix;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("attention_svd_test_{}_{name}", std::process::id()))
}

/// A `.npy` file (format 1.0) with the given header fields and raw payload.
fn npy_bytes(descr: &str, fortran: bool, shape: &[usize], payload: &[u8]) -> Vec<u8> {
    let shape_str = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape_str}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    raw_npy(1, header.len() as u32, &header, payload)
}

/// Little-endian f8 bytes of `values`.
fn f8_le(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = temp(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[track_caller]
fn file_problem<T: std::fmt::Debug>(result: Result<Stack<T>, Error>) -> String {
    match result {
        Err(Error::File { path, problem }) => {
            assert!(
                path.contains("attention_svd_test_"),
                "path not named: {path}"
            );
            problem
        }
        other => panic!("expected a file error, got {other:?}"),
    }
}

#[test]
fn round_trip_in_both_precisions() {
    let m = dmatrix![0.25_f32, 0.75, 0.0; 0.5, 0.25, 0.25];
    let s = Stack::from_matrices(1, 2, &[m.clone(), m.clone() * 2.0]).unwrap();
    let p = temp("round_trip.npy");
    npy::write_stack(&p, &s).unwrap();
    assert_eq!(npy::read_stack::<f32>(&p).unwrap(), s);
    let s64 = s.cast::<f64>().unwrap();
    assert_eq!(npy::read_stack::<f64>(&p).unwrap(), s64);
    npy::write_stack(&p, &s64).unwrap();
    assert_eq!(npy::read_stack::<f64>(&p).unwrap(), s64);
    std::fs::remove_file(p).ok();
}

#[test]
fn big_endian_fortran_and_lower_ranks() {
    // The 2×3 matrix [[1, 2, 3], [4, 5, 6]] as big-endian f8 in Fortran order:
    // stored column by column, 1 4 2 5 3 6.
    let payload: Vec<u8> = [1.0f64, 4.0, 2.0, 5.0, 3.0, 6.0]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    let p = write(
        "be_f8_fortran.npy",
        &npy_bytes(">f8", true, &[2, 3], &payload),
    );
    let s = npy::read_stack::<f64>(&p).unwrap();
    assert_eq!(s.shape(), [1, 1, 2, 3]);
    assert_eq!(
        s.head(0, 0).unwrap().to_dmatrix(),
        dmatrix![1.0, 2.0, 3.0; 4.0, 5.0, 6.0]
    );
    // Rank 3, little-endian f4, Fortran order: shape [2, 1, 2], element
    // (h, i, j) = 10h + j stored with h fastest: (0,0,0) (1,0,0) (0,0,1) (1,0,1).
    let payload: Vec<u8> = [0.0f32, 10.0, 1.0, 11.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let p3 = write(
        "le_f4_rank3.npy",
        &npy_bytes("<f4", true, &[2, 1, 2], &payload),
    );
    let s = npy::read_stack::<f32>(&p3).unwrap();
    assert_eq!(s.shape(), [1, 2, 1, 2]);
    assert_eq!(s.head(0, 1).unwrap().to_dmatrix(), dmatrix![10.0_f32, 11.0]);
    // Rank 4, big-endian f4, C order.
    let payload: Vec<u8> = (0..8).flat_map(|x| (x as f32).to_be_bytes()).collect();
    let p4 = write(
        "be_f4_rank4.npy",
        &npy_bytes(">f4", false, &[2, 2, 1, 2], &payload),
    );
    let s = npy::read_stack::<f64>(&p4).unwrap();
    assert_eq!(s.head(1, 0).unwrap().to_dmatrix(), dmatrix![4.0, 5.0]);
    for f in [p, p3, p4] {
        std::fs::remove_file(f).ok();
    }
}

#[test]
fn bad_files_get_clear_errors() {
    let ok_payload: Vec<u8> = (0..6).flat_map(|x| (x as f32).to_le_bytes()).collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not_npy.npy",
            b"this is not a numpy file at all".to_vec(),
            "not a .npy file",
        ),
        ("empty_file.npy", Vec::new(), "not a .npy file"),
        (
            "truncated.npy",
            npy_bytes("<f4", false, &[2, 3], &ok_payload[..10]),
            "truncated",
        ),
        (
            "rank1.npy",
            npy_bytes("<f4", false, &[6], &ok_payload),
            "rank 1",
        ),
        (
            "rank5.npy",
            npy_bytes("<f4", false, &[1, 1, 1, 2, 3], &ok_payload),
            "rank 5",
        ),
        (
            "int.npy",
            npy_bytes("<i4", false, &[2, 3], &ok_payload),
            "unsupported dtype",
        ),
        (
            "zero_dim.npy",
            npy_bytes("<f4", false, &[0, 3], &[]),
            "empty",
        ),
    ];
    for (name, bytes, expected) in cases {
        let p = write(name, &bytes);
        let problem = file_problem(npy::read_stack::<f64>(&p));
        assert!(problem.contains(expected), "{name}: {problem}");
        std::fs::remove_file(p).ok();
    }
    // NaN inside: its index is named.
    let mut vals = [0.5f32; 6];
    vals[4] = f32::NAN;
    let payload: Vec<u8> = vals.iter().flat_map(|x| x.to_le_bytes()).collect();
    let p = write("nan.npy", &npy_bytes("<f4", false, &[2, 3], &payload));
    let problem = file_problem(npy::read_stack::<f64>(&p));
    assert!(
        problem.contains("non-finite value at index [1, 1]"),
        "{problem}"
    );
    std::fs::remove_file(p).ok();
    // A missing file.
    let problem = file_problem(npy::read_stack::<f64>(temp("does_not_exist.npy")));
    assert!(problem.contains("cannot open"));
}

#[test]
fn queries_and_keys_must_fit() {
    let q = Stack::new([2, 3, 4, 8], vec![0.5f32; 2 * 3 * 4 * 8]).unwrap();
    let k_ok = Stack::new([2, 3, 6, 8], vec![0.25f32; 2 * 3 * 6 * 8]).unwrap();
    let k_bad = Stack::new([2, 3, 4, 16], vec![0.25f32; 2 * 3 * 4 * 16]).unwrap();
    let (pq, pk, pb) = (temp("q.npy"), temp("k.npy"), temp("k_bad.npy"));
    npy::write_stack(&pq, &q).unwrap();
    npy::write_stack(&pk, &k_ok).unwrap();
    npy::write_stack(&pb, &k_bad).unwrap();
    let (q2, k2) = npy::read_queries_keys::<f32>(&pq, &pk).unwrap();
    assert_eq!((q2.shape(), k2.shape()), ([2, 3, 4, 8], [2, 3, 6, 8]));
    match npy::read_queries_keys::<f32>(&pq, &pb) {
        Err(Error::File { path, problem }) => {
            assert!(path.ends_with("q.npy"));
            assert!(
                problem.contains("k_bad.npy") && problem.contains("do not fit"),
                "{problem}"
            );
        }
        other => panic!("{other:?}"),
    }
    for p in [pq, pk, pb] {
        std::fs::remove_file(p).ok();
    }
}

#[test]
fn stack_constructors_check_shapes() {
    assert!(matches!(
        Stack::new([1, 2, 2, 2], vec![0.0f64; 7]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Stack::<f64>::new([1, 0, 2, 2], vec![]),
        Err(Error::Empty { .. })
    ));
    let a = dmatrix![1.0_f64, 0.0];
    let b = dmatrix![1.0_f64; 0.0];
    assert!(matches!(
        Stack::from_matrices(1, 2, &[a.clone(), b]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Stack::from_matrices(2, 2, std::slice::from_ref(&a)),
        Err(Error::ShapeMismatch { .. })
    ));
    let s = Stack::from_matrices(1, 1, &[a]).unwrap();
    assert!(matches!(s.head(0, 1), Err(Error::InvalidParameter { .. })));
}

#[test]
fn absurd_shapes_are_rejected_before_allocating() {
    for (name, shape) in [
        ("huge_overflow.npy", vec![1usize << 62, 1 << 62]),
        ("huge_plausible.npy", vec![1usize << 20, 1 << 20]),
    ] {
        let p = write(name, &npy_bytes("<f8", false, &shape, &[0u8; 64]));
        let problem = file_problem(npy::read_stack::<f64>(&p));
        assert!(
            problem.contains("more elements") || problem.contains("truncated"),
            "{name}: {problem}"
        );
        std::fs::remove_file(p).ok();
    }
}

#[test]
fn values_out_of_range_of_the_target_type_are_named() {
    let p = write(
        "f8_big.npy",
        &npy_bytes("<f8", false, &[2, 2], &f8_le(&[0.5, 1e300, 0.25, 0.25])),
    );
    assert!(npy::read_stack::<f64>(&p).is_ok());
    match npy::read_stack::<f32>(&p) {
        Err(Error::File { problem, .. }) => {
            assert!(
                problem.contains("out of the range of f32") && problem.contains("[0, 1]"),
                "{problem}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        npy::file_precision(&p).unwrap(),
        attention_svd::Precision::F64
    );
    // A NaN in a Fortran-order file is reported at its array index.
    let payload: Vec<u8> = [0.5f32, f32::NAN, 0.25, 0.25]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let q = write(
        "f4_fortran_nan.npy",
        &npy_bytes("<f4", true, &[2, 2], &payload),
    );
    let problem = file_problem(npy::read_stack::<f64>(&q));
    assert!(
        problem.contains("non-finite value at index [1, 0]"),
        "{problem}"
    );
    for f in [p, q] {
        std::fs::remove_file(f).ok();
    }
}

/// Regressions found by `cargo fuzz` (fuzz/regressions/npy): shapes whose
/// element count or strides overflow 64 bits, including behind a zero
/// dimension, made npyz's header parser panic before our checks ran.
#[test]
fn overflowing_shapes_in_the_header_do_not_panic() {
    for (name, shape) in [
        ("fuzz_product.npy", vec![1usize << 32, 1 << 32]),
        ("fuzz_strides.npy", vec![0, 1 << 32, 1 << 32]),
    ] {
        let p = write(name, &npy_bytes("<f8", false, &shape, &[]));
        let problem = file_problem(npy::read_stack::<f64>(&p));
        // An array with a zero dimension is called empty, not huge.
        let expected = if shape.contains(&0) {
            "empty array"
        } else {
            "more elements"
        };
        assert!(problem.contains(expected), "{name}: {problem}");
        std::fs::remove_file(p).ok();
    }
}

/// Narrowing a file's values to f32 never flushes a nonzero value to 0:
/// 4e-201 in an f64 file is an error naming its index (the sibling of
/// `Stack::cast`'s underflow check), while 1e-40 (subnormal in f32, not 0)
/// is kept.
#[test]
fn values_underflowing_the_target_type_are_named() {
    let p = write(
        "f8_tiny.npy",
        &npy_bytes("<f8", false, &[2, 2], &f8_le(&[0.5, 0.25, 4e-201, 0.25])),
    );
    assert!(npy::read_stack::<f64>(&p).is_ok());
    let problem = file_problem(npy::read_stack::<f32>(&p));
    assert!(
        problem.contains("underflows to 0 in f32") && problem.contains("[1, 0]"),
        "{problem}"
    );
    let q = write(
        "f8_subnormal.npy",
        &npy_bytes("<f8", false, &[2, 2], &f8_le(&[0.5, 0.25, 1e-40, 0.25])),
    );
    let s = npy::read_stack::<f32>(&q).expect("representable in f32");
    assert!(s.as_slice()[2] > 0.0);
    for f in [p, q] {
        std::fs::remove_file(f).ok();
    }
}

/// Regressions found by `cargo fuzz` (fuzz/regressions/analysis): shape
/// arithmetic in `Stack` constructors overflowed in their error paths.
#[test]
fn stack_shape_overflow_is_an_error() {
    assert!(Stack::<f64>::new([usize::MAX, usize::MAX, 0, 0], vec![]).is_err());
    assert!(Stack::<f64>::new([1 << 32, 1 << 32, 2, 1], vec![]).is_err());
    let one = nalgebra::DMatrix::<f64>::zeros(1, 1);
    assert!(Stack::from_matrices(2, usize::MAX, &[one]).is_err());
}

/// A `.npy` file whose header text is `header` verbatim (format `version`,
/// its length field as given), followed by `payload`.
fn raw_npy(version: u8, len_field: u32, header: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(len_field as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&len_field.to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Headers built to cost time or memory, or to slip a huge shape past a
/// pre-check (issue: bounded under hostile input), are refused at once by
/// both entry points that read a header, with a message of bounded length
/// that says what is wrong.
#[test]
fn hostile_headers_are_refused_quickly_with_a_short_message() {
    let deep = |d: usize| format!("{}1{}", "[".repeat(d), "]".repeat(d));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "nested_value",
            format!(
                "{{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), 'x': {}}}",
                deep(20)
            ),
            "unknown key",
        ),
        (
            "nested_shape",
            format!(
                "{{'descr': '<f8', 'fortran_order': False, 'shape': {}}}",
                deep(4000)
            ),
            "shape",
        ),
        (
            "list_shape",
            "{'descr': '<f8', 'fortran_order': False, 'shape': [4294967296, 4294967296]}".into(),
            "shape",
        ),
        (
            "shape_in_a_string",
            "{'descr': \"<f8', 'shape': (1,)\", 'fortran_order': False, \
             'shape': (4294967296, 4294967296)}"
                .into(),
            "unsupported dtype",
        ),
        (
            "long_descr",
            format!(
                "{{'descr': '<{}', 'fortran_order': False, 'shape': (2, 2)}}",
                "x".repeat(60_000)
            ),
            "unsupported dtype",
        ),
        (
            "duplicate_shape",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), \
             'shape': (4294967296, 4294967296)}"
                .into(),
            "twice",
        ),
        (
            "second_dict",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2)} \
             {'shape': (4294967296,)}"
                .into(),
            "after the dict",
        ),
    ];
    for (name, header, expected) in cases {
        let p = write(
            &format!("{name}.npy"),
            &raw_npy(1, header.len() as u32, &header, &[0u8; 32]),
        );
        let started = std::time::Instant::now();
        let problem = file_problem(npy::read_stack::<f64>(&p));
        let precision = npy::file_precision(&p);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{name}: {:?}",
            started.elapsed()
        );
        assert!(problem.contains(expected), "{name}: {problem}");
        assert!(problem.len() < 400, "{name}: {} bytes", problem.len());
        assert!(
            matches!(precision, Err(Error::File { .. })),
            "{name}: {precision:?}"
        );
        std::fs::remove_file(p).ok();
    }
}

/// A header length field of 4 GiB (format 2) is refused from the 12-byte
/// preamble by `file_precision` as by `read_stack`, before any read of
/// that length.
#[test]
fn a_huge_header_length_is_refused_before_reading() {
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }\n";
    let p = write("len4g.npy", &raw_npy(2, u32::MAX, header, &[0u8; 8]));
    for problem in [
        file_problem(npy::read_stack::<f64>(&p)),
        match npy::file_precision(&p) {
            Err(Error::File { problem, .. }) => problem,
            other => panic!("{other:?}"),
        },
    ] {
        assert!(problem.contains("larger than the 65536"), "{problem}");
    }
    std::fs::remove_file(p).ok();
}

/// An honest header over a sparse 1 TiB file: opening it costs nothing
/// (only the header is read), and reading it whole is an error, not an
/// abort of the process.
#[test]
fn a_sparse_terabyte_file_is_an_error_not_an_abort() {
    use attention_svd::HeadSource;
    use attention_svd::io::Tensor;
    let shape = [1usize << 19, 1 << 18]; // 2^37 f64 values = 1 TiB
    let bytes = npy_bytes("<f8", false, &shape, &[]);
    let header_len = bytes.len() as u64;
    let p = write("sparse_tib.npy", &bytes);
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    if f.set_len(header_len + (1u64 << 40)).is_err() {
        // A file system without sparse files of this size: nothing to test.
        std::fs::remove_file(p).ok();
        return;
    }
    drop(f);
    let t = Tensor::<f64>::open(&p, None).expect("the header is honest");
    assert_eq!(t.shape(), [1, 1, 1 << 19, 1 << 18]);
    let problem = file_problem(npy::read_stack::<f64>(&p));
    assert!(
        problem.contains("more elements") || problem.contains("out of memory"),
        "{problem}"
    );
    assert!(matches!(t.head(0, 0), Err(Error::File { .. })));
    std::fs::remove_file(p).ok();
}
