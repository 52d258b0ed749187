//! The one map over independent work items (heads, prompts): on rayon's
//! thread pool with the `parallel` feature, serially without. Results keep
//! the order of the indices; the first error (in index order) wins.

use crate::Result;

/// `f(0), …, f(count − 1)`, collected in order.
pub(crate) fn map_indices<R: Send>(
    count: usize,
    f: impl Fn(usize) -> Result<R> + Sync + Send,
) -> Result<Vec<R>> {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        // Collected whole, then scanned: rayon's own `Result` collection
        // returns an unspecified one of several errors.
        let all: Vec<Result<R>> = (0..count).into_par_iter().map(f).collect();
        all.into_iter().collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        (0..count).map(f).collect()
    }
}
