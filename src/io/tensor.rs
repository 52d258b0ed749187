//! [`Tensor`]: a float array in a file, read one head at a time.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex};

use nalgebra::DMatrix;

use super::dtype::Dtype;
use super::{file_error, npy, safetensors};
use crate::{HeadSource, Precision, Result, Scalar, Stack};

/// The file formats [`Tensor`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// NumPy `.npy` (one array).
    Npy,
    /// `.safetensors` (named tensors; one is chosen).
    Safetensors,
}

/// Where the bytes are.
enum Backing {
    /// A regular file, read at offsets as heads are asked for.
    File(Mutex<File>),
    /// Bytes read from a stream (or a Fortran-order array reordered to C
    /// order), held in memory.
    Bytes(Vec<u8>),
}

struct Source {
    label: String,
    backing: Backing,
    dtype: Dtype,
    /// [batch, layers, heads, rows, cols] as stored (batch 1 when not
    /// batched), C order.
    dims: [usize; 5],
    batched: bool,
    /// The array's rank in the file (2–5), for indices in messages.
    rank: usize,
    /// Byte offset of element 0 in the backing.
    data_offset: u64,
}

/// A float array of rank 2 to 5 in a `.npy` or `.safetensors` file, seen
/// as a stack [layers, heads, rows, cols] of matrices (rank 2 is
/// [1, 1, n, m], rank 3 is [1, h, n, m]) or, at rank 5, a batch
/// [b, layers, heads, rows, cols] of such stacks.
///
/// Opening reads and checks the header only; each [`HeadSource::head`]
/// reads that head's bytes from the file and converts them, so memory stays
/// at one head per reader however large the file. Every value is checked
/// there: NaN and ±∞ are [`Error::File`](crate::Error::File) naming the index, as is a value
/// outside `T`'s range. (A stream that cannot seek, such as a pipe, is read
/// into memory as its data arrives.)
///
/// A `Tensor` is a cheap handle: [`entry`](Self::entry) and
/// [`crop`](Self::crop) return new handles on the same open file.
///
/// # Examples
///
/// ```
/// use attention_svd::io::{npy, Tensor};
/// use attention_svd::nalgebra::dmatrix;
/// use attention_svd::{HeadSource, Precision, Stack};
///
/// let path = std::env::temp_dir().join("attention_svd_tensor_doc.npy");
/// let s = Stack::from_matrices(1, 1, &[dmatrix![0.25_f32, 0.75; 1.0, 0.0]]).unwrap();
/// npy::write_stack(&path, &s).unwrap();
///
/// let t = Tensor::<f64>::open(&path, None).unwrap();
/// assert_eq!(t.shape(), [1, 1, 2, 2]);
/// assert_eq!(t.precision(), Precision::F32);
/// assert_eq!(t.head(0, 0).unwrap()[(0, 1)], 0.75);
/// // The first row and column only:
/// assert_eq!(t.crop(1, 1).unwrap().head(0, 0).unwrap()[(0, 0)], 0.25);
/// # std::fs::remove_file(&path).ok();
/// ```
pub struct Tensor<T> {
    source: Arc<Source>,
    /// The batch entry handed out (always 0 when not batched).
    entry: usize,
    /// Whether an entry was chosen (or the array has no batch dimension).
    selected: bool,
    rows: usize,
    cols: usize,
    _elem: PhantomData<fn() -> T>,
}

