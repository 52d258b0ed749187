//! [`Export`]: what `scripts/export_attention.py` writes — a JSON sidecar
//! describing the model and the prompts, beside the arrays.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::{Tensor, file_error};
use crate::{HeadSource, Result, Scalar};

/// The largest sidecar read, in bytes.
pub const MAX_SIDECAR: u64 = 64 << 20;

/// The sidecar format version this build reads.
pub const SIDECAR_VERSION: u32 = 1;

/// The arrays an export may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The attention probabilities [layers, heads, n, n].
    Attn,
    /// Per-head queries [layers, heads, n, d].
    Q,
    /// Per-KV-head keys [layers, kv_heads, n, d].
    K,
    /// Per-KV-head values [layers, kv_heads, n, d_v].
    V,
}

impl Role {
    /// The key of this array in the sidecar's `arrays` (`"attn"`, `"q"`,
    /// `"k"`, `"v"`).
    pub fn key(self) -> &'static str {
        match self {
            Role::Attn => "attn",
            Role::Q => "q",
            Role::K => "k",
            Role::V => "v",
        }
    }
}

/// The model an export came from.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ExportedModel {
    /// The model's name as recorded.
    pub name: String,
    /// Transformer layers.
    pub layers: usize,
    /// Query heads per layer.
    pub heads: usize,
    /// Key/value heads per layer (fewer than `heads` under grouped-query
    /// attention); equal to `heads` when the sidecar records none.
    #[serde(default, deserialize_with = "null_is_zero")]
    pub kv_heads: usize,
    /// Query/key head dimension d, when q and k were captured.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Value head dimension, when v was captured.
    #[serde(default)]
    pub value_dim: Option<usize>,
    /// Whether the model masks future keys (a decoder).
    pub causal: bool,
    /// A sliding-window width W (query i sees keys i − W < j ≤ i), if any.
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// `"rope"`, `"absolute"` or `"bias"` (a position bias is added to the
    /// logits, so q and k alone do not reproduce the attention).
    #[serde(default)]
    pub positions: Option<String>,
    /// The logit scale of each layer (empty when q/k were not captured).
    #[serde(default, deserialize_with = "null_is_empty")]
    pub scale: Vec<f64>,
}

/// One prompt of an export.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Prompt {
    /// The text.
    pub text: String,
    /// Its length in tokens (the unpadded length in a batch).
    pub n: usize,
    /// The tokens, when recorded.
    #[serde(default)]
    pub tokens: Option<Vec<String>>,
}

/// Where one array is.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ArrayRef {
    /// The file, relative to the sidecar's folder.
    pub file: String,
    /// The tensor's name inside a `.safetensors` file.
    #[serde(default)]
    pub tensor: Option<String>,
}

/// The contents of a sidecar (format `attention-svd-export`, version 1;
/// the schema is in the docstring of `scripts/export_attention.py`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Sidecar {
    /// Always `"attention-svd-export"`.
    pub format: String,
    /// The schema version.
    pub version: u32,
    /// The model.
    pub model: ExportedModel,
    /// Query head h reads KV head `kv_group[h]`.
    #[serde(default, deserialize_with = "null_is_empty")]
    pub kv_group: Vec<usize>,
    /// The stored dtype (`"float16"`, `"bfloat16"`, `"float32"`,
    /// `"float64"`).
    pub dtype: String,
    /// Whether the arrays carry a leading batch dimension (one entry per
    /// prompt, right-padded to the longest).
    #[serde(default)]
    pub batched: bool,
    /// The arrays by key (`"attn"`, `"q"`, `"k"`, `"v"`).
    pub arrays: BTreeMap<String, ArrayRef>,
    /// The prompts, in batch order.
    pub prompts: Vec<Prompt>,
}

fn null_is_zero<'de, D>(d: D) -> std::result::Result<usize, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<usize>::deserialize(d)?.unwrap_or(0))
}

fn null_is_empty<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// An export: its sidecar, checked, and the folder its arrays are in.
///
/// # Examples
///
/// ```
/// use attention_svd::io::{Export, Role};
/// use attention_svd::HeadSource;
///
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/minilm");
/// let export = Export::open(format!("{dir}/lighthouse_n16.json")).unwrap();
/// assert_eq!(export.sidecar.model.heads, 12);
/// assert!(!export.sidecar.model.causal);
/// let attn = export.tensor::<f64>(Role::Attn).unwrap().expect("stored");
/// assert_eq!(attn.shape(), [6, 12, 16, 16]);
/// ```
#[derive(Clone, Debug)]
pub struct Export {
    /// The checked sidecar.
    pub sidecar: Sidecar,
    path: PathBuf,
}

