#!/usr/bin/env python3
"""Test bidiagonals and high-precision reference singular values.

Writes tests/data/dqds/<family>.txt (the references of the dqds unit tests in
src/svd/dqds.rs). Each case:

    case <name> <k>
    d <f64 bits as 16 hex digits> ...
    e <...>                       (k-1 entries)
    s <hi bits>:<lo bits> ...     (descending; hi + lo = sigma to ~1e-30)

The reference is independent of the code under test: every singular value
is located by bisection on the Sturm count (inertia of LDL^T) of the
Golub-Kahan matrix TGK = tridiag(0; d1, e1, d2, ..., dk) of order 2k, in
Python's decimal arithmetic with 45 significant digits and an unbounded
exponent range. Demmel & Kahan (1990) show the TGK count is relatively
robust, so the reference has relative error ~ k*1e-45, far below f64
resolution. LAPACK's dbdsqr (numpy's OpenBLAS, through ctypes) only
supplies starting brackets; each bracket is verified by two counts before
it is narrowed, and replaced by a global bracket when it fails.

Usage: python3 scripts/dqds_reference.py [--big]   (--big: the k = 1000 cases)
"""
import ctypes
import glob
import math
import os
import struct
import sys
from decimal import Decimal as D, localcontext, Context

import numpy as np

CTX = Context(prec=45, Emax=10**7, Emin=-10**7)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "dqds")


def lapack():
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "libscipy_openblas64_*.so"))
    lib = ctypes.CDLL(libs[0])
    f = lib.scipy_LAPACKE_dbdsqr64_
    i64 = ctypes.c_int64
    dp = ctypes.POINTER(ctypes.c_double)
    f.argtypes = [ctypes.c_int, ctypes.c_char, i64, i64, i64, i64, dp, dp, dp, i64, dp, i64, dp, i64]
    f.restype = i64
    return f


DBDSQR = lapack()


def lapack_values(d, e):
    k = len(d)
    dd = np.ascontiguousarray(d, dtype=np.float64).copy()
    ee = np.zeros(max(k, 1))
    ee[: k - 1] = e
    dummy = np.zeros(1)
    p = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
    info = DBDSQR(102, b"U", k, 0, 0, 0, p(dd), p(ee), p(dummy), 1, p(dummy), 1, p(dummy), 1)
    if info != 0:
        return None
    return sorted(np.abs(dd), reverse=True)


def bits(x):
    return "%016x" % struct.unpack("<Q", struct.pack("<d", float(x)))[0]


def count_below(b2, x):
    """Number of singular values < x (x > 0): negative pivots of TGK - x I, minus k."""
    with localcontext(CTX):
        neg = 0
        p = -x
        tiny = x * D("1e-80")
        if p < 0:
            neg += 1
        for bb in b2:
            if p == 0:
                p = -tiny
            p = -x - bb / p
            if p < 0:
                neg += 1
        return neg - (len(b2) + 1) // 2


def reference(d, e):
    k = len(d)
    with localcontext(CTX):
        b2 = []
        for i in range(k):
            b2.append(D(float(d[i])) * D(float(d[i])))
            if i < k - 1:
                b2.append(D(float(e[i])) * D(float(e[i])))
        amax = max([abs(float(x)) for x in d] + [abs(float(x)) for x in e] + [0.0])
        if amax == 0.0:
            return [D(0)] * k
        upper = D(amax) * 3  # ||B||_2 <= 2 max|entry|
        floor = D(amax) * D("1e-2000")  # below this: an exact zero
        est = lapack_values(d, e)
        out = []
        for i in range(k):  # i-th largest = j-th smallest
            j = k - i
            lo = hi = None
            if est is not None and est[i] > 0 and math.isfinite(est[i]):
                s = D(float(est[i]))
                for delta in (D("1e-12"), D("1e-6"), D("1e-2")):
                    a, b = s * (1 - delta), s * (1 + delta)
                    if count_below(b2, a) < j <= count_below(b2, b):
                        lo, hi = a, b
                        break
            if lo is None:
                if count_below(b2, floor) >= j:
                    out.append(D(0))
                    continue
                lo, hi = floor, upper
                # bisect in log space until the bracket is relatively narrow
                while hi > lo * 4:
                    mid = (lo * hi).sqrt()
                    if count_below(b2, mid) >= j:
                        hi = mid
                    else:
                        lo = mid
            while hi - lo > hi * D("1e-33"):
                mid = (lo + hi) / 2
                if count_below(b2, mid) >= j:
                    hi = mid
                else:
                    lo = mid
            out.append((lo + hi) / 2)
        return out


