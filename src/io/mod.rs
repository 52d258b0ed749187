//! Reading and writing the files attention comes in.
//!
//! - [`npy`] (feature `npy`): NumPy `.npy` stacks.
//!
//! Every problem with a file is an [`Error::File`](crate::Error::File) that
//! names the file and what is wrong with it.

#[cfg(feature = "npy")]
#[cfg_attr(docsrs, doc(cfg(feature = "npy")))]
pub mod npy;
