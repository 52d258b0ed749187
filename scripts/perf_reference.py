#!/usr/bin/env python3
"""The reference side of `cargo run --release --example perf`.

The Rust harness writes its seeded inputs as .npy files and a `tasks.json`
into one directory and starts this script on it. The script loads every
input, prints one JSON line {"versions": {...}, "errors": {...}} and then
serves timing requests, one JSON line each way, until its stdin closes:

    request  {"task": NAME, "warm": true}
    reply    {"seconds": MEDIAN}

so that the harness can interleave the two sides round by round on the very
same inputs (nothing here generates data). "errors" holds, for the
randomized tasks, the largest relative error of the k singular values
against LAPACK's full SVD, so the accuracy of both sides is printed too.

Tasks (field "kind"):
  svd_full       np.linalg.svd(a, full_matrices=False)   (LAPACK gesdd)
  svd_values     np.linalg.svd(a, compute_uv=False)       (gesdd, no vectors)
  jsv_full       scipy.linalg.lapack.dgejsv(a)            (preconditioned Jacobi, U and V)
  jsv_values     dgejsv(a, jobu=3, jobv=3)                (values only)
  softmax        softmax(q @ k.T * scale) row-wise, stable, optional causal mask;
                 with "hugepages": false, numpy's madvise(MADV_HUGEPAGE) of its
                 large arrays is switched off for the call (4 KB pages, as
                 a Rust Vec gets them)
  randomized     sklearn.utils.extmath.randomized_svd(a, k, random_state=0)
  batched_values np.linalg.svd(stack, compute_uv=False) on an [l, h, n, m] stack

Every task runs under threadpoolctl's limit given in its "threads" field.
Needs numpy, scipy, scikit-learn and threadpoolctl:
    pip install numpy scipy scikit-learn threadpoolctl
"""

import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import scipy
import scipy.linalg.lapack as lapack
import sklearn
from sklearn.utils.extmath import randomized_svd
from threadpoolctl import threadpool_info, threadpool_limits

try:  # numpy ≥ 2
    from numpy._core.multiarray import _set_madvise_hugepage as set_madvise_hugepage
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _set_madvise_hugepage as set_madvise_hugepage


def median_seconds(fn, warm, spec):
    """Median wall time of fn(), by the harness's rule: an optional warm-up
    call, then runs until at least `min_reps` and `min_seconds` are reached
    (at most `max_reps`), or one run once `max_seconds` have passed."""
    if warm:
        fn()
    times = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if len(times) >= spec["max_reps"] or elapsed >= spec["max_seconds"]:
            break
        if len(times) >= spec["min_reps"] and elapsed >= spec["min_seconds"]:
            break
    return statistics.median(times)


def load(directory, name):
    """A matrix file is a [1, 1, n, m] stack; a stack file stays 4-d."""
    return np.load(os.path.join(directory, name))


def softmax(q, k, scale, causal):
    s = q @ k.T
    s *= scale
    if causal:
        n, m = s.shape
        # Query i sees keys j ≤ i + m − n (the crate's KV-cache alignment).
        s[np.triu(np.ones((n, m), dtype=bool), k=m - n + 1)] = -np.inf
    s -= s.max(axis=1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=1, keepdims=True)
    return s


def dgejsv(a, vectors):
    if vectors:
        out = lapack.dgejsv(a)
    else:
        out = lapack.dgejsv(a, jobu=3, jobv=3)
    if out[-1] != 0:
        raise RuntimeError(f"dgejsv info = {out[-1]}")
    return out


def task_fn(directory, task):
    kind = task["kind"]
    if kind in ("svd_full", "svd_values", "jsv_full", "jsv_values"):
        a = load(directory, task["files"][0])[0, 0]
        if kind == "svd_full":
            return lambda: np.linalg.svd(a, full_matrices=False)
        if kind == "svd_values":
            return lambda: np.linalg.svd(a, compute_uv=False)
        # scipy copies the input on each call (dgejsv overwrites it), as
        # numpy's svd does: O(n²) against O(n³) work.
        return lambda: dgejsv(a, kind == "jsv_full")
    if kind == "softmax":
        q = load(directory, task["files"][0])[0, 0]
        k = load(directory, task["files"][1])[0, 0]
        scale = q.dtype.type(task["scale"])
        if task.get("hugepages", True):
            return lambda: softmax(q, k, scale, task["causal"])

        def small_pages():
            previous = set_madvise_hugepage(False)
            try:
                return softmax(q, k, scale, task["causal"])
            finally:
                set_madvise_hugepage(previous)

        return small_pages
    if kind == "randomized":
        a = load(directory, task["files"][0])[0, 0]
        return lambda: randomized_svd(a, task["rank"], random_state=0)
    if kind == "batched_values":
        stack = load(directory, task["files"][0])
        return lambda: np.linalg.svd(stack, compute_uv=False)
    raise ValueError(f"unknown task kind {kind!r}")


def randomized_error(directory, task):
    a = load(directory, task["files"][0])[0, 0]
    k = task["rank"]
    exact = np.linalg.svd(a, compute_uv=False)[:k]
    _, s, _ = randomized_svd(a, k, random_state=0)
    return float(np.max(np.abs(s - exact) / exact))


def main():
    directory = sys.argv[1]
    with open(os.path.join(directory, "tasks.json")) as f:
        spec = json.load(f)
    tasks = {t["name"]: (t, task_fn(directory, t)) for t in spec["tasks"]}
    errors = {}
    for name, (task, _) in tasks.items():
        if task["kind"] == "randomized":
            with threadpool_limits(limits=task["threads"]):
                errors[name] = randomized_error(directory, task)
    blas = [
        f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture', '')})"
        for p in threadpool_info()
        if p.get("user_api") == "blas"
    ]
    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "blas": sorted(set(blas)),
    }
    print(json.dumps({"versions": versions, "errors": errors}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        task, fn = tasks[request["task"]]
        with threadpool_limits(limits=task["threads"]):
            seconds = median_seconds(fn, request["warm"], spec)
        print(json.dumps({"seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
