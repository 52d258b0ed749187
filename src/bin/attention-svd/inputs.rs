//! From the command line to a list of prompts to analyse: exports (JSON
//! sidecars), directories of them, raw attention arrays, or queries and
//! keys; the shipped MiniLM data by default.

use std::path::{Path, PathBuf};

use attention_svd::attention::{Mask, QkAttention, Scale};
use attention_svd::io::{Export, Role, Tensor};
use attention_svd::report::ModelInfo;
use attention_svd::{HeadSource, Precision, Result as LibResult};

use crate::args::InputArgs;
use crate::{Failure, warn};

/// Queries and keys of one prompt, with what the attention is computed
/// under.
pub struct Qk {
    pub q: Tensor<f64>,
    pub k: Tensor<f64>,
    pub mask: Mask<f64>,
    pub scales: Vec<Scale<f64>>,
    pub kv_group: Vec<usize>,
}

impl Qk {
    /// The attention softmax(s·QKᵀ + M), computed head by head.
    pub fn attention(&self) -> LibResult<QkAttention<'_, f64, Tensor<f64>, Tensor<f64>>> {
        QkAttention::new(&self.q, &self.k, self.mask.clone(), Scale::default())?
            .layer_scales(self.scales.clone())?
            .kv_group(self.kv_group.clone())
    }
}

/// Where one prompt's attention comes from.
pub enum Attention {
    /// Probabilities stored in a file.
    File(Tensor<f64>),
    /// Recomputed from queries and keys.
    FromQk,
}

/// One prompt to analyse.
pub struct Job {
    pub name: String,
    pub source: String,
    pub text: Option<String>,
    pub tokens: Option<Vec<String>>,
    pub model: ModelInfo,
    pub attention: Attention,
    pub attention_label: String,
    pub mask_label: String,
    pub qk: Option<Qk>,
}

impl Job {
    /// The precision the analysed values were stored in.
    pub fn data_precision(&self) -> Precision {
        match (&self.attention, &self.qk) {
            (Attention::File(t), _) => t.precision(),
            (Attention::FromQk, Some(qk)) => qk.q.precision().coarser(qk.k.precision()),
            (Attention::FromQk, None) => unreachable!("FromQk jobs carry queries and keys"),
        }
    }

    /// [layers, heads, n, m] of the attention.
    pub fn shape(&self) -> LibResult<[usize; 4]> {
        match (&self.attention, &self.qk) {
            (Attention::File(t), _) => Ok(t.shape()),
            (_, Some(qk)) => Ok(qk.attention()?.shape()),
            (Attention::FromQk, None) => unreachable!("FromQk jobs carry queries and keys"),
        }
    }
}

/// The mask asked for on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MaskArg {
    Auto,
    None,
    Causal,
    Window(usize),
}

fn parse_mask(s: &str) -> Result<MaskArg, Failure> {
    match s {
        "auto" => Ok(MaskArg::Auto),
        "none" => Ok(MaskArg::None),
        "causal" => Ok(MaskArg::Causal),
        w if w.starts_with("window:") => match w["window:".len()..].parse::<usize>() {
            Ok(width) if width > 0 => Ok(MaskArg::Window(width)),
            _ => Err(Failure::usage(format!(
                "--mask {w}: the window width must be a positive integer"
            ))),
        },
        other => Err(Failure::usage(format!(
            "--mask must be auto, none, causal or window:W, not `{other}`"
        ))),
    }
}

/// (mask, label) for a model recorded as `causal` with an optional window.
fn recorded_mask(causal: bool, window: Option<usize>) -> (MaskArg, String) {
    match (causal, window) {
        (true, Some(w)) => (MaskArg::Window(w), format!("window:{w} (from the sidecar)")),
        (true, None) => (MaskArg::Causal, "causal (from the sidecar)".into()),
        (false, _) => (MaskArg::None, "none (from the sidecar)".into()),
    }
}

fn to_mask(m: MaskArg) -> Mask<f64> {
    match m {
        MaskArg::Auto | MaskArg::None => Mask::none(),
        MaskArg::Causal => Mask::causal(),
        MaskArg::Window(w) => Mask::sliding_window(w),
    }
}