impl Export {
    /// Reads and checks a sidecar: the format and version, the model's
    /// sizes, `kv_group` (one KV head per query head, each below
    /// `kv_heads`), one scale per layer, the prompts (at least one; one
    /// unless batched; tokens matching n), and array file names that stay
    /// inside the sidecar's folder. The arrays themselves are opened by
    /// [`tensor`](Self::tensor).
    ///
    /// # Errors
    ///
    /// [`Error::File`](crate::Error::File) naming the sidecar and the
    /// first problem found.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let file = std::fs::File::open(path)
            .map_err(|e| file_error(&label, format!("cannot open: {e}")))?;
        let mut text = Vec::new();
        file.take(MAX_SIDECAR + 1)
            .read_to_end(&mut text)
            .map_err(|e| file_error(&label, format!("cannot read: {e}")))?;
        if text.len() as u64 > MAX_SIDECAR {
            return Err(file_error(
                &label,
                format!("a sidecar larger than {MAX_SIDECAR} bytes"),
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| file_error(&label, format!("not JSON: {e}")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some("attention-svd-export") {
            return Err(file_error(
                &label,
                "not an export sidecar (no \"format\": \"attention-svd-export\")",
            ));
        }
        if let Some(v) = value.get("version").and_then(serde_json::Value::as_u64)
            && v != u64::from(SIDECAR_VERSION)
        {
            return Err(file_error(
                &label,
                format!("sidecar version {v}: this build reads version {SIDECAR_VERSION}"),
            ));
        }
        let mut sidecar: Sidecar = serde_json::from_value(value)
            .map_err(|e| file_error(&label, format!("malformed sidecar: {e}")))?;
        check(&label, &mut sidecar)?;
        Ok(Export {
            sidecar,
            path: path.to_path_buf(),
        })
    }

    /// The sidecar's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The prompts, in batch order.
    pub fn prompts(&self) -> &[Prompt] {
        &self.sidecar.prompts
    }

    /// The array of `role`, opened and checked against the sidecar
    /// ([layers, heads or kv_heads, n, ·], with a leading batch of one
    /// entry per prompt when batched, n at least every prompt's length), or
    /// `None` when the export does not hold it.
    ///
    /// # Errors
    ///
    /// The errors of [`Tensor::open`]; [`Error::File`](crate::Error::File)
    /// naming the sidecar when the array's shape contradicts it.
    pub fn tensor<T: Scalar>(&self, role: Role) -> Result<Option<Tensor<T>>> {
        let Some(array) = self.sidecar.arrays.get(role.key()) else {
            return Ok(None);
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let t = Tensor::<T>::open(dir.join(&array.file), array.tensor.as_deref())?;
        let side = &self.sidecar;
        let m = &side.model;
        let label = self.path.display().to_string();
        let heads = match role {
            Role::Attn | Role::Q => m.heads,
            Role::K | Role::V => m.kv_heads,
        };
        let n = side.prompts.iter().map(|p| p.n).max().unwrap_or(0);
        let [l, h, rows, cols] = t.shape();
        let batch_ok = if side.batched {
            t.batch() == Some(side.prompts.len())
        } else {
            t.batch().is_none()
        };
        let width_ok = match role {
            Role::Attn => cols == rows,
            Role::Q | Role::K => m.head_dim.is_none_or(|d| d == cols),
            Role::V => m.value_dim.is_none_or(|d| d == cols),
        };
        if !batch_ok || l != m.layers || h != heads || rows < n || !width_ok {
            let batch = t.batch().map_or_else(String::new, |b| format!("{b} × "));
            return Err(file_error(
                &label,
                format!(
                    "arrays.{} ({}) has shape {batch}{:?}, which does not fit the sidecar \
                     ({}{} layers, {heads} heads, at least {n} tokens)",
                    role.key(),
                    array.file,
                    [l, h, rows, cols],
                    if side.batched {
                        format!("a batch of {}, ", side.prompts.len())
                    } else {
                        String::new()
                    },
                    m.layers
                ),
            ));
        }
        Ok(Some(t))
    }
}

/// The sidecar's own consistency.
fn check(label: &str, s: &mut Sidecar) -> Result<()> {
    let bad = |what: String| Err(file_error(label, what));
    let m = &mut s.model;
    if m.layers == 0 || m.heads == 0 {
        return bad(format!("{} layers × {} heads", m.layers, m.heads));
    }
    if m.kv_heads == 0 {
        m.kv_heads = m.heads;
    }
    if m.kv_heads > m.heads || !m.heads.is_multiple_of(m.kv_heads) {
        return bad(format!(
            "{} query heads cannot share {} KV heads",
            m.heads, m.kv_heads
        ));
    }
    if m.sliding_window == Some(0) {
        return bad("a sliding window of width 0".into());
    }
    if m.head_dim == Some(0) || m.value_dim == Some(0) {
        return bad("a head dimension of 0".into());
    }
    if s.kv_group.is_empty() {
        let per = m.heads / m.kv_heads;
        s.kv_group = (0..m.heads).map(|h| h / per).collect();
    }
    if s.kv_group.len() != m.heads || s.kv_group.iter().any(|&g| g >= m.kv_heads) {
        return bad(format!(
            "kv_group {:?} must give each of the {} query heads a KV head below {}",
            s.kv_group, m.heads, m.kv_heads
        ));
    }
    let needs_scale = s.arrays.contains_key("q") || s.arrays.contains_key("k");
    if needs_scale && m.scale.len() != m.layers {
        return bad(format!(
            "{} logit scales for {} layers",
            m.scale.len(),
            m.layers
        ));
    }
    if let Some(x) = m.scale.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
        return bad(format!(
            "a logit scale of {x}: scales must be positive and finite"
        ));
    }
    if s.prompts.is_empty() {
        return bad("no prompts".into());
    }
    if !s.batched && s.prompts.len() != 1 {
        return bad(format!(
            "{} prompts in an export that is not batched",
            s.prompts.len()
        ));
    }
    for (i, p) in s.prompts.iter().enumerate() {
        if p.n == 0 {
            return bad(format!("prompt {i} has no tokens"));
        }
        if let Some(t) = &p.tokens
            && t.len() != p.n
        {
            return bad(format!("prompt {i}: {} tokens for n = {}", t.len(), p.n));
        }
    }
    if s.arrays.is_empty() {
        return bad("no arrays".into());
    }
    for (key, a) in &s.arrays {
        if !["attn", "q", "k", "v"].contains(&key.as_str()) {
            return bad(format!("unknown array `{key}` (attn, q, k, v)"));
        }
        let p = Path::new(&a.file);
        if a.file.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
            return bad(format!(
                "arrays.{key}: {:?} must be a path inside the sidecar's folder",
                a.file
            ));
        }
    }
    Ok(())
}