def split(x):
    with localcontext(CTX):
        hi = float(x)
        lo = float(x - D(hi))
        return "%s:%s" % (bits(hi), bits(lo))


def write(family, cases):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, family + ".txt")
    with open(path, "w") as f:
        for name, d, e in cases:
            d = [float(x) for x in d]
            e = [float(x) for x in e]
            assert len(e) == max(len(d) - 1, 0)
            ref = reference(d, e)
            f.write("case %s %d\n" % (name, len(d)))
            f.write("d " + " ".join(bits(x) for x in d) + "\n")
            f.write("e " + " ".join(bits(x) for x in e) + "\n")
            f.write("s " + " ".join(split(x) for x in ref) + "\n")
            print(family, name, len(d), flush=True)


def graded(k, lo_exp, hi_exp, rng, jitter=True):
    t = np.linspace(hi_exp, lo_exp, 2 * k - 1)
    v = 10.0 ** t
    if jitter:
        v = v * rng.uniform(0.5, 2.0, size=v.shape)
    return v[0::2], v[1::2]


def cholesky_bidiagonal(diag, off):
    """Upper bidiagonal R with R^T R = T (T tridiagonal, positive definite), in decimal."""
    with localcontext(Context(prec=60)):
        k = len(diag)
        d, e = [], []
        prev_e = D(0)
        for i in range(k):
            di = (D(diag[i]) - prev_e * prev_e).sqrt()
            d.append(di)
            if i < k - 1:
                ei = D(off[i]) / di
                e.append(ei)
                prev_e = ei
        return [float(x) for x in d], [float(x) for x in e]


def small_cases():
    rng = np.random.default_rng(20240101)
    yield "k1_pos", [3.0], []
    yield "k1_neg", [-2.5], []
    yield "k1_zero", [0.0], []
    yield "k1_subnormal", [1e-320], []
    yield "k1_huge", [1.7e308], []
    yield "k2_generic", [1.0, 0.5], [2.0]
    yield "k2_signs", [-1.0, 0.5], [-2.0]
    yield "k2_zero_d0", [0.0, 1.0], [1.0]
    yield "k2_zero_d1", [1.0, 0.0], [1.0]
    yield "k2_zero_e", [1.0, 3.0], [0.0]
    yield "k2_tiny_e", [1.0, 1.0], [1e-20]
    yield "k2_equal", [1.0, 1.0], [1.0]
    yield "k2_graded", [1e150, 1e-150], [1.0]
    yield "k2_huge", [1e300, 1e300], [1e300]
    yield "k2_near_max", [1.5e308, 1e308], [1e308]
    yield "k2_nilpotent", [0.0, 0.0], [1.0]
    yield "k3_generic", [1.0, 2.0, 3.0], [0.5, 0.25]
    yield "k3_zero_mid", [1.0, 0.0, 1.0], [1.0, 1.0]
    yield "k3_graded", [1e100, 1.0, 1e-100], [1e50, 1e-50]
    yield "k3_tiny", [1e-300, 2e-300, 3e-300], [1e-300, 1e-300]
    yield "k3_subnormal", [1e-310, 2e-310, 3e-311], [4e-311, 1e-310]
    yield "k3_diag", [1.0, -5.0, 2.0], [0.0, 0.0]
    yield "k3_ones", [1.0, 1.0, 1.0], [1.0, 1.0]
    for s in range(8):
        d = rng.standard_normal(3)
        e = rng.standard_normal(2)
        yield "k3_random%d" % s, d, e
    for s in range(6):
        d = rng.standard_normal(2)
        e = rng.standard_normal(1)
        yield "k2_random%d" % s, d, e


