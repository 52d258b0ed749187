//! The `attention-svd` binary as a user runs it: help, exit codes, one-line
//! errors, a closed pipe, the sidecar's mask, and the files it writes.

use std::io::Read;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_attention-svd");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Makes a FIFO at `path`; `false` (and a note) where `mkfifo` is missing.
#[cfg(unix)]
fn mkfifo(path: &std::path::Path) -> bool {
    let made = Command::new("mkfifo").arg(path).status();
    let ok = made.is_ok_and(|s| s.success());
    if !ok {
        eprintln!("mkfifo unavailable: skipped");
    }
    ok
}

mod usage {
    use super::*;

    #[test]
    fn help_lists_every_subcommand_and_exits_zero() {
        let (code, out, _) = run(&["--help"]);
        assert_eq!(code, 0);
        for word in ["analyze", "sweep", "merge"] {
            assert!(out.contains(word), "{out}");
        }
        let (code, out, _) = run(&["analyze", "--help"]);
        assert_eq!(code, 0);
        assert!(
            out.contains("--mask") && out.contains("[default: auto]"),
            "{out}"
        );
    }

    #[test]
    fn wrong_flags_and_values_are_usage_errors() {
        let (code, _, err) = run(&["analyze", "--bogus"]);
        assert_eq!(code, 2, "{err}");
        let (code, _, err) = run(&["analyze", "--mask", "diagonal"]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--mask must be"), "{err}");
        let (code, _, err) = run(&["analyze", "--input", "nope"]);
        assert_eq!(code, 2, "{err}");
        let (code, _, err) = run(&["compress", "--max-output-error", "2"]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("--max-output-error 2") && err.contains("(0, 1)"),
            "{err}"
        );
    }
}

mod inputs {
    use super::*;

