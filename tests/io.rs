//! `io::Tensor` and `io::Export`: the formats and dtypes exporters write
//! (f16/bf16/f32/f64 `.npy` and `.safetensors`, batches), reading one head
//! at a time, and a typed, file-naming error for every hostile file.

use std::path::PathBuf;

use attention_svd::attention::{Mask, QkAttention, Scale};
use attention_svd::io::{Export, Format, Role, Tensor};
use attention_svd::{Error, HeadSource, Precision};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const MINILM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/minilm");

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("attention_svd_io_{}_{name}", std::process::id()))
}

/// A safetensors file holding `tensors` (name, dtype, shape, bytes).
fn safetensors(tensors: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let begin = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            (*name).into(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [begin, data.len()]}),
        );
    }
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&data);
    out
}

#[track_caller]
fn problem<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::File { problem, .. }) => problem,
        other => panic!("expected a file error, got {other:?}"),
    }
}

mod formats {
    use super::*;

    #[test]
    fn half_and_bfloat16_safetensors_decode_exactly() {
        // 1.0, -2.0, 0.5, 65504 in f16; 1.0, -3.0, 0.5, 2.0 in bf16.
        let f16: Vec<u8> = [0x3c00u16, 0xc000, 0x3800, 0x7bff]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let bf16: Vec<u8> = [0x3f80u16, 0xc040, 0x3f00, 0x4000]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let p = temp("half.safetensors");
        std::fs::write(
            &p,
            safetensors(&[("a", "F16", &[2, 2], f16), ("b", "BF16", &[2, 2], bf16)]),
        )
        .unwrap();
        let a = Tensor::<f64>::open(&p, Some("a")).unwrap();
        assert_eq!(a.precision(), Precision::F16);
        let m = a.head(0, 0).unwrap();
        assert_eq!(
            (m[(0, 0)], m[(0, 1)], m[(1, 0)], m[(1, 1)]),
            (1.0, -2.0, 0.5, 65504.0)
        );
        let b = Tensor::<f32>::open(&p, Some("b")).unwrap();
        assert_eq!(b.precision(), Precision::BF16);
        assert_eq!(b.head(0, 0).unwrap()[(0, 1)], -3.0);
        // Two tensors and no name: the names are listed.
        let msg = problem(Tensor::<f64>::open(&p, None));
        assert!(msg.contains("`a`") && msg.contains("`b`"), "{msg}");
        let msg = problem(Tensor::<f64>::open(&p, Some("c")));
        assert!(msg.contains("no tensor `c`"), "{msg}");
        std::fs::remove_file(p).ok();
    }

    #[test]
    fn the_exporters_f16_safetensors_matches_its_npy_twin_to_half_precision() {
        // Same model and prompt, stored as f16 safetensors and as f32 npy
        // (the first prompt of the batch fixture).
        let half = Export::open(format!("{FIXTURES}/tiny_llama_gqa/tiny_llama_gqa.json")).unwrap();
        let full =
            Export::open(format!("{FIXTURES}/tiny_llama_batch/tiny_llama_batch.json")).unwrap();
        let a = half.tensor::<f64>(Role::Attn).unwrap().unwrap();
        let n = full.prompts()[0].n;
        let b = full
            .tensor::<f64>(Role::Attn)
            .unwrap()
            .unwrap()
            .entry(0)
            .unwrap()
            .crop(n, n)
            .unwrap();
        assert_eq!(a.shape(), b.shape());
        for l in 0..2 {
            for h in 0..4 {
                let d = (a.head(l, h).unwrap() - b.head(l, h).unwrap()).amax();
                // Probabilities ≤ 1 rounded to f16: half an ulp of 1 is 2⁻¹¹.
                assert!(d <= 2f64.powi(-11) + 1e-6, "layer {l} head {h}: {d}");
            }
        }
    }

    #[test]
    fn streams_read_the_same_values_as_files() {
        let path = format!("{MINILM}/lighthouse_n16_attn.npy");
        let file = Tensor::<f64>::open(&path, None).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let stream =
            Tensor::<f64>::read("stdin", Format::Npy, &mut bytes.as_slice(), None).unwrap();
        assert_eq!(file.shape(), stream.shape());
        assert_eq!(file.head(5, 11).unwrap(), stream.head(5, 11).unwrap());
        // Cut short: the stream says so instead of allocating the promise.
        let msg = problem(Tensor::<f64>::read(
            "stdin",
            Format::Npy,
            &mut &bytes[..bytes.len() / 2],
            None,
        ));
        assert!(msg.contains("truncated"), "{msg}");
    }

