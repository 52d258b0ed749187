//! The versioned, machine-readable report of a run over one or many prompts
//! (feature `serde`): what the command-line tool writes with `--json`, and
//! what `attention-svd merge` combines. Every number the tool prints is in
//! it.
//!
//! # Layout (schema `attention-svd/report`, version 1)
//!
//! ```text
//! {
//!   "schema": "attention-svd/report", "version": 1,
//!   "model": {"name", "layers", "heads", "kv_heads", "head_dim", "causal"},
//!   "prompts": [ {                          one per prompt
//!       "name", "source", "text", "tokens", "attention", "mask",
//!       "spectra":  ModelReport             (analysis module: per head and per layer)
//!       "collapse": [DepthCollapse] | null  (collapse module, whole-model runs only)
//!       "temperatures": [t, …] | null,
//!       "sweep":    [HeadSweep] | null      (logits module)
//!   }, … ],
//!   "population": Population | null        (analysis module, two or more prompts
//!                                           covering the same heads)
//! }
//! ```
//!
//! # Shards and merging
//!
//! A big model or many prompts can be split into runs that each cover some
//! prompts, layers or heads; [`Report::merge`] combines their reports
//! exactly: per-head summaries are the raw data, so the union of the shards
//! gives the same per-layer aggregates and population as one run over
//! everything (`tests/report.rs` checks this). Rank collapse follows products
//! over all layers, so it is only computed by runs that cover a whole
//! prompt; shard by prompt to keep it.
//!
//! # Long format
//!
//! [`Report::write_spectra_csv`] writes one row per (prompt, layer, head, i,
//! σᵢ), the layout pandas and polars read directly; [`Report::write_heads_csv`]
//! one row per (prompt, layer, head) with every metric.

use std::collections::BTreeMap;
use std::io::Write;

use crate::analysis::{ModelReport, Population};
use crate::collapse::DepthCollapse;
use crate::logits::HeadSweep;
use crate::{Error, Result};

/// The schema name in [`Report::schema`].
pub const SCHEMA: &str = "attention-svd/report";
/// The schema version in [`Report::version`].
pub const VERSION: u32 = 1;

/// What model the prompts ran through.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ModelInfo {
    /// The model's name (from the exporter's sidecar, or the file's name).
    pub name: String,
    /// Number of layers.
    pub layers: usize,
    /// Query heads per layer.
    pub heads: usize,
    /// Key/value heads per layer (grouped-query attention), when known.
    pub kv_heads: Option<usize>,
    /// Head dimension d, when known.
    pub head_dim: Option<usize>,
    /// Whether the model's attention is causal, when known.
    pub causal: Option<bool>,
}

impl ModelInfo {
    /// A model with only its name and size known.
    pub fn new(name: impl Into<String>, layers: usize, heads: usize) -> Self {
        ModelInfo {
            name: name.into(),
            layers,
            heads,
            kv_heads: None,
            head_dim: None,
            causal: None,
        }
    }

    /// Sets the number of key/value heads.
    pub fn kv_heads(mut self, kv_heads: usize) -> Self {
        self.kv_heads = Some(kv_heads);
        self
    }

    /// Sets the head dimension.
    pub fn head_dim(mut self, d: usize) -> Self {
        self.head_dim = Some(d);
        self
    }

    /// Sets whether the model is causal.
    pub fn causal(mut self, causal: bool) -> Self {
        self.causal = Some(causal);
        self
    }
}

/// Everything computed for one prompt.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct PromptReport {
    /// A name unique within the report (e.g. the export's file stem).
    pub name: String,
    /// The file(s) it was read from.
    pub source: String,
    /// The prompt's text, when known.
    pub text: Option<String>,
    /// Its tokens (row i of every matrix is token i), when known.
    pub tokens: Option<Vec<String>>,
    /// Where the attention came from ("the model's probabilities", or how
    /// it was recomputed from queries and keys).
    pub attention: String,
    /// The mask the attention was computed under (or was recorded with).
    pub mask: String,
    /// The spectral summaries.
    pub spectra: ModelReport,
    /// Rank collapse per depth (whole-prompt runs only).
    pub collapse: Option<Vec<DepthCollapse>>,
    /// The inverse temperatures of `sweep`.
    pub temperatures: Option<Vec<f64>>,
    /// Logit ranks and temperature sweeps per head.
    pub sweep: Option<Vec<HeadSweep>>,
}

