//! The `.safetensors` header: an 8-byte little-endian length, then a JSON
//! object mapping each tensor's name to its dtype, shape and byte range
//! (relative to the end of the header), and an optional `__metadata__`.

use std::collections::BTreeMap;

use super::dtype::{Dtype, Endian};
use super::file_error;
use crate::{Precision, Result};

/// The largest header read, in bytes (the reference implementation's
/// limit).
pub(crate) const MAX_HEADER: u64 = 100_000_000;

/// One tensor of a safetensors file.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// `None` for a dtype that is not a float this crate reads (its name is
    /// kept for the message).
    pub(crate) dtype: std::result::Result<Dtype, String>,
    pub(crate) shape: Vec<usize>,
    /// Where its data starts in the file (offset by the header).
    pub(crate) begin: u64,
}

/// Parses the header `json` of a file whose data section (after the
/// header) is `data_len` bytes long; `header_len` is the JSON's length.
pub(crate) fn parse(
    path: &str,
    json: &[u8],
    header_len: u64,
    data_len: Option<u64>,
) -> Result<BTreeMap<String, Entry>> {
    let value: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| file_error(path, format!("malformed .safetensors header: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(file_error(
            path,
            "malformed .safetensors header: not an object",
        ));
    };
    let mut out = BTreeMap::new();
    for (name, v) in map {
        if name == "__metadata__" {
            continue;
        }
        let bad = |what: &str| file_error(path, format!("tensor `{name}`: {what}"));
        let dtype = match v.get("dtype").and_then(|d| d.as_str()) {
            Some("F16") => Ok(Precision::F16),
            Some("BF16") => Ok(Precision::BF16),
            Some("F32") => Ok(Precision::F32),
            Some("F64") => Ok(Precision::F64),
            Some(other) => Err(other.to_string()),
            None => return Err(bad("no dtype")),
        }
        .map(|precision| Dtype {
            precision,
            endian: Endian::Little,
        });
        let shape: Vec<usize> = v
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| bad("no shape"))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("the shape is not a list of non-negative integers"))?;
        let offsets: Vec<u64> = v
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
            .unwrap_or_default();
        let [begin, end] = offsets[..] else {
            return Err(bad("data_offsets is not a pair of byte offsets"));
        };
        if begin > end {
            return Err(bad("data_offsets end before they begin"));
        }
        if let Some(len) = data_len
            && end > len
        {
            return Err(bad(&format!(
                "truncated: its data ends at byte {end} of a data section of {len} bytes"
            )));
        }
        if let Ok(d) = dtype {
            let count = shape
                .iter()
                .try_fold(1u64, |acc, &x| acc.checked_mul(x as u64))
                .and_then(|c| c.checked_mul(d.size() as u64));
            if count != Some(end - begin) {
                return Err(bad(&format!(
                    "shape {shape:?} of {} does not fill its {} bytes",
                    d.precision,
                    end - begin
                )));
            }
        }
        // Offsets are u64 from the file: beyond any file once the header is
        // added (a stream has no length to check them against above).
        let Some(begin) = (8 + header_len)
            .checked_add(begin)
            .filter(|_| end.checked_add(8 + header_len).is_some())
        else {
            return Err(bad("data_offsets beyond the end of any file"));
        };
        out.insert(
            name,
            Entry {
                dtype,
                shape,
                begin,
            },
        );
    }
    Ok(out)
}