    #[test]
    fn npz_members_stored_or_deflated_read_like_their_npy() {
        let npy = Tensor::<f64>::open(format!("{MINILM}/lighthouse_n16_attn.npy"), None).unwrap();
        let stored =
            Tensor::<f64>::open(format!("{FIXTURES}/npz/stored.npz"), Some("attn")).unwrap();
        let deflated = Tensor::<f64>::open(format!("{FIXTURES}/npz/deflated.npz"), None).unwrap();
        for t in [&stored, &deflated] {
            assert_eq!(t.shape(), npy.shape());
            assert_eq!(t.head(3, 7).unwrap(), npy.head(3, 7).unwrap());
        }
        let q = Tensor::<f64>::open(format!("{FIXTURES}/npz/stored.npz"), Some("q.npy")).unwrap();
        assert_eq!(q.shape(), [6, 12, 16, 32]);
        let msg = problem(Tensor::<f64>::open(
            format!("{FIXTURES}/npz/stored.npz"),
            None,
        ));
        assert!(msg.contains("`attn`, `q`"), "{msg}");
        let msg = problem(Tensor::<f64>::open(
            format!("{FIXTURES}/npz/stored.npz"),
            Some("v"),
        ));
        assert!(msg.contains("no array `v`"), "{msg}");
        // Cut the archive short: its directory is gone, and it says so.
        let bytes = std::fs::read(format!("{FIXTURES}/npz/stored.npz")).unwrap();
        let p = temp("cut.npz");
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let msg = problem(Tensor::<f64>::open(&p, None));
        assert!(msg.contains("not a .npz archive"), "{msg}");
        std::fs::remove_file(p).ok();
    }

    #[test]
    fn batches_give_entries_and_crops() {
        let e = Export::open(format!("{FIXTURES}/tiny_llama_batch/tiny_llama_batch.json")).unwrap();
        let q = e.tensor::<f64>(Role::Q).unwrap().unwrap();
        assert_eq!(q.batch(), Some(2));
        assert!(matches!(q.head(0, 0), Err(Error::File { .. })));
        let second = q.entry(1).unwrap().crop(e.prompts()[1].n, 16).unwrap();
        assert_eq!(second.shape(), [2, 4, 7, 16]);
        assert!(second.entry(0).is_err());
        assert!(q.entry(2).is_err());
        assert!(second.crop(8, 16).is_err());
        assert!(second.crop(0, 1).is_err());
    }
}

mod sidecars {
    use super::*;

    #[test]
    fn shipped_and_exported_sidecars_describe_their_models() {
        let m = Export::open(format!("{MINILM}/bread_n64.json")).unwrap();
        let s = &m.sidecar;
        assert_eq!(
            (s.model.layers, s.model.heads, s.model.kv_heads),
            (6, 12, 12)
        );
        assert!(!s.model.causal);
        assert_eq!(m.prompts()[0].tokens.as_ref().unwrap().len(), 64);
        assert_eq!(
            m.tensor::<f32>(Role::V).unwrap().unwrap().shape(),
            [6, 12, 64, 32]
        );
        let g = Export::open(format!("{FIXTURES}/tiny_llama_gqa/tiny_llama_gqa.json")).unwrap();
        assert!(g.sidecar.model.causal);
        assert_eq!(g.sidecar.kv_group, vec![0, 0, 1, 1]);
        assert_eq!(g.tensor::<f64>(Role::K).unwrap().unwrap().shape()[1], 2);
        let w = Export::open(format!(
            "{FIXTURES}/tiny_mistral_window/tiny_mistral_window.json"
        ))
        .unwrap();
        assert_eq!(w.sidecar.model.sliding_window, Some(6));
        // glacier ships no attention: the role is absent, not an error.
        let glacier = Export::open(format!("{MINILM}/glacier_n128.json")).unwrap();
        assert!(glacier.tensor::<f64>(Role::Attn).unwrap().is_none());
    }