fn mask_name(m: MaskArg) -> String {
    match m {
        MaskArg::Auto | MaskArg::None => "none".into(),
        MaskArg::Causal => "causal".into(),
        MaskArg::Window(w) => format!("window:{w}"),
    }
}

/// The shipped data folder: --data, $ATTENTION_SVD_DATA, ./data/minilm.
fn data_dir(args: &InputArgs) -> Result<PathBuf, Failure> {
    let candidates: Vec<PathBuf> = match &args.data {
        Some(d) => vec![d.clone()],
        None => std::env::var_os("ATTENTION_SVD_DATA")
            .map(PathBuf::from)
            .into_iter()
            .chain(std::iter::once(PathBuf::from("data/minilm")))
            .collect(),
    };
    candidates
        .iter()
        .find(|d| d.join("bread_n64.json").is_file())
        .cloned()
        .ok_or_else(|| {
            Failure::input(format!(
                "no input given and the shipped MiniLM data is not in {}: run from a clone of \
                 the repository, pass --data DIR or set ATTENTION_SVD_DATA, or give an input file",
                candidates
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))
        })
}

/// The jobs of the command line.
pub fn resolve(args: &InputArgs) -> Result<Vec<Job>, Failure> {
    let mask = parse_mask(&args.mask)?;
    if let (Some(q), Some(k)) = (&args.q, &args.k) {
        return Ok(vec![from_qk_files(q, k, args, mask)?]);
    }
    let mut paths: Vec<PathBuf> = args.inputs.clone();
    if paths.is_empty() {
        let dir = data_dir(args)?;
        let names: Vec<&str> = match args.input.as_str() {
            "all" => vec!["lighthouse_n16", "bread_n64", "glacier_n128"],
            name => vec![name],
        };
        for name in names {
            let p = dir.join(format!("{name}.json"));
            if !p.is_file() {
                return Err(Failure::usage(format!(
                    "--input {name}: no such shipped input in {} (bread_n64, lighthouse_n16, \
                     glacier_n128 or all)",
                    dir.display()
                )));
            }
            paths.push(p);
        }
    } else if args.input != "bread_n64" {
        return Err(Failure::usage(
            "--input picks a shipped input; it does not apply when INPUTS are given".into(),
        ));
    }
    let mut jobs = Vec::new();
    for path in &paths {
        if path.is_dir() {
            let mut sidecars: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| Failure::input(format!("{}: cannot list: {e}", path.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json") && is_export(p))
                .collect();
            sidecars.sort();
            if sidecars.is_empty() {
                return Err(Failure::input(format!(
                    "{}: no export sidecars (*.json written by scripts/export_attention.py) in this folder",
                    path.display()
                )));
            }
            for s in sidecars {
                jobs.extend(from_export(&s, args, mask)?);
            }
        } else if path.extension().is_some_and(|x| x == "json") {
            jobs.extend(from_export(path, args, mask)?);
        } else {
            jobs.extend(from_attention_file(path, args, mask)?);
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for j in &jobs {
        if !names.insert(j.name.clone()) {
            return Err(Failure::usage(format!(
                "two inputs have the same name `{}`: give each prompt once",
                j.name
            )));
        }
    }
    let first = &jobs[0].model;
    if let Some(other) = jobs
        .iter()
        .find(|j| (j.model.layers, j.model.heads) != (first.layers, first.heads))
    {
        return Err(Failure::usage(format!(
            "{} has {} layers × {} heads but {} has {} × {}: a population needs one model",
            other.source,
            other.model.layers,
            other.model.heads,
            jobs[0].source,
            first.layers,
            first.heads
        )));
    }
    Ok(jobs)
}

/// Whether `p` is a regular file whose first 4 KiB mark it as an export
/// (a FIFO or device is never opened here: it could block or never end).
fn is_export(p: &Path) -> bool {
    use std::io::Read;
    if !p.is_file() {
        return false;
    }
    let mut head = Vec::new();
    std::fs::File::open(p)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .is_ok()
        && String::from_utf8_lossy(&head).contains("attention-svd-export")
}

/// A regular file's text, at most [`MAX_SIDECAR`](attention_svd::io::MAX_SIDECAR)
/// bytes of it.
fn bounded_text(p: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(p)
        .and_then(|f| {
            f.take(attention_svd::io::MAX_SIDECAR)
                .read_to_string(&mut text)
        })
        .ok()?;
    Some(text)
}

fn file_stem(p: &Path) -> String {
    p.file_stem()
        .map_or_else(|| "input".into(), |s| s.to_string_lossy().into_owned())
}

/// The jobs of an export: one per prompt (batch entries cropped to their
/// unpadded length).
fn from_export(path: &Path, args: &InputArgs, mask: MaskArg) -> Result<Vec<Job>, Failure> {
    let export = Export::open(path)?;
    let side = &export.sidecar;
    let m = &side.model;
    let (recorded, recorded_label) = recorded_mask(m.causal, m.sliding_window);
    let (mask, mask_label) = match mask {
        MaskArg::Auto => (recorded, recorded_label),
        explicit => {
            if explicit != recorded {
                warn(&format!(
                    "{}: --mask {} differs from what the model used ({}): the analysis is a what-if",
                    path.display(),
                    mask_name(explicit),
                    mask_name(recorded)
                ));
            }
            (explicit, format!("{} (from --mask)", mask_name(explicit)))
        }
    };
    let mut info = ModelInfo::new(m.name.clone(), m.layers, m.heads)
        .kv_heads(m.kv_heads)
        .causal(m.causal);
    if let Some(d) = m.head_dim {
        info = info.head_dim(d);
    }
    let attn = export.tensor::<f64>(Role::Attn)?;
    let (q, k) = (
        export.tensor::<f64>(Role::Q)?,
        export.tensor::<f64>(Role::K)?,
    );
    let from_qk = args.from_qk || attn.is_none() || mask != recorded;
    if from_qk && (q.is_none() || k.is_none()) {
        return Err(Failure::input(format!(
            "{}: {} but the export has no queries and keys",
            path.display(),
            if attn.is_none() {
                "no attention probabilities"
            } else {
                "recomputing the attention needs them"
            }
        )));
    }
    if from_qk && m.positions.as_deref() == Some("bias") {
        warn(&format!(
            "{}: the model adds a position bias to its logits; attention recomputed from queries \
             and keys alone is not the model's",
            path.display()
        ));
    }
    let scales: Vec<Scale<f64>> = m.scale.iter().map(|&s| Scale::fixed(s)).collect();
    let stem = file_stem(path);
    let mut jobs = Vec::new();
    for (b, prompt) in export.prompts().iter().enumerate() {
        let n = prompt.n;
        let pick = |t: &Tensor<f64>, cols: Option<usize>| -> LibResult<Tensor<f64>> {
            let t = if side.batched { t.entry(b)? } else { t.clone() };
            let cols = cols.unwrap_or(t.shape()[3]);
            t.crop(n, cols)
        };
        let qk = match (&q, &k) {
            (Some(q), Some(k)) => Some(Qk {
                q: pick(q, None)?,
                k: pick(k, None)?,
                mask: to_mask(mask),
                scales: scales.clone(),
                kv_group: side.kv_group.clone(),
            }),
            _ => None,
        };
        let (attention, attention_label) = match (&attn, from_qk) {
            (Some(a), false) => (
                Attention::File(pick(a, Some(n))?),
                "the model's own attention probabilities".to_string(),
            ),
            _ => (
                Attention::FromQk,
                "softmax(s·QKᵀ + M) recomputed from the exported queries and keys".to_string(),
            ),
        };
        let name = if export.prompts().len() == 1 {
            stem.clone()
        } else {
            format!("{stem}#{b}")
        };
        jobs.push(Job {
            name,
            source: path.display().to_string(),
            text: Some(prompt.text.clone()),
            tokens: prompt.tokens.clone(),
            model: info.clone(),
            attention,
            attention_label,
            mask_label: mask_label.clone(),
            qk,
        });
    }
    Ok(jobs)
}

/// The jobs of a raw attention array: one, or one per batch entry.
fn from_attention_file(path: &Path, args: &InputArgs, mask: MaskArg) -> Result<Vec<Job>, Failure> {
    if mask != MaskArg::Auto || args.from_qk {
        return Err(Failure::usage(format!(
            "{} holds finished attention: --mask and --from-qk apply to queries and keys \
             (--q/--k or an export)",
            path.display()
        )));
    }
    let t = Tensor::<f64>::open(path, args.tensor.as_deref())?;
    let entries: Vec<(String, Tensor<f64>)> = match t.batch() {
        None => vec![(file_stem(path), t)],
        Some(b) => (0..b)
            .map(|i| Ok((format!("{}#{i}", file_stem(path)), t.entry(i)?)))
            .collect::<LibResult<Vec<_>>>()?,
    };
    Ok(entries
        .into_iter()
        .map(|(name, t)| {
            let [l, h, _, _] = t.shape();
            Job {
                name,
                source: path.display().to_string(),
                text: None,
                tokens: None,
                model: ModelInfo::new(file_stem(path), l, h),
                attention: Attention::File(t),
                attention_label: "attention probabilities from the file".into(),
                mask_label: "as stored".into(),
                qk: None,
            }
        })
        .collect())
}

/// A sidecar in the folder of `file` that names it, if any.
fn sidecar_naming(file: &Path) -> Option<PathBuf> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file.file_name()?.to_string_lossy().into_owned();
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && is_export(p))
        .filter(|p| bounded_text(p).is_some_and(|s| s.contains(&format!("\"{name}\""))))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// The job of --q/--k: attention recomputed from raw arrays, with the mask
/// and scale of a sidecar that names the queries, when there is one.
fn from_qk_files(q: &Path, k: &Path, args: &InputArgs, mask: MaskArg) -> Result<Job, Failure> {
    if let Some(side) = sidecar_naming(q) {
        if mask == MaskArg::Auto {
            warn(&format!(
                "{}: reading the mask and scale from the export {} that names it",
                q.display(),
                side.display()
            ));
        }
        let forced = InputArgs {
            from_qk: true,
            ..args.clone()
        };
        let mut jobs = from_export(&side, &forced, mask)?;
        if jobs.len() != 1 {
            return Err(Failure::usage(format!(
                "{}: the export {} holds {} prompts; give the export itself",
                q.display(),
                side.display(),
                jobs.len()
            )));
        }
        return Ok(jobs.remove(0));
    }
    let (mask, label) = match mask {
        MaskArg::Auto => {
            warn(&format!(
                "{}: no export sidecar names these queries, so nothing records whether the model \
                 is causal: assuming no mask (pass --mask causal for a decoder)",
                q.display()
            ));
            (MaskArg::None, "none (assumed: no sidecar)".to_string())
        }
        explicit => (explicit, format!("{} (from --mask)", mask_name(explicit))),
    };
    let qt = Tensor::<f64>::open(q, args.tensor.as_deref())?;
    let kt = Tensor::<f64>::open(k, args.tensor.as_deref())?;
    let [l, h, _, d] = qt.shape();
    let kh = kt.shape()[1];
    let qk = Qk {
        q: qt,
        k: kt,
        mask: to_mask(mask),
        scales: vec![Scale::inv_sqrt_dim(); l],
        kv_group: (0..h).map(|t| t / (h / kh.max(1)).max(1)).collect(),
    };
    // Shapes are checked here, once, with the library's message.
    qk.attention()?;
    Ok(Job {
        name: file_stem(q),
        source: format!("{} and {}", q.display(), k.display()),
        text: None,
        tokens: None,
        model: ModelInfo::new(file_stem(q), l, h).kv_heads(kh).head_dim(d),
        attention: Attention::FromQk,
        attention_label: "softmax(QKᵀ/√d + M) recomputed from the queries and keys".into(),
        mask_label: label,
        qk: Some(qk),
    })
}