def random_cases():
    rng = np.random.default_rng(7)
    for k in [4, 5, 6, 8, 10, 13, 17, 25, 32, 50, 64, 100, 150]:
        yield "normal_k%d" % k, rng.standard_normal(k), rng.standard_normal(k - 1)
        yield "uniform_k%d" % k, rng.uniform(0, 1, k), rng.uniform(0, 1, k - 1)
    for k in [10, 40]:
        # large e's relative to d (ill-conditioned, small sigma_min)
        yield "dominant_e_k%d" % k, rng.uniform(0.1, 1, k), rng.uniform(1, 3, k - 1)


def graded_cases():
    rng = np.random.default_rng(11)
    for k in [5, 10, 20, 50]:
        d, e = graded(k, -150, 150, rng)
        yield "down_k%d" % k, d, e
        yield "up_k%d" % k, d[::-1], e[::-1]
        d, e = graded(k, -150, 150, rng, jitter=False)
        yield "down_exact_k%d" % k, d, e
        ex_d = rng.uniform(-150, 150, k)
        ex_e = rng.uniform(-150, 150, k - 1)
        yield "random_exponents_k%d" % k, 10.0 ** ex_d, 10.0 ** ex_e
        zig = np.array([1e150 if i % 2 == 0 else 1e-150 for i in range(k)]) * rng.uniform(0.5, 2, k)
        yield "zigzag_d_k%d" % k, zig, rng.uniform(0.5, 2, k - 1)
        yield "zigzag_e_k%d" % k, rng.uniform(0.5, 2, k), zig[: k - 1]
        mid = 10.0 ** (150 - 300 * (1 - np.abs(np.linspace(-1, 1, 2 * k - 1))))
        yield "small_middle_k%d" % k, mid[0::2], mid[1::2]
        yield "large_middle_k%d" % k, (1.0 / mid)[0::2], (1.0 / mid)[1::2]
    # graded d with O(1) e (e dominates the small d's)
    for k in [10, 30]:
        d, _ = graded(k, -150, 150, rng)
        yield "graded_d_unit_e_k%d" % k, d, np.ones(k - 1)