    /// softmax(s·Q K[kv_group]ᵀ + M), with the scale, grouping and mask the
    /// sidecar records, reproduces the model's own attention.
    #[track_caller]
    fn recomputes(sidecar: &str, mask: Mask<f64>, entry: Option<usize>, tol: f64) {
        let e = Export::open(sidecar).unwrap();
        let n = e.prompts()[entry.unwrap_or(0)].n;
        let pick = |role| {
            let t = e.tensor::<f64>(role).unwrap().unwrap();
            let t = match entry {
                Some(b) => t.entry(b).unwrap(),
                None => t,
            };
            let cols = t.shape()[3];
            t.crop(n, if role == Role::Attn { n } else { cols })
                .unwrap()
        };
        let (a, q, k) = (pick(Role::Attn), pick(Role::Q), pick(Role::K));
        let scales = e
            .sidecar
            .model
            .scale
            .iter()
            .map(|&s| Scale::fixed(s))
            .collect();
        let qk = QkAttention::new(&q, &k, mask, Scale::default())
            .unwrap()
            .layer_scales(scales)
            .unwrap()
            .kv_group(e.sidecar.kv_group.clone())
            .unwrap();
        let [l, h, _, _] = a.shape();
        for layer in 0..l {
            for head in 0..h {
                let d = (qk.head(layer, head).unwrap() - a.head(layer, head).unwrap()).amax();
                assert!(d <= tol, "{sidecar}: layer {layer} head {head}: {d:e}");
            }
        }
    }

    #[test]
    fn queries_and_keys_reproduce_the_exported_attention_under_the_recorded_mask() {
        // GQA + causal (both prompts of a padded batch), and a sliding window.
        recomputes(
            &format!("{FIXTURES}/tiny_llama_batch/tiny_llama_batch.json"),
            Mask::causal(),
            Some(0),
            1e-5,
        );
        recomputes(
            &format!("{FIXTURES}/tiny_llama_batch/tiny_llama_batch.json"),
            Mask::causal(),
            Some(1),
            1e-5,
        );
        recomputes(
            &format!("{FIXTURES}/tiny_mistral_window/tiny_mistral_window.json"),
            Mask::sliding_window(6),
            None,
            1e-5,
        );
        // f16 storage: q and k carry 2⁻¹¹ relative rounding, which moves
        // logits of this size by a few 10⁻³.
        recomputes(
            &format!("{FIXTURES}/tiny_llama_gqa/tiny_llama_gqa.json"),
            Mask::causal(),
            None,
            2e-2,
        );
        recomputes(
            &format!("{MINILM}/bread_n64.json"),
            Mask::none(),
            None,
            1e-6,
        );
    }

    #[test]
    fn inconsistent_sidecars_are_refused_with_the_reason() {
        let base: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{MINILM}/lighthouse_n16.json")).unwrap(),
        )
        .unwrap();
        let dir = temp("sidecars");
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["lighthouse_n16_attn.npy", "lighthouse_n16_q.npy"] {
            std::fs::copy(format!("{MINILM}/{f}"), dir.join(f)).unwrap();
        }
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "version",
                Box::new(|v| v["version"] = 2.into()),
                "version 2",
            ),
            (
                "format",
                Box::new(|v| v["format"] = "x".into()),
                "not an export sidecar",
            ),
            (
                "kv_group",
                Box::new(|v| v["kv_group"][0] = 12.into()),
                "kv_group",
            ),
            (
                "scale",
                Box::new(|v| v["model"]["scale"] = serde_json::json!([0.1])),
                "logit scales",
            ),
            (
                "tokens",
                Box::new(|v| v["prompts"][0]["n"] = 15.into()),
                "tokens for n = 15",
            ),
            (
                "escape",
                Box::new(|v| v["arrays"]["attn"]["file"] = "../x.npy".into()),
                "inside the sidecar's folder",
            ),
            (
                "prompts",
                Box::new(|v| v["prompts"] = serde_json::json!([])),
                "no prompts",
            ),
            (
                "heads",
                Box::new(|v| v["model"]["kv_heads"] = 5.into()),
                "cannot share",
            ),
        ];
        for (name, edit, expected) in cases {
            let mut v = base.clone();
            edit(&mut v);
            let p = dir.join(format!("{name}.json"));
            std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
            let msg = problem(Export::open(&p));
            assert!(msg.contains(expected), "{name}: {msg}");
        }
        // An array whose shape contradicts the sidecar: named with both.
        let mut v = base.clone();
        v["arrays"]["attn"]["file"] = "lighthouse_n16_q.npy".into();
        let p = dir.join("shape.json");
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        let msg = problem(Export::open(&p).unwrap().tensor::<f64>(Role::Attn));
        assert!(msg.contains("does not fit the sidecar"), "{msg}");
        std::fs::remove_dir_all(dir).ok();
    }
}

mod hostile {
    use super::*;

    fn open_bytes(name: &str, bytes: &[u8]) -> String {
        let p = temp(name);
        std::fs::write(&p, bytes).unwrap();
        let msg = problem(Tensor::<f64>::open(&p, None));
        std::fs::remove_file(p).ok();
        msg
    }

