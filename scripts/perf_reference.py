#!/usr/bin/env python3
"""Times the reference implementations for `cargo run --release --example perf`.

The Rust harness writes its seeded inputs as .npy files and a `tasks.json`
into one directory, runs this script on it, and reads back one JSON object
on stdout: {"versions": {...}, "times": {task name: median seconds}}.
Nothing here generates data, so both sides time the very same inputs.

Tasks (field "kind"):
  svd_full       np.linalg.svd(a, full_matrices=False)   (LAPACK gesdd)
  svd_values     np.linalg.svd(a, compute_uv=False)       (gesdd, no vectors)
  softmax        softmax(q @ k.T * scale) row-wise, stable, optional causal mask
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
import sklearn
from sklearn.utils.extmath import randomized_svd
from threadpoolctl import threadpool_info, threadpool_limits


def median_seconds(fn, min_reps, min_seconds, max_reps):
    """Median wall time of fn() after one warm-up call."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (
        time.perf_counter() - start < min_seconds and len(times) < max_reps
    ):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
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


def task_fn(directory, task):
    kind = task["kind"]
    if kind in ("svd_full", "svd_values"):
        a = load(directory, task["files"][0])[0, 0]
        if kind == "svd_full":
            return lambda: np.linalg.svd(a, full_matrices=False)
        return lambda: np.linalg.svd(a, compute_uv=False)
    if kind == "softmax":
        q = load(directory, task["files"][0])[0, 0]
        k = load(directory, task["files"][1])[0, 0]
        scale = q.dtype.type(task["scale"])
        return lambda: softmax(q, k, scale, task["causal"])
    if kind == "randomized":
        a = load(directory, task["files"][0])[0, 0]
        return lambda: randomized_svd(a, task["rank"], random_state=0)
    if kind == "batched_values":
        stack = load(directory, task["files"][0])
        return lambda: np.linalg.svd(stack, compute_uv=False)
    raise ValueError(f"unknown task kind {kind!r}")


def main():
    directory = sys.argv[1]
    with open(os.path.join(directory, "tasks.json")) as f:
        spec = json.load(f)
    times = {}
    for task in spec["tasks"]:
        fn = task_fn(directory, task)
        with threadpool_limits(limits=task["threads"]):
            times[task["name"]] = median_seconds(
                fn, spec["min_reps"], spec["min_seconds"], spec["max_reps"]
            )
        print(f"  numpy {task['name']}: {times[task['name']] * 1e3:.2f} ms", file=sys.stderr)
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
    json.dump({"versions": versions, "times": times}, sys.stdout)


if __name__ == "__main__":
    main()
