//! Proof on real data: the shipped all-MiniLM-L6-v2 attention
//! (`data/minilm`, see its README for provenance).

use attention_svd::Precision;
use attention_svd::Stack;
use attention_svd::analysis::{AnalysisParams, analyze};
use attention_svd::attention::Mask;
use attention_svd::attention::Scale;
use attention_svd::attention::scaled_dot_product_stack;
use attention_svd::io::npy;
use attention_svd::stochastic::StochasticParams;
use attention_svd::stochastic::check_stochastic;
use attention_svd::svd::{Backend, singular_values};
use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/minilm");
/// Inputs whose model attention is shipped.
const WITH_ATTN: [&str; 2] = ["lighthouse_n16", "bread_n64"];

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{DATA}/manifest.json")).unwrap())
        .unwrap()
}

fn entry<'a>(m: &'a Value, name: &str) -> &'a Value {
    m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap()
}

fn attn(name: &str) -> Stack<f64> {
    npy::read_stack(format!("{DATA}/{name}_attn.npy")).unwrap()
}

fn reference_sv(name: &str) -> Stack<f64> {
    // [6, 12, n] is read as [1, 6, 12, n].
    npy::read_stack(format!("{DATA}/{name}_sv.npy")).unwrap()
}

#[test]
fn recomputed_attention_matches_the_model() {
    for name in WITH_ATTN {
        let (q, k) = npy::read_queries_keys::<f32>(
            format!("{DATA}/{name}_q.npy"),
            format!("{DATA}/{name}_k.npy"),
        )
        .unwrap();
        assert_eq!(q.shape()[..2], [6, 12]);
        let ours = scaled_dot_product_stack(&q, &k, &Mask::none(), Scale::default()).unwrap();
        let model: Stack<f32> = npy::read_stack(format!("{DATA}/{name}_attn.npy")).unwrap();
        assert_eq!(ours.shape(), model.shape());
        let max_abs = ours
            .as_slice()
            .iter()
            .zip(model.as_slice())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{name}: max |ours − model| over 72 heads = {max_abs:e}");
        assert!(max_abs <= 1e-5, "{name}: {max_abs:e}");
        for l in 0..6 {
            for h in 0..12 {
                check_stochastic(
                    &ours.head(l, h).unwrap().to_dmatrix(),
                    StochasticParams::row(),
                )
                .unwrap();
            }
        }
    }
}

#[test]
fn singular_values_match_lapack() {
    for name in WITH_ATTN {
        let a = attn(name);
        let sv = reference_sv(name);
        let [_, _, n, _] = a.shape();
        let mut worst = vec![0.0f64; Backend::all().len()];
        for l in 0..6 {
            for h in 0..12 {
                let m = a.head(l, h).unwrap().to_dmatrix();
                // The [6, 12, n] file reads as [1, 6, 12, n]: row h of layer l.
                let reference = sv.head(0, l).unwrap().to_dmatrix().row(h).transpose();
                let tol = 8.0 * n as f64 * f64::EPSILON * reference[0];
                for (b, &backend) in Backend::all().iter().enumerate() {
                    let s = singular_values(&m, backend).unwrap();
                    for (i, (x, y)) in s.iter().zip(reference.iter()).enumerate() {
                        let err = (x - y).abs();
                        worst[b] = worst[b].max(err / tol);
                        assert!(
                            err <= tol,
                            "{name} layer {l} head {h} σ{i} {backend:?}: {x} vs {y}"
                        );
                    }
                }
            }
        }
        let per_backend: Vec<String> = Backend::all()
            .iter()
            .zip(&worst)
            .map(|(b, w)| format!("{} {w:.3}", b.name()))
            .collect();
        eprintln!(
            "{name}: max |σ − σ_LAPACK| / (8·n·ε·σ₁): {}",
            per_backend.join(", ")
        );
    }
}

#[test]
fn metrics_match_the_manifest() {
    let m = manifest();
    for name in WITH_ATTN {
        let report = analyze(&attn(name), AnalysisParams::default()).unwrap();
        let metrics = &entry(&m, name)["metrics"];
        let get = |key: &str, l: usize, h: usize| metrics[key][l][h].as_f64().unwrap();
        for head in &report.heads {
            let (l, h) = (head.layer, head.head);
            for (key, ours) in [
                ("effective_rank", head.effective_rank),
                ("stable_rank", head.stable_rank),
            ] {
                let reference = get(key, l, h);
                assert!(
                    (ours - reference).abs() <= 1e-9 * reference,
                    "{name} {key} ({l}, {h}): {ours} vs {reference}"
                );
            }
            for (key, ours) in [
                ("numerical_rank", head.numerical_rank),
                ("energy_rank_0.9", head.energy_rank_90),
                ("energy_rank_0.99", head.energy_rank_99),
                ("energy_rank_0.999", head.energy_rank_999),
            ] {
                assert_eq!(ours as f64, get(key, l, h), "{name} {key} ({l}, {h})");
            }
            let rel = |a: f64, b: f64| (a - b).abs() / b;
            assert!(rel(head.sigma_max, get("sigma_max", l, h)) <= 1e-12);
            assert!(rel(head.frobenius_norm, get("frobenius_norm", l, h)) <= 1e-12);
            assert!((head.max_row_sum_deviation - get("max_row_sum_error", l, h)).abs() <= 1e-15);
        }
    }
}