    #[test]
    fn lying_safetensors_headers_cost_nothing() {
        // A header length beyond the cap, beyond the file, offsets beyond
        // the data, a shape that does not fill its bytes, a huge shape.
        let mut huge = (u64::MAX).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(open_bytes("cap.safetensors", &huge).contains("larger than"));
        let mut short = 1000u64.to_le_bytes().to_vec();
        short.extend_from_slice(b"{}");
        assert!(open_bytes("short.safetensors", &short).contains("truncated"));
        let mut bytes = safetensors(&[("a", "F32", &[1, 1], vec![0; 4])]);
        bytes.truncate(bytes.len() - 2);
        assert!(open_bytes("cut.safetensors", &bytes).contains("truncated"));
        let bytes = safetensors(&[("a", "F32", &[2, 2], vec![0; 4])]);
        assert!(open_bytes("fill.safetensors", &bytes).contains("does not fill"));
        let bytes = safetensors(&[("a", "F32", &[1 << 40, 1 << 40], vec![0; 4])]);
        assert!(open_bytes("big.safetensors", &bytes).contains("does not fill"));
        // Found by the `io` fuzz target: offsets near u64::MAX overflowed
        // once the header length was added (a stream cannot check them
        // against a file length first).
        let mut header = serde_json::Map::new();
        header.insert(
            "a".into(),
            serde_json::json!({"dtype": "U8", "shape": [1], "data_offsets": [u64::MAX - 1, u64::MAX]}),
        );
        let json = serde_json::to_vec(&header).unwrap();
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&json);
        let msg = problem(Tensor::<f64>::read(
            "stdin",
            Format::Safetensors,
            &mut bytes.as_slice(),
            None,
        ));
        assert!(msg.contains("beyond the end of any file"), "{msg}");
        let bytes = safetensors(&[("a", "I64", &[1, 1], vec![0; 8])]);
        assert!(open_bytes("int.safetensors", &bytes).contains("unsupported dtype I64"));
    }

    #[test]
    fn npy_files_longer_than_their_header_says_are_refused() {
        let bytes = std::fs::read(format!("{MINILM}/lighthouse_n16_sv.npy")).unwrap();
        let mut long = bytes.clone();
        long.extend_from_slice(&[0; 16]);
        let msg = open_bytes("trailing.npy", &long);
        assert!(msg.contains("16 bytes after the data"), "{msg}");
        // A header whose length field is 8 bytes short would read its own
        // padding as data: the file is then 8 bytes too long for it.
        let mut short = bytes.clone();
        let len = u16::from_le_bytes([short[8], short[9]]) - 8;
        short[8..10].copy_from_slice(&len.to_le_bytes());
        let msg = open_bytes("short_header.npy", &short);
        assert!(msg.contains("8 bytes after the data"), "{msg}");
        // A long malformed header is not echoed whole.
        let mut header = format!("{{'descr': '<f4', 'junk': '{}'}}", "x".repeat(5000));
        header.push('\n');
        let mut f = b"\x93NUMPY\x01\x00".to_vec();
        f.extend_from_slice(&(header.len() as u16).to_le_bytes());
        f.extend_from_slice(header.as_bytes());
        let msg = open_bytes("long_header.npy", &f);
        assert!(msg.len() < 400, "{} bytes: {msg}", msg.len());
    }

    #[test]
    fn refused_formats_say_what_to_do_instead() {
        assert!(open_bytes("x.pt", b"\x80\x02").contains("pickles are not read"));
        assert!(open_bytes("x.npz", b"PK\x03\x04").contains("not a .npz archive"));
        assert!(open_bytes("x.dat", b"hello world, no magic").contains("neither"));
    }

    #[test]
    fn non_finite_values_are_found_when_their_head_is_read() {
        let mut vals = [0.5f32; 8];
        vals[6] = f32::INFINITY;
        let data: Vec<u8> = vals.iter().flat_map(|x| x.to_le_bytes()).collect();
        let p = temp("inf.safetensors");
        std::fs::write(&p, safetensors(&[("a", "F32", &[2, 2, 2], data)])).unwrap();
        let t = Tensor::<f64>::open(&p, None).unwrap();
        assert!(t.head(0, 0).is_ok());
        let msg = problem(t.head(0, 1));
        assert!(msg.contains("non-finite value at index [1, 1, 0]"), "{msg}");
        std::fs::remove_file(p).ok();
    }
}
