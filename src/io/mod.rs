//! Reading the files attention comes in (feature `io`, on by default).
//!
//! - [`Tensor`]: one float array of a `.npy` or `.safetensors` file (f16,
//!   bf16, f32 or f64; rank 2–4, or 5 with a leading batch), seen as a
//!   [`HeadSource`](crate::HeadSource) that reads each head from the file
//!   when it is asked for — a model larger than memory is analysed one head
//!   at a time.
//! - [`Export`]: what `scripts/export_attention.py` writes, a JSON sidecar
//!   (model name, layers, heads and KV-head grouping, causal flag and
//!   sliding window, per-layer logit scale, prompts with their tokens) that
//!   names the arrays ([`Role`]: attention, queries, keys, values).
//! - [`npy`]: whole `.npy` stacks in memory, and writing them.
//!
//! `.npz` archives are read through the `zip` crate: stored members in
//! place, compressed ones decompressed into memory (at most
//! [`MAX_NPZ_RATIO`] times their compressed size). PyTorch pickles (`.pt`,
//! `.bin`) are refused with a message saying how to save the data instead
//! (pickles can run code when loaded).
//!
//! # Resource policy
//!
//! Time and memory stay bounded by the bytes actually given, whatever a
//! header claims:
//!
//! - a file is opened once (a FIFO or a pipe works as a file does); its
//!   header is parsed by this crate with hard caps ([`npy::MAX_HEADER`]
//!   bytes for `.npy`, 100 MB for a safetensors header as in the reference
//!   implementation, [`MAX_SIDECAR`] for a sidecar), and the `.npy` parser
//!   reads its header once, left to right, without backtracking or
//!   recursion, so its time is linear in the header's length and nesting
//!   costs nothing;
//! - element counts are multiplied with overflow checks, and the data a
//!   header promises is checked against the file's length *before*
//!   anything is allocated for it;
//! - a regular file is read one head at a time (one head's bytes and one
//!   matrix in memory per reader), except a Fortran-order `.npy` (rare:
//!   `np.save` of a transposed array), which is reordered in memory once;
//!   a pipe is read as its data arrives, in
//!   chunks of at most 16 MiB, so a lying header costs nothing before the
//!   data is there;
//! - every buffer whose size a header sets is reserved fallibly, so a
//!   request the machine cannot meet is an [`Error::File`], not an abort;
//! - every value is checked as it is converted: NaN, ±∞, values outside
//!   the target type's range and nonzero values that would underflow to 0
//!   in it are errors naming the index (an error rather than a counted
//!   flush: a zero that was not in the file changes ranks and spectra, and
//!   f64 arithmetic reads such a file exactly);
//! - array paths in a sidecar must stay inside its folder.
//!
//! Every problem with a file is an [`Error::File`]
//! that names the file and what is wrong with it.

mod dtype;
mod export;
pub mod npy;
mod safetensors;
mod tensor;

pub use export::{
    ArrayRef, Export, ExportedModel, MAX_SIDECAR, Prompt, Role, SIDECAR_VERSION, Sidecar,
};
pub use tensor::{Format, MAX_NPZ_RATIO, Tensor};

use crate::Error;

fn file_error(path: &str, problem: impl Into<String>) -> Error {
    Error::File {
        path: path.to_string(),
        problem: problem.into(),
    }
}