    #[test]
    fn the_default_run_analyses_the_shipped_data_with_its_names() {
        let (code, out, err) = run(&["analyze", "--layers-only"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("sentence-transformers/all-MiniLM-L6-v2"),
            "{out}"
        );
        assert!(out.contains("bread_n64") && out.contains("mask none (from the sidecar)"));
    }

    #[test]
    fn bad_files_get_one_line_and_exit_three() {
        let dir = std::env::temp_dir().join(format!("attention_svd_cli_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = std::fs::read(format!("{ROOT}/data/minilm/bread_n64_attn.npy")).unwrap();
        let cut = dir.join("cut.npy");
        std::fs::write(&cut, &bytes[..5000]).unwrap();
        let (code, out, err) = run(&["analyze", cut.to_str().unwrap()]);
        assert_eq!(code, 3, "{err}");
        assert!(out.is_empty());
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("truncated"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_decoders_queries_get_the_causal_mask_its_sidecar_records() {
        let d = "tests/data/tiny_mistral_window";
        let (code, out, err) = run(&[
            "analyze",
            "--q",
            &format!("{d}/tiny_mistral_window_q.npy"),
            "--k",
            &format!("{d}/tiny_mistral_window_k.npy"),
            "--layers-only",
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("mask window:6 (from the sidecar)"), "{out}");
        // Contradicting it is allowed, with a warning.
        let (code, _, err) = run(&[
            "analyze",
            &format!("{d}/tiny_mistral_window.json"),
            "--mask",
            "none",
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("differs from what the model used"), "{err}");
    }

    #[test]
    fn f16_safetensors_exports_and_batches_run() {
        let (code, out, err) = run(&["analyze", "tests/data/tiny_llama_gqa/tiny_llama_gqa.json"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("f16 data") && out.contains("causal (from the sidecar)"),
            "{out}"
        );
        let (code, out, err) = run(&["analyze", "data/minilm", "--layers-only"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("3 prompts") && out.contains("population per layer"),
            "{out}"
        );
        let (code, out, err) = run(&["analyze", "tests/data/tiny_llama_batch"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("2 prompts (n = 21, 7)"), "{out}");
    }
}

mod compress {
    use super::*;

    #[test]
    fn the_compression_report_runs_on_the_shipped_data() {
        let (code, out, err) = run(&["compress", "--layers-only"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("fitted on bread_n64 and judged on glacier_n128"),
            "{out}"
        );
        for m in [
            "key_only",
            "kq_svd",
            "values",
            "keys_and_values",
            "attention_truncation",
        ] {
            assert!(out.contains(m), "{out}");
        }
        let (code, _, err) = run(&["compress", "--max-output-error", "1.5"]);
        assert_eq!(code, 2, "{err}");
        // An export without values cannot be compressed: said, exit 3.
        let (code, _, err) = run(&[
            "compress",
            "--calibrate",
            "tests/data/tiny_llama_gqa/tiny_llama_gqa.json",
            "--evaluate",
            "data/minilm/bread_n64.json",
        ]);
        assert_ne!(code, 0, "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }

    /// `--csv` holds one row per (head, method, set, r) and agrees with the
    /// JSON; `--plot` is an SVG with a panel per layer.
    #[test]
    fn curves_as_csv_and_figure() {
        let dir =
            std::env::temp_dir().join(format!("attention_svd_cli_compress_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (csv, svg, json) = (dir.join("c.csv"), dir.join("c.svg"), dir.join("c.json"));
        let (code, out, err) = run(&[
            "compress",
            "--layers-only",
            "--csv",
            csv.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("wrote"), "{out}");
        let text = std::fs::read_to_string(&csv).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(
            header[..6],
            ["layer", "head", "kv_head", "method", "set", "rank"]
        );
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        // 72 heads × 5 methods × 2 sets × r = 1..=32.
        assert_eq!(rows.len(), 72 * 5 * 2 * 32);
        assert!(rows.iter().all(|r| r.len() == header.len()));
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let p = &report["heads"][0]["curves"][1]["held_out"]["points"][4];
        let row = rows
            .iter()
            .find(|r| {
                r[0] == "0" && r[1] == "0" && r[3] == "kq_svd" && r[4] == "held_out" && r[5] == "5"
            })
            .unwrap();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let x: f64 = row[col("output_error")].parse().unwrap();
        assert_eq!(
            x,
            p["output_error"].as_f64().unwrap(),
            "CSV and JSON hold the same figure"
        );
        let figure = std::fs::read_to_string(&svg).unwrap();
        assert!(
            figure.starts_with("<svg"),
            "{}",
            &figure[..figure.len().min(80)]
        );
        for l in 0..6 {
            assert!(figure.contains(&format!("layer {l}: held-out output error")));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

mod outputs {
    use super::*;

    #[test]
    fn a_closed_pipe_ends_quietly() {
        let mut child = Command::new(BIN)
            .args(["analyze", "--input", "all"])
            .current_dir(ROOT)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 64];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
        drop(child.stdout.take());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{err}");
        assert!(err.is_empty(), "{err}");
    }

    #[test]
    fn json_csv_and_figures_are_written() {
        let dir =
            std::env::temp_dir().join(format!("attention_svd_cli_out_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
        let (code, _, err) = run(&[
            "analyze",
            "--input",
            "lighthouse_n16",
            "--json",
            &p("r.json"),
            "--csv",
            &p("r.csv"),
            "--plot",
            &p("s.svg"),
            "--heatmap",
            &p("h.svg"),
        ]);
        assert_eq!(code, 0, "{err}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p("r.json")).unwrap()).unwrap();
        assert_eq!(
            json["model"]["name"],
            "sentence-transformers/all-MiniLM-L6-v2"
        );
        let csv = std::fs::read_to_string(p("r.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + 72, "a header and one row per head");
        for f in ["s.svg", "h.svg"] {
            let svg = std::fs::read_to_string(p(f)).unwrap();
            assert!(svg.contains("<svg") && svg.contains("layer"), "{f}");
        }
        let (code, _, err) = run(&["analyze", "--json", "/nonexistent/dir/r.json"]);
        assert_eq!(code, 4, "{err}");
        assert!(
            err.contains("/nonexistent/dir/r.json"),
            "the path is named: {err}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    /// An error inside the analysis names the file, the layer and the
    /// head: two layers of 1e300 overflow in their product (collapse).
    #[test]
    fn analysis_errors_name_the_file_layer_and_head() {
        use attention_svd::Stack;
        use attention_svd::io::npy;
        let p =
            std::env::temp_dir().join(format!("attention_svd_cli_huge_{}.npy", std::process::id()));
        npy::write_stack(&p, &Stack::new([2, 1, 4, 4], vec![1e300_f64; 32]).unwrap()).unwrap();
        let (code, out, err) = run(&["analyze", p.to_str().unwrap()]);
        std::fs::remove_file(&p).ok();
        assert_eq!(code, 1, "{err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains(p.to_str().unwrap())
                && err.contains("layer 1, head 0")
                && err.contains("overflows"),
            "{err}"
        );
    }

    /// A FIFO given as the input file is opened once and read as its data
    /// arrives.
    #[cfg(unix)]
    #[test]
    fn a_fifo_as_the_input_file_is_read_once() {
        let fifo =
            std::env::temp_dir().join(format!("attention_svd_cli_fifo_{}.npy", std::process::id()));
        std::fs::remove_file(&fifo).ok();
        if !mkfifo(&fifo) {
            return;
        }
        let bytes = std::fs::read(format!("{ROOT}/data/minilm/lighthouse_n16_attn.npy")).unwrap();
        let path = fifo.clone();
        let writer = std::thread::spawn(move || std::fs::write(path, bytes));
        let (code, out, err) = run(&["analyze", fifo.to_str().unwrap(), "--layers-only"]);
        writer.join().unwrap().unwrap();
        std::fs::remove_file(&fifo).ok();
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("16 tokens"), "{out}");
    }

    /// Every positional input is analysed (none silently dropped).
    #[test]
    fn every_positional_input_is_analysed() {
        let (code, out, err) = run(&[
            "analyze",
            "data/minilm/lighthouse_n16.json",
            "data/minilm/bread_n64.json",
            "--layers-only",
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("2 prompts (n = 16, 64)"), "{out}");
    }

    /// A FIFO named like a sidecar in an input folder is never opened (it
    /// would block): the folder has no exports, said at once, exit 3.
    #[cfg(unix)]
    #[test]
    fn a_fifo_in_an_input_folder_does_not_hang() {
        let dir =
            std::env::temp_dir().join(format!("attention_svd_cli_fifo_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("a.json");
        if !mkfifo(&fifo) {
            return;
        }
        let mut child = Command::new(BIN)
            .args(["analyze", dir.to_str().unwrap()])
            .current_dir(ROOT)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if start.elapsed() > std::time::Duration::from_secs(30) {
                child.kill().ok();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        std::fs::remove_dir_all(&dir).ok();
        let status = status.expect("the tool hung on a FIFO");
        assert_eq!(status.code(), Some(3));
    }
}