impl<T> Clone for Tensor<T> {
    fn clone(&self) -> Self {
        Tensor {
            source: Arc::clone(&self.source),
            entry: self.entry,
            selected: self.selected,
            rows: self.rows,
            cols: self.cols,
            _elem: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor")
            .field("file", &self.source.label)
            .field("dims", &self.source.dims)
            .field("batched", &self.source.batched)
            .field("entry", &self.entry)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

/// Reads until `buf` is full or the input ends; returns the count read.
fn read_up_to(label: &str, reader: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(file_error(label, format!("cannot read: {e}"))),
        }
    }
    Ok(filled)
}

/// Reads exactly `len` bytes, growing the buffer only as data arrives (so
/// a header that claims more than the stream holds costs no memory).
fn read_bounded(label: &str, reader: &mut impl Read, len: u64) -> Result<Vec<u8>> {
    const CHUNK: usize = 1 << 24;
    let mut out: Vec<u8> = Vec::new();
    let mut left = len;
    while left > 0 {
        let step = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        out.try_reserve(step)
            .map_err(|_| file_error(label, format!("out of memory reading {len} bytes of data")))?;
        let start = out.len();
        out.resize(start + step, 0);
        let got = read_up_to(label, reader, &mut out[start..])?;
        if got < step {
            return Err(file_error(
                label,
                format!(
                    "truncated: the header promises {len} bytes of data, the input ends after {}",
                    out.len() - step + got
                ),
            ));
        }
        left -= step as u64;
    }
    Ok(out)
}

/// Whether a path names a `.npz` archive.
fn is_npz(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"))
}

/// The largest ratio of decompressed to compressed size accepted for a
/// deflated `.npz` member (float arrays compress far less; a larger ratio
/// is a zip bomb).
pub const MAX_NPZ_RATIO: u64 = 1024;

/// The format a path names, by extension, or an error for formats that are
/// deliberately not read.
fn format_of(label: &str, path: &Path, start: &[u8]) -> Result<Format> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("npy") => return Ok(Format::Npy),
        Some("safetensors") => return Ok(Format::Safetensors),
        Some("pt" | "pth" | "bin" | "ckpt" | "pkl") => {
            return Err(file_error(
                label,
                "PyTorch pickles are not read (unpickling can run arbitrary code): save the \
                 tensors with safetensors.torch.save_file or numpy.save, or export them with \
                 scripts/export_attention.py",
            ));
        }
        _ => {}
    }
    if start.starts_with(b"\x93NUMPY") {
        return Ok(Format::Npy);
    }
    if start.len() > 8
        && start[8] == b'{'
        && u64::from_le_bytes(start[..8].try_into().unwrap_or([0xff; 8])) <= safetensors::MAX_HEADER
    {
        return Ok(Format::Safetensors);
    }
    Err(file_error(
        label,
        "neither a .npy nor a .safetensors file (no .npy magic, no safetensors header)",
    ))
}