impl PromptReport {
    /// A prompt's report with its spectra only.
    pub fn new(name: impl Into<String>, source: impl Into<String>, spectra: ModelReport) -> Self {
        PromptReport {
            name: name.into(),
            source: source.into(),
            text: None,
            tokens: None,
            attention: String::new(),
            mask: String::new(),
            spectra,
            collapse: None,
            temperatures: None,
            sweep: None,
        }
    }
}

/// A run's report; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// The model.
    pub model: ModelInfo,
    /// One entry per prompt, in the order given.
    pub prompts: Vec<PromptReport>,
    /// The distribution over prompts (two or more prompts covering the same
    /// heads).
    pub population: Option<Population>,
}

fn invalid(reason: &'static str) -> Error {
    Error::InvalidParameter {
        name: "report",
        reason,
    }
}

impl Report {
    /// A report of `prompts` run through `model`; the population is
    /// computed when two or more prompts cover the same heads.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for two prompts of the same name or a
    /// prompt whose spectra do not match the model's layers and heads.
    pub fn new(model: ModelInfo, prompts: Vec<PromptReport>) -> Result<Self> {
        let mut names = std::collections::BTreeSet::new();
        for p in &prompts {
            if !names.insert(p.name.as_str()) {
                return Err(invalid("two prompts have the same name"));
            }
            if p.spectra.shape[..2] != [model.layers, model.heads] {
                return Err(invalid(
                    "a prompt's layers and heads differ from the model's",
                ));
            }
        }
        let population = population_of(&prompts)?;
        Ok(Report {
            schema: SCHEMA.to_string(),
            version: VERSION,
            model,
            prompts,
            population,
        })
    }

    /// Combines the reports of shards of one run (by prompt, layer or head)
    /// exactly; see the [module docs](self#shards-and-merging).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] for no reports; [`Error::InvalidParameter`] for an
    /// unknown schema or version, reports of different models, a head
    /// analysed twice with different results, shards that do not together
    /// fill a rectangle of layers × heads of a prompt, or two different
    /// collapse or sweep results for one prompt.
    pub fn merge(reports: impl IntoIterator<Item = Report>) -> Result<Self> {
        let mut reports = reports.into_iter();
        let Some(first) = reports.next() else {
            return Err(Error::Empty {
                what: "reports",
                rows: 0,
                cols: 0,
            });
        };
        let model = first.model.clone();
        let mut order: Vec<String> = Vec::new();
        let mut by_name: BTreeMap<String, Vec<PromptReport>> = BTreeMap::new();
        for r in std::iter::once(first).chain(reports) {
            if r.schema != SCHEMA || r.version != VERSION {
                return Err(invalid("unknown report schema or version"));
            }
            if r.model != model {
                return Err(invalid("the reports are of different models"));
            }
            for p in r.prompts {
                if !by_name.contains_key(&p.name) {
                    order.push(p.name.clone());
                }
                by_name.entry(p.name.clone()).or_default().push(p);
            }
        }
        let prompts = order
            .into_iter()
            .map(|name| merge_prompt(by_name.remove(&name).expect("collected")))
            .collect::<Result<Vec<_>>>()?;
        Report::new(model, prompts)
    }

    /// Writes the spectra in long format: a header line and one row
    /// `prompt,layer,head,i,sigma` per singular value (i from 1).
    ///
    /// # Errors
    ///
    /// The writer's errors.
    pub fn write_spectra_csv(&self, mut w: impl Write) -> std::io::Result<()> {
        writeln!(w, "prompt,layer,head,i,sigma")?;
        for p in &self.prompts {
            let name = csv_field(&p.name);
            for h in &p.spectra.heads {
                for (i, s) in h.singular_values.iter().enumerate() {
                    writeln!(w, "{name},{},{},{},{s:e}", h.layer, h.head, i + 1)?;
                }
            }
        }
        Ok(())
    }

