//! `attention-svd compress`: how far each head's KV cache can be cut at a
//! fidelity target, per method, fitted on calibration prompts and judged
//! on held-out ones (library: `attention_svd::compression`).

use std::io::Write;
use std::path::{Path, PathBuf};

use attention_svd::attention::{Mask, Scale};
use attention_svd::compression::{
    CompressionModel, Method, ModelCompression, Prompt, Target, model_fidelity,
};
use attention_svd::io::{Export, Role, Tensor};
use attention_svd::svd::Backend;

use crate::Failure;
use crate::args::CompressArgs;

/// One prompt's queries, keys and values.
struct Qkv {
    q: Tensor<f64>,
    k: Tensor<f64>,
    v: Tensor<f64>,
}

/// What the attention of an export is computed under.
#[derive(PartialEq)]
struct Setting {
    causal: bool,
    window: Option<usize>,
    scales: Vec<f64>,
    kv_group: Vec<usize>,
}

fn shipped(data: &Option<PathBuf>, name: &str) -> Result<PathBuf, Failure> {
    let dir = match data {
        Some(d) => d.clone(),
        None => std::env::var_os("ATTENTION_SVD_DATA")
            .map_or_else(|| PathBuf::from("data/minilm"), PathBuf::from),
    };
    let p = dir.join(format!("{name}.json"));
    if p.is_file() {
        Ok(p)
    } else {
        Err(Failure::input(format!(
            "{}: not found: run from a clone of the repository, pass --data DIR, or give \
             --calibrate and --evaluate exports",
            p.display()
        )))
    }
}

/// The prompts of the exports in `paths`, and their common setting.
fn load(paths: &[PathBuf]) -> Result<(Vec<Qkv>, Setting, String), Failure> {
    let mut prompts = Vec::new();
    let mut setting: Option<(Setting, &Path)> = None;
    let mut name = String::new();
    for path in paths {
        let export = Export::open(path)?;
        let side = &export.sidecar;
        let here = Setting {
            causal: side.model.causal,
            window: side.model.sliding_window,
            scales: side.model.scale.clone(),
            kv_group: side.kv_group.clone(),
        };
        match &setting {
            None => {
                name = side.model.name.clone();
                setting = Some((here, path));
            }
            Some((s, first)) if *s != here => {
                return Err(Failure::usage(format!(
                    "{} and {} record different masks, scales or head groupings: calibration \
                     and evaluation must come from one model",
                    first.display(),
                    path.display()
                )));
            }
            Some(_) => {}
        }
        let get = |role: Role| -> Result<Tensor<f64>, Failure> {
            export.tensor::<f64>(role)?.ok_or_else(|| {
                Failure::input(format!(
                    "{}: the export holds no `{}`: compression needs queries, keys and values",
                    path.display(),
                    role.key()
                ))
            })
        };
        let (q, k, v) = (get(Role::Q)?, get(Role::K)?, get(Role::V)?);
        for (b, p) in export.prompts().iter().enumerate() {
            let pick = |t: &Tensor<f64>| -> Result<Tensor<f64>, Failure> {
                let t = if side.batched { t.entry(b)? } else { t.clone() };
                let cols = attention_svd::HeadSource::shape(&t)[3];
                Ok(t.crop(p.n, cols)?)
            };
            prompts.push(Qkv {
                q: pick(&q)?,
                k: pick(&k)?,
                v: pick(&v)?,
            });
        }
    }
    let (setting, _) = setting.ok_or_else(|| Failure::usage("no exports given".into()))?;
    Ok((prompts, setting, name))
}