/// (dtype, shape, Fortran order, offset of the data, bytes consumed) of the
/// chosen array, from a reader at the start of the file. `file_len` is known for regular files.
fn read_header(
    label: &str,
    format: Format,
    reader: &mut impl Read,
    file_len: Option<u64>,
    tensor: Option<&str>,
) -> Result<(Dtype, Vec<usize>, bool, u64, u64)> {
    match format {
        Format::Npy => {
            if tensor.is_some() {
                return Err(file_error(
                    label,
                    "a .npy file holds one array: a tensor name applies to .safetensors files",
                ));
            }
            let mut start = [0u8; 12];
            let got = read_up_to(label, reader, &mut start)?;
            let (version, len) = npy::preamble(label, &start[..got])?;
            let pre = npy::preamble_len(version);
            let mut text = vec![0u8; len];
            let have = got - pre.min(got);
            let copy = have.min(len);
            text[..copy].copy_from_slice(&start[pre..pre + copy]);
            if read_up_to(label, reader, &mut text[copy..])? < len - copy {
                return Err(file_error(label, "truncated .npy header"));
            }
            // Bytes of data read along with the preamble (a header shorter
            // than 2 bytes on version 1) cannot occur in a valid file.
            if have > len {
                return Err(file_error(label, "malformed .npy header (too short)"));
            }
            let h = npy::parse_header(label, version, &text)?;
            Ok((
                h.dtype,
                h.shape,
                h.fortran,
                h.data_offset as u64,
                h.data_offset as u64,
            ))
        }
        Format::Safetensors => {
            let mut len = [0u8; 8];
            if read_up_to(label, reader, &mut len)? < 8 {
                return Err(file_error(label, "truncated .safetensors header"));
            }
            let header_len = u64::from_le_bytes(len);
            if header_len > safetensors::MAX_HEADER {
                return Err(file_error(
                    label,
                    format!(
                        "a .safetensors header of {header_len} bytes is larger than the {} accepted",
                        safetensors::MAX_HEADER
                    ),
                ));
            }
            if let Some(fl) = file_len
                && 8 + header_len > fl
            {
                return Err(file_error(
                    label,
                    format!("truncated: a header of {header_len} bytes in a file of {fl}"),
                ));
            }
            let json = read_bounded(label, reader, header_len)?;
            let data_len = file_len.map(|fl| fl - 8 - header_len);
            let entries = safetensors::parse(label, &json, header_len, data_len)?;
            let names = || {
                entries
                    .keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let entry = match tensor {
                Some(name) => entries.get(name).ok_or_else(|| {
                    file_error(label, format!("no tensor `{name}` (it holds {})", names()))
                })?,
                None if entries.len() == 1 => entries.values().next().expect("one entry"),
                None if entries.is_empty() => {
                    return Err(file_error(label, "the file holds no tensors"));
                }
                None => {
                    return Err(file_error(
                        label,
                        format!("it holds the tensors {}: name the one to read", names()),
                    ));
                }
            };
            let dtype = entry.dtype.clone().map_err(|d| {
                file_error(
                    label,
                    format!("unsupported dtype {d}: expected F16, BF16, F32 or F64"),
                )
            })?;
            Ok((
                dtype,
                entry.shape.clone(),
                false,
                entry.begin,
                8 + header_len,
            ))
        }
    }
}

/// [batch, layers, heads, rows, cols] and whether it is batched.
fn dims_of(label: &str, shape: &[usize]) -> Result<([usize; 5], bool)> {
    if !(2..=5).contains(&shape.len()) {
        return Err(file_error(
            label,
            format!(
                "array of rank {} (shape {shape:?}): expected [n, m], [h, n, m], [l, h, n, m] \
                 or a batch [b, l, h, n, m]",
                shape.len()
            ),
        ));
    }
    // An empty array is that, however large its other dimensions.
    if shape.contains(&0) {
        return Err(file_error(label, format!("empty array of shape {shape:?}")));
    }
    let count = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    if count.is_none_or(|c| c > 1 << 48) {
        return Err(file_error(
            label,
            format!("shape {shape:?} has more elements than this machine can address"),
        ));
    }
    let mut dims = [1usize; 5];
    dims[5 - shape.len()..].copy_from_slice(shape);
    Ok((dims, shape.len() == 5))
}

/// Reorders Fortran-order data (first index fastest) of `shape` to C order,
/// element by element of `size` bytes.
fn fortran_to_c(data: &[u8], shape: &[usize], size: usize) -> Vec<u8> {
    let rank = shape.len();
    let mut strides = vec![1usize; rank];
    for k in 1..rank {
        strides[k] = strides[k - 1] * shape[k - 1];
    }
    let count = data.len() / size;
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0usize; rank];
    for _ in 0..count {
        let offset: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&data[offset * size..(offset + 1) * size]);
        for k in (0..rank).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

impl<T: Scalar> Tensor<T> {
    /// Opens the array in `path`: a `.npy` file, or the tensor named
    /// `tensor` of a `.safetensors` file (the name may be omitted when the
    /// file holds one tensor). Files with another extension are recognised
    /// by their first bytes. In a `.npz` archive (`np.savez`,
    /// `np.savez_compressed`) `tensor` names the member (`attn` or
    /// `attn.npy`). PyTorch pickles are refused with a message saying how
    /// to save the data instead.
    ///
    /// The file is opened once; its header is read and checked against the
    /// file's length before anything is allocated for the data.
    ///
    /// # Errors
    ///
    /// [`Error::File`](crate::Error::File) naming the path: cannot open, unknown format,
    /// malformed or oversized header, unsupported dtype (integers,
    /// complex, structured), rank outside 2–5, a zero-sized dimension,
    /// data shorter than the header promises, an unknown or missing tensor
    /// name.
    pub fn open(path: impl AsRef<Path>, tensor: Option<&str>) -> Result<Self> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let mut file =
            File::open(path).map_err(|e| file_error(&label, format!("cannot open: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| file_error(&label, format!("cannot read: {e}")))?;
        if meta.is_dir() {
            return Err(file_error(&label, "is a folder, not a file"));
        }
        if !meta.is_file() {
            // A pipe or device: read it through once.
            let mut start = [0u8; 16];
            let got = read_up_to(&label, &mut file, &mut start)?;
            let format = format_of(&label, path, &start[..got])?;
            let mut chained = std::io::Cursor::new(start[..got].to_vec()).chain(file);
            return Self::from_stream(label, format, &mut chained, tensor);
        }
        let file_len = meta.len();
        let mut start = [0u8; 16];
        let got = read_up_to(&label, &mut file, &mut start)?;
        let format = match format_of(&label, path, &start[..got]) {
            Ok(f) => f,
            Err(_) if start.starts_with(b"PK\x03\x04") || is_npz(path) => {
                return Self::open_npz(label, file, tensor);
            }
            Err(e) => return Err(e),
        };
        Self::from_region(label, file, format, 0, file_len, tensor)
    }

    /// The array of a `.npy` or `.safetensors` whose bytes are
    /// `start..start + len` of `file` (the whole file, or a stored member
    /// of a `.npz` archive).
    fn from_region(
        label: String,
        mut file: File,
        format: Format,
        start: u64,
        len: u64,
        tensor: Option<&str>,
    ) -> Result<Self> {
        file.seek(SeekFrom::Start(start))
            .map_err(|e| file_error(&label, format!("cannot read: {e}")))?;
        let mut reader = std::io::BufReader::new((&mut file).take(len));
        let (dtype, shape, fortran, offset, _) =
            read_header(&label, format, &mut reader, Some(len), tensor)?;
        drop(reader);
        let (dims, batched) = dims_of(&label, &shape)?;
        let needed = dims
            .iter()
            .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
            .and_then(|c| c.checked_mul(dtype.size() as u128))
            .unwrap_or(u128::MAX);
        let available = u128::from(len.saturating_sub(offset));
        if needed > available {
            return Err(file_error(
                &label,
                format!(
                    "truncated: shape {shape:?} of {} needs {needed} bytes of data, the file has \
                     {available}",
                    dtype.precision
                ),
            ));
        }
        // A .npy holds exactly its data: bytes after it mean the header and
        // the file disagree (safetensors may leave gaps between tensors).
        if format == Format::Npy && needed < available {
            return Err(file_error(
                &label,
                format!(
                    "{} bytes after the data of shape {shape:?} of {}: the header and the file \
                     disagree",
                    available - needed,
                    dtype.precision
                ),
            ));
        }
        let data_offset = start + offset;
        let (backing, data_offset) = if fortran && shape.len() > 1 {
            file.seek(SeekFrom::Start(data_offset))
                .map_err(|e| file_error(&label, format!("cannot read: {e}")))?;
            let raw = read_bounded(&label, &mut file, needed as u64)?;
            (Backing::Bytes(fortran_to_c(&raw, &shape, dtype.size())), 0)
        } else {
            (Backing::File(Mutex::new(file)), data_offset)
        };
        Ok(Self::from_source(Source {
            label,
            backing,
            dtype,
            dims,
            batched,
            rank: shape.len(),
            data_offset,
        }))
    }

    /// The member `tensor` (`NAME` or `NAME.npy`; may be omitted when the
    /// archive holds one array) of a `.npz` archive: read in place when
    /// stored (`np.savez`), decompressed into memory when deflated
    /// (`np.savez_compressed`), within [`MAX_NPZ_RATIO`] of its compressed
    /// size.
    fn open_npz(label: String, mut file: File, tensor: Option<&str>) -> Result<Self> {
        let bad = |e: zip::result::ZipError| file_error(&label, format!("not a .npz archive: {e}"));
        let mut archive = zip::ZipArchive::new(&mut file).map_err(bad)?;
        let names: Vec<String> = archive
            .file_names()
            .filter_map(std::result::Result::ok)
            .filter(|n| n.ends_with(".npy"))
            .map(|n| n.into_owned())
            .collect();
        let listed = || {
            names
                .iter()
                .map(|n| format!("`{}`", n.trim_end_matches(".npy")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let member = match tensor {
            Some(t) => {
                let want = if t.ends_with(".npy") {
                    t.to_string()
                } else {
                    format!("{t}.npy")
                };
                names.iter().find(|n| **n == want).cloned().ok_or_else(|| {
                    file_error(&label, format!("no array `{t}` (it holds {})", listed()))
                })?
            }
            None if names.len() == 1 => names[0].clone(),
            None if names.is_empty() => {
                return Err(file_error(&label, "the archive holds no .npy arrays"));
            }
            None => {
                return Err(file_error(
                    &label,
                    format!("it holds the arrays {}: name the one to read", listed()),
                ));
            }
        };
        let entry = archive.by_name(&member).map_err(bad)?;
        let size = entry.size();
        let member_label = format!("{label} ({member})");
        if entry.compression() == zip::CompressionMethod::Stored {
            let start = entry
                .data_start()
                .ok_or_else(|| file_error(&label, "a member without a data offset"))?;
            drop(entry);
            drop(archive);
            return Self::from_region(member_label, file, Format::Npy, start, size, None);
        }
        let packed = entry.compressed_size();
        if size > packed.saturating_mul(MAX_NPZ_RATIO).saturating_add(1 << 20) {
            return Err(file_error(
                &member_label,
                format!(
                    "claims {size} bytes from {packed} compressed: more than {MAX_NPZ_RATIO}× \
                     (a zip bomb?)"
                ),
            ));
        }
        let mut stream = entry.take(size);
        Self::from_stream(member_label, Format::Npy, &mut stream, None)
    }

    /// Reads an array from a stream in `format` (the tensor named `tensor`
    /// for safetensors), into memory as its data arrives; `label` names the
    /// stream in errors.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), with "truncated" meaning the stream ended
    /// early.
    pub fn read(
        label: impl Into<String>,
        format: Format,
        reader: &mut impl Read,
        tensor: Option<&str>,
    ) -> Result<Self> {
        Self::from_stream(label.into(), format, reader, tensor)
    }

    fn from_stream(
        label: String,
        format: Format,
        reader: &mut impl Read,
        tensor: Option<&str>,
    ) -> Result<Self> {
        let (dtype, shape, fortran, offset, consumed) =
            read_header(&label, format, reader, None, tensor)?;
        let (dims, batched) = dims_of(&label, &shape)?;
        let needed = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .and_then(|c| c.checked_mul(dtype.size() as u64))
            .ok_or_else(|| {
                file_error(
                    &label,
                    format!("shape {shape:?} has more elements than can be addressed"),
                )
            })?;
        // Skip to the chosen tensor (safetensors data need not start right
        // after the header).
        let skip = offset - consumed;
        std::io::copy(&mut (&mut *reader).take(skip), &mut std::io::sink())
            .map_err(|e| file_error(&label, format!("cannot read: {e}")))?;
        let raw = read_bounded(&label, reader, needed)?;
        let data = if fortran && shape.len() > 1 {
            fortran_to_c(&raw, &shape, dtype.size())
        } else {
            raw
        };
        Ok(Self::from_source(Source {
            label,
            backing: Backing::Bytes(data),
            dtype,
            dims,
            batched,
            rank: shape.len(),
            data_offset: 0,
        }))
    }

    fn from_source(source: Source) -> Self {
        let [_, _, _, rows, cols] = source.dims;
        Tensor {
            selected: !source.batched,
            source: Arc::new(source),
            entry: 0,
            rows,
            cols,
            _elem: PhantomData,
        }
    }

    /// The number of stacks in a batched (rank-5) array, `None` otherwise
    /// (and for an entry already chosen with [`entry`](Self::entry)).
    pub fn batch(&self) -> Option<usize> {
        (!self.selected).then_some(self.source.dims[0])
    }

    /// The stack of batch entry `b` of a batched array.
    ///
    /// # Errors
    ///
    /// [`Error::File`](crate::Error::File) if the array is not batched (or an entry was already
    /// chosen) or `b` is out of range.
    pub fn entry(&self, b: usize) -> Result<Self> {
        let Some(count) = self.batch() else {
            return Err(file_error(
                &self.source.label,
                "no batch dimension to choose an entry from",
            ));
        };
        if b >= count {
            return Err(file_error(
                &self.source.label,
                format!("entry {b} of a batch of {count}"),
            ));
        }
        let mut t = self.clone();
        t.entry = b;
        t.selected = true;
        Ok(t)
    }

    /// The leading `rows × cols` block of every head (e.g. one prompt's
    /// unpadded tokens in a padded batch).
    ///
    /// # Errors
    ///
    /// [`Error::File`](crate::Error::File) unless 1 ≤ rows ≤ the current rows and 1 ≤ cols ≤ the
    /// current columns.
    pub fn crop(&self, rows: usize, cols: usize) -> Result<Self> {
        if rows == 0 || cols == 0 || rows > self.rows || cols > self.cols {
            return Err(file_error(
                &self.source.label,
                format!(
                    "a {rows} × {cols} block of {} × {} heads",
                    self.rows, self.cols
                ),
            ));
        }
        let mut t = self.clone();
        t.rows = rows;
        t.cols = cols;
        Ok(t)
    }

    /// The file (or stream label) this tensor reads.
    pub fn label(&self) -> &str {
        &self.source.label
    }

    /// Reads every head into memory as one [`Stack`].
    ///
    /// # Errors
    ///
    /// The errors of [`HeadSource::head`] (also for a batch with no entry
    /// chosen); [`Error::File`](crate::Error::File) if the memory cannot be
    /// reserved.
    pub fn to_stack(&self) -> Result<Stack<T>> {
        let [l, h, n, m] = self.shape();
        let total = l * h * n * m;
        let mut data: Vec<T> = Vec::new();
        data.try_reserve_exact(total).map_err(|_| {
            file_error(
                &self.source.label,
                format!("out of memory for {total} values"),
            )
        })?;
        for layer in 0..l {
            for head in 0..h {
                let a = self.head(layer, head)?;
                for i in 0..n {
                    for j in 0..m {
                        data.push(a[(i, j)]);
                    }
                }
            }
        }
        Stack::new([l, h, n, m], data)
    }

    /// The raw bytes of rows 0..self.rows of (layer, head), full width.
    fn head_bytes(&self, layer: usize, head: usize) -> Result<Vec<u8>> {
        let s = &self.source;
        let [_, nl, nh, n, m] = s.dims;
        let size = s.dtype.size();
        let first = (((self.entry * nl + layer) * nh + head) * n * m) as u64 * size as u64;
        let len = self.rows * m * size;
        let start = s.data_offset + first;
        match &s.backing {
            Backing::Bytes(bytes) => {
                let start = start as usize;
                Ok(bytes[start..start + len].to_vec())
            }
            Backing::File(file) => {
                let mut buf = Vec::new();
                buf.try_reserve_exact(len).map_err(|_| {
                    file_error(&s.label, format!("out of memory for a head of {len} bytes"))
                })?;
                buf.resize(len, 0);
                let mut f = file
                    .lock()
                    .map_err(|_| file_error(&s.label, "an earlier reader panicked"))?;
                f.seek(SeekFrom::Start(start))
                    .and_then(|_| f.read_exact(&mut buf))
                    .map_err(|e| {
                        file_error(
                            &s.label,
                            format!(
                                "cannot read layer {layer}, head {head} ({e}): the file changed \
                                 after it was opened?"
                            ),
                        )
                    })?;
                Ok(buf)
            }
        }
    }
}

impl<T: Scalar> HeadSource for Tensor<T> {
    type Elem = T;

    fn shape(&self) -> [usize; 4] {
        let [_, l, h, _, _] = self.source.dims;
        [l, h, self.rows, self.cols]
    }

    fn precision(&self) -> Precision {
        self.source.dtype.precision
    }

    fn head(&self, layer: usize, head: usize) -> Result<DMatrix<T>> {
        let s = &self.source;
        let [batch, nl, nh, _, m] = s.dims;
        if !self.selected {
            return Err(file_error(
                &self.source.label,
                format!(
                    "{} holds a batch of {batch} stacks: choose one with Tensor::entry",
                    s.label
                ),
            ));
        }
        if layer >= nl || head >= nh {
            return Err(file_error(
                &self.source.label,
                format!("(layer {layer}, head {head}) of a {nl} × {nh} stack"),
            ));
        }
        let bytes = self.head_bytes(layer, head)?;
        let size = s.dtype.size();
        let len = self.rows * self.cols;
        let mut values: Vec<T> = Vec::new();
        values.try_reserve_exact(len).map_err(|_| {
            file_error(
                &s.label,
                format!("out of memory for a head of {len} values"),
            )
        })?;
        values.resize(len, T::zero());
        let mut out = DMatrix::<T>::from_vec(self.rows, self.cols, values);
        for i in 0..self.rows {
            for j in 0..self.cols {
                let at = (i * m + j) * size;
                let x = s.dtype.decode(&bytes[at..at + size]);
                let v = T::lit(x);
                if !v.finite() {
                    let full = [self.entry, layer, head, i, j];
                    let index = &full[5 - s.rank..];
                    let problem = if x.is_finite() {
                        format!(
                            "value {x:e} at index {index:?} is out of the range of {}",
                            T::NAME
                        )
                    } else {
                        format!("non-finite value at index {index:?}")
                    };
                    return Err(file_error(&s.label, problem));
                }
                if v == T::zero() && x != 0.0 {
                    // Narrowing never flushes silently (the resource policy).
                    let full = [self.entry, layer, head, i, j];
                    let index = &full[5 - s.rank..];
                    return Err(file_error(
                        &s.label,
                        format!(
                            "value {x:e} at index {index:?} underflows to 0 in {}",
                            T::NAME
                        ),
                    ));
                }
                out[(i, j)] = v;
            }
        }
        Ok(out)
    }
}