#[test]
fn report_has_the_documented_json_layout() {
    let a = attn("lighthouse_n16");
    let report = analyze(&a, AnalysisParams::default().precision(Precision::F32)).unwrap();
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(v["precision"], "f32");
    assert_eq!(v["shape"], serde_json::json!([6, 12, 16, 16]));
    let heads = v["heads"].as_array().unwrap();
    assert_eq!(heads.len(), 72);
    for key in [
        "layer",
        "head",
        "n",
        "m",
        "singular_values",
        "sigma_max",
        "sigma_min",
        "noise_floor",
        "effective_rank",
        "stable_rank",
        "numerical_rank",
        "energy_rank_90",
        "energy_rank_99",
        "energy_rank_999",
        "max_row_sum_deviation",
    ] {
        assert!(heads.iter().all(|h| !h[key].is_null()), "missing {key}");
    }
    assert_eq!(heads[13]["layer"], 1);
    assert_eq!(heads[13]["head"], 1);
    assert_eq!(heads[0]["singular_values"].as_array().unwrap().len(), 16);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 6);
    for key in ["sigma_max", "effective_rank", "energy_rank_99"] {
        for stat in ["median", "min", "max"] {
            assert!(layers[0][key][stat].is_number(), "{key}.{stat}");
        }
    }
    // f32 arithmetic: the noise floor is σ₁·n·ε_f32.
    let h0 = report.head(0, 0).unwrap();
    let expected = h0.sigma_max * 16.0 * f32::EPSILON as f64;
    assert!((h0.noise_floor - expected).abs() <= 1e-6 * expected);
}

#[test]
fn f32_and_f64_analyses_agree_on_the_spectrum() {
    let a = attn("bread_n64");
    let r64 = analyze(&a, AnalysisParams::default()).unwrap();
    let r32 = analyze(&a, AnalysisParams::default().precision(Precision::F32)).unwrap();
    for (x, y) in r64.heads.iter().zip(&r32.heads) {
        let tol = 8.0 * 64.0 * f32::EPSILON as f64 * x.sigma_max;
        for (s, t) in x.singular_values.iter().zip(&y.singular_values) {
            assert!((s - t).abs() <= tol);
        }
        assert!((x.effective_rank - y.effective_rank).abs() <= 1e-3 * x.effective_rank);
    }
}

/// The n = 128 input ships no attention file: recomputed in f64 from the
/// shipped float32 queries and keys, its metrics still match the manifest
/// (computed from the model's float32 attention): energy ranks exactly,
/// effective and stable rank to 1e-6 relative (the recomputation differs
/// from the stored float32 probabilities by their rounding), and σ to
/// within the float32 rounding of the data, ε_f32·‖A‖_F.
#[test]
fn recomputed_glacier_matches_the_manifest() {
    let m = manifest();
    let metrics = &entry(&m, "glacier_n128")["metrics"];
    let (q, k) = npy::read_queries_keys::<f64>(
        format!("{DATA}/glacier_n128_q.npy"),
        format!("{DATA}/glacier_n128_k.npy"),
    )
    .unwrap();
    let a = scaled_dot_product_stack(&q, &k, &Mask::none(), Scale::default()).unwrap();
    let sv = reference_sv("glacier_n128");
    let report = analyze(&a, AnalysisParams::default()).unwrap();
    for head in &report.heads {
        let (l, h) = (head.layer, head.head);
        let get = |key: &str| metrics[key][l][h].as_f64().unwrap();
        for (key, ours) in [
            ("energy_rank_0.9", head.energy_rank_90),
            ("energy_rank_0.99", head.energy_rank_99),
            ("energy_rank_0.999", head.energy_rank_999),
        ] {
            assert_eq!(ours as f64, get(key), "{key} ({l}, {h})");
        }
        for (key, ours) in [
            ("effective_rank", head.effective_rank),
            ("stable_rank", head.stable_rank),
        ] {
            assert!(
                (ours - get(key)).abs() <= 1e-6 * get(key),
                "{key} ({l}, {h})"
            );
        }
        let reference = sv.head(0, l).unwrap().to_dmatrix().row(h).transpose();
        let tol = f64::from(f32::EPSILON) * head.frobenius_norm;
        for (x, y) in head.singular_values.iter().zip(reference.iter()) {
            assert!((x - y).abs() <= tol, "σ ({l}, {h}): {x} vs {y}");
        }
    }
}