    /// Writes one row per (prompt, layer, head) with every metric of
    /// [`HeadSummary`](crate::analysis::HeadSummary).
    ///
    /// # Errors
    ///
    /// The writer's errors.
    pub fn write_heads_csv(&self, mut w: impl Write) -> std::io::Result<()> {
        writeln!(
            w,
            "prompt,layer,head,n,m,sigma_max,sigma_min,noise_floor,effective_rank,stable_rank,\
             numerical_rank,energy_rank_90,energy_rank_99,energy_rank_999,max_row_sum_deviation,\
             frobenius_norm,nuclear_norm"
        )?;
        for p in &self.prompts {
            let name = csv_field(&p.name);
            for h in &p.spectra.heads {
                writeln!(
                    w,
                    "{name},{},{},{},{},{:e},{:e},{:e},{},{},{},{},{},{},{:e},{},{}",
                    h.layer,
                    h.head,
                    h.n,
                    h.m,
                    h.sigma_max,
                    h.sigma_min,
                    h.noise_floor,
                    h.effective_rank,
                    h.stable_rank,
                    h.numerical_rank,
                    h.energy_rank_90,
                    h.energy_rank_99,
                    h.energy_rank_999,
                    h.max_row_sum_deviation,
                    h.frobenius_norm,
                    h.nuclear_norm
                )?;
            }
        }
        Ok(())
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The population of the prompts, if two or more cover the same heads.
fn population_of(prompts: &[PromptReport]) -> Result<Option<Population>> {
    if prompts.len() < 2 {
        return Ok(None);
    }
    let first = &prompts[0].spectra;
    if prompts
        .iter()
        .any(|p| p.spectra.selection != first.selection)
    {
        return Ok(None);
    }
    let reports: Vec<ModelReport> = prompts.iter().map(|p| p.spectra.clone()).collect();
    Population::of(&reports).map(Some)
}

/// One prompt from its shards.
fn merge_prompt(mut shards: Vec<PromptReport>) -> Result<PromptReport> {
    if shards.len() == 1 {
        return Ok(shards.pop().expect("one"));
    }
    let first = &shards[0];
    let (precision, data_precision, shape) = (
        first.spectra.precision,
        first.spectra.data_precision,
        first.spectra.shape,
    );
    if shards.iter().any(|s| {
        (
            s.spectra.precision,
            s.spectra.data_precision,
            s.spectra.shape,
        ) != (precision, data_precision, shape)
            || s.attention != first.attention
            || s.mask != first.mask
    }) {
        return Err(invalid(
            "shards of one prompt differ in precision, shape, attention or mask",
        ));
    }
    let heads = shards
        .iter()
        .flat_map(|s| s.spectra.heads.iter().cloned())
        .collect();
    let spectra = ModelReport::from_heads(precision, data_precision, shape, heads)?;
    let collapse = one_of(shards.iter().map(|s| &s.collapse))?;
    let temperatures = one_of(shards.iter().map(|s| &s.temperatures))?;
    // Sweeps of head shards are disjoint and combine row by row.
    let mut rows: Vec<HeadSweep> = shards
        .iter()
        .flat_map(|s| s.sweep.iter().flatten().cloned())
        .collect();
    rows.sort_by_key(|r| (r.layer, r.head));
    rows.dedup();
    if rows
        .windows(2)
        .any(|w| (w[0].layer, w[0].head) == (w[1].layer, w[1].head))
    {
        return Err(invalid("two shards give different sweeps for one head"));
    }
    let mut out = shards.swap_remove(0);
    out.spectra = spectra;
    out.collapse = collapse;
    out.temperatures = temperatures;
    out.sweep = (!rows.is_empty()).then_some(rows);
    Ok(out)
}

/// The one value the shards agree on (`None` if none has it).
fn one_of<'a, T: PartialEq + Clone + 'a>(
    values: impl Iterator<Item = &'a Option<T>>,
) -> Result<Option<T>> {
    let mut found: Option<&T> = None;
    for v in values.flatten() {
        match found {
            Some(f) if f != v => {
                return Err(invalid(
                    "two shards give different collapse or temperature results for one prompt",
                ));
            }
            _ => found = Some(v),
        }
    }
    Ok(found.cloned())
}