/// Runs the subcommand.
pub fn run(out: &mut impl Write, a: &CompressArgs, backend: Backend) -> Result<(), crate::Stop> {
    let target = match (a.max_mean_tv, a.max_output_error) {
        (Some(tv), Some(o)) => Target::both(tv, o),
        (Some(tv), None) => Target::mean_tv(tv),
        (None, o) => Target::output_error(o.unwrap_or(0.01)),
    }
    .map_err(|e| {
        let given: Vec<String> = [
            ("--max-mean-tv", a.max_mean_tv),
            ("--max-output-error", a.max_output_error),
        ]
        .iter()
        .filter_map(|(flag, v)| v.map(|v| format!("{flag} {v}")))
        .collect();
        Failure::usage(format!("the fidelity target ({}): {e}", given.join(", ")))
    })?;
    let calibrate = if a.calibrate.is_empty() {
        vec![shipped(&a.data, "bread_n64")?]
    } else {
        a.calibrate.clone()
    };
    let evaluate = if a.evaluate.is_empty() {
        vec![shipped(&a.data, "glacier_n128")?]
    } else {
        a.evaluate.clone()
    };
    let (cal, s_cal, model_name) = load(&calibrate)?;
    let (eval, s_eval, _) = load(&evaluate)?;
    if s_cal != s_eval {
        return Err(Failure::usage(
            "the calibration and evaluation exports record different masks, scales or head \
             groupings: they must come from one model"
                .into(),
        )
        .into());
    }
    let mask = match (s_cal.causal, s_cal.window) {
        (true, Some(w)) => Mask::sliding_window(w),
        (true, None) => Mask::causal(),
        (false, _) => Mask::none(),
    };
    let mut model = CompressionModel::new(prompts(&cal)?, prompts(&eval)?, mask, Scale::default())?;
    if !s_cal.scales.is_empty() {
        model = model.layer_scales(s_cal.scales.iter().map(|&s| Scale::fixed(s)).collect())?;
    }
    if !s_cal.kv_group.is_empty() {
        model = model.kv_group(s_cal.kv_group.clone())?;
    }
    let sources = format!(
        "calibrated on {}, evaluated on {}",
        list(&calibrate),
        list(&evaluate)
    );
    let report =
        model_fidelity(&model, &Method::ALL, target, backend).map_err(crate::of_input(&sources))?;
    print(
        out,
        &report,
        &model_name,
        &calibrate,
        &evaluate,
        a.layers_only,
    )?;
    let mut wrote = Vec::new();
    if let Some(path) = &a.json {
        crate::write_file(path, |w| {
            serde_json::to_writer_pretty(&mut *w, &report).map_err(std::io::Error::other)?;
            writeln!(w)
        })?;
        wrote.push(path);
    }
    if let Some(path) = &a.csv {
        crate::write_file(path, |w| report.write_curves_csv(w))?;
        wrote.push(path);
    }
    if let Some(path) = &a.plot {
        let title = format!(
            "{model_name}: fitted on {}, judged on {}",
            names(&calibrate),
            names(&evaluate)
        );
        let svg = crate::plots::compression(&report, &title)?;
        crate::write_file(path, |w| w.write_all(svg.as_bytes()))?;
        wrote.push(path);
    }
    for path in wrote {
        writeln!(out, "wrote {}", path.display())?;
    }
    Ok(())
}

fn prompts(v: &[Qkv]) -> Result<Vec<Prompt<'_, Tensor<f64>>>, Failure> {
    v.iter()
        .map(|p| Ok(Prompt::new(&p.q, &p.k, &p.v)?))
        .collect()
}

fn names(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| {
            p.file_stem().map_or_else(
                || p.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn target_text(t: &Target) -> String {
    let mut parts = Vec::new();
    if let Some(tv) = t.mean_tv {
        parts.push(format!("mean total variation ≤ {tv}"));
    }
    if let Some(o) = t.output_error {
        parts.push(format!("output error ‖AV − ÃṼ‖_F/‖AV‖_F ≤ {o}"));
    }
    parts.join(" and ")
}

fn rank(r: Option<usize>) -> String {
    r.map_or_else(|| "—".into(), |r| r.to_string())
}

fn print(
    out: &mut impl Write,
    r: &ModelCompression,
    model: &str,
    calibrate: &[PathBuf],
    evaluate: &[PathBuf],
    layers_only: bool,
) -> std::io::Result<()> {
    writeln!(
        out,
        "attention-svd compress: {model}, fitted on {} and judged on {} (held-out)\n  target: {}",
        names(calibrate),
        names(evaluate),
        target_text(&r.target)
    )?;
    writeln!(
        out,
        "\nper layer, per method: heads meeting the target held-out / all, the largest r they \
         need, mean KV-cache share saved (a head that never meets it saves 0):"
    )?;
    let heads_per_layer = r
        .heads
        .iter()
        .filter(|h| h.layer == r.heads[0].layer)
        .count();
    write!(out, "{:>5}", "layer")?;
    for m in &r.methods {
        write!(out, "  {:>26}", m.name())?;
    }
    writeln!(out)?;
    for l in &r.layers {
        write!(out, "{:>5}", l.layer)?;
        for m in &l.methods {
            let saved = m
                .mean_memory_saved
                .map_or_else(|| "—".into(), |s| format!("{:.0} %", 100.0 * s));
            let cell = format!(
                "{}/{} r≤{} {}",
                m.heads_meeting,
                heads_per_layer,
                rank(m.max_rank),
                saved
            );
            write!(out, "  {cell:>26}")?;
        }
        writeln!(out)?;
    }
    if layers_only {
        return Ok(());
    }
    writeln!(
        out,
        "\nper head: the smallest r meeting the target, held-out (in-sample), per method:"
    )?;
    write!(out, "{:>5} {:>4} {:>3}", "layer", "head", "kv")?;
    for m in &r.methods {
        write!(out, "  {:>20}", m.name())?;
    }
    writeln!(out)?;
    for h in &r.heads {
        write!(out, "{:>5} {:>4} {:>3}", h.layer, h.head, h.kv_head)?;
        for n in &h.needed {
            let cell = format!("{} ({})", rank(n.held_out), rank(n.in_sample));
            write!(out, "  {cell:>20}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Paths for a message, joined with commas.
fn list(paths: &[std::path::PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