def zero_tiny_cases():
    rng = np.random.default_rng(13)
    for k in [4, 7, 12, 30]:
        base_d = rng.uniform(0.5, 1.5, k)
        base_e = rng.uniform(0.5, 1.5, k - 1)
        for pos, label in [(0, "top"), (k // 2, "mid"), (k - 1, "bottom")]:
            d = base_d.copy()
            d[pos] = 0.0
            yield "zero_d_%s_k%d" % (label, k), d, base_e
            d = base_d.copy()
            d[pos] = 1e-300
            yield "tiny_d_%s_k%d" % (label, k), d, base_e
            d = base_d.copy()
            d[pos] = 5e-324
            yield "subnormal_d_%s_k%d" % (label, k), d, base_e
        for pos, label in [(0, "top"), ((k - 1) // 2, "mid"), (k - 2, "bottom")]:
            e = base_e.copy()
            e[pos] = 0.0
            yield "zero_e_%s_k%d" % (label, k), base_d, e
            e = base_e.copy()
            e[pos] = 1e-300
            yield "tiny_e_%s_k%d" % (label, k), base_d, e
            e = base_e.copy()
            e[pos] = 1e-17
            yield "small_e_%s_k%d" % (label, k), base_d, e
        d = base_d.copy()
        d[0] = d[k - 1] = 0.0
        yield "two_zero_d_k%d" % k, d, base_e
        d = base_d.copy()
        d[1::3] = 0.0
        yield "many_zero_d_k%d" % k, d, base_e
        e = base_e.copy()
        e[::2] = 0.0
        yield "many_zero_e_k%d" % k, base_d, e
        yield "all_tiny_k%d" % k, base_d * 1e-300, base_e * 1e-300
        yield "all_subnormal_k%d" % k, base_d * 1e-310, base_e * 1e-310
        yield "all_huge_k%d" % k, base_d * 1e300, base_e * 1e300
        yield "near_overflow_k%d" % k, base_d * 1e307, base_e * 1e307
        yield "zero_d_tiny_e_k%d" % k, np.zeros(k), base_e * 1e-200


def diagonal_cases():
    rng = np.random.default_rng(17)
    for k in [3, 5, 20, 100]:
        yield "diag_normal_k%d" % k, rng.standard_normal(k), np.zeros(k - 1)
        yield "diag_graded_k%d" % k, 10.0 ** rng.uniform(-300, 300, k) * rng.choice([-1, 1], k), np.zeros(k - 1)
        yield "diag_repeated_k%d" % k, np.full(k, -2.0), np.zeros(k - 1)
    yield "zero_matrix_k6", np.zeros(6), np.zeros(5)


def repeated_cases():
    rng = np.random.default_rng(19)
    for k in [4, 9, 30]:
        yield "identity_k%d" % k, np.ones(k), np.zeros(k - 1)
        yield "identity_tiny_e_k%d" % k, np.ones(k), np.full(k - 1, 1e-20)
        yield "identity_small_e_k%d" % k, np.ones(k), np.full(k - 1, 1e-9)
        yield "ones_k%d" % k, np.ones(k), np.ones(k - 1)
        # identical 2x2 blocks -> every pair of values repeated k/2 times
        m = k // 2
        d = np.tile([1.0, 0.3], m)
        e = np.zeros(2 * m - 1)
        e[0::2] = 0.7
        yield "repeated_blocks_k%d" % (2 * m), d, e
        # nearly repeated: blocks coupled by tiny e
        e2 = e.copy()
        e2[1::2] = 1e-12
        yield "coupled_blocks_k%d" % (2 * m), d, e2
        yield "constant_k%d" % k, np.full(k, 3.0), np.full(k - 1, 3.0)
        yield "cluster_k%d" % k, 1.0 + 1e-14 * rng.standard_normal(k), 1e-8 * rng.uniform(0, 1, k - 1)


def wilkinson_cases():
    for m in [3, 5, 10, 20]:  # W_{2m+1}^+ + 2I (positive definite), its Cholesky bidiagonal
        n = 2 * m + 1
        diag = [abs(m - i) + 2 for i in range(n)]
        off = [1] * (n - 1)
        d, e = cholesky_bidiagonal(diag, off)
        yield "wplus_chol_k%d" % n, d, e
        # W^- style: sign-alternating diagonal as a bidiagonal directly
        yield "wilk_bidiag_k%d" % n, [float(abs(m - i)) for i in range(n)], [1.0] * (n - 1)
        # W^+ + 0.0001 I: nearly singular? no - W+ min eig > -1.2; use shift making it barely PD
    n = 21
    diag = [abs(10 - i) + 1.2 for i in range(n)]
    d, e = cholesky_bidiagonal(diag, [1] * (n - 1))
    yield "wplus_barely_pd_k21", d, e


def big_cases():
    rng = np.random.default_rng(23)
    k = 1000
    yield "uniform_k1000", rng.uniform(0, 1, k), rng.uniform(0, 1, k - 1)
    yield "ones_k1000", np.ones(k), np.ones(k - 1)
    d, e = graded(k, -150, 150, rng)
    yield "graded_k1000", d, e
    m = 500
    diag = [abs(m - i) / 10 + 2 for i in range(k)]
    d, e = cholesky_bidiagonal(diag, [1] * (k - 1))
    yield "wplus_chol_k1000", d, e


FAMILIES = {
    "small": small_cases,
    "random": random_cases,
    "graded": graded_cases,
    "zero_tiny": zero_tiny_cases,
    "diagonal": diagonal_cases,
    "repeated": repeated_cases,
    "wilkinson": wilkinson_cases,
}

if __name__ == "__main__":
    if "--big" in sys.argv:
        write("big", list(big_cases()))
    else:
        only = [a for a in sys.argv[1:] if not a.startswith("-")]
        for fam, gen in FAMILIES.items():
            if not only or fam in only:
                write(fam, list(gen()))
