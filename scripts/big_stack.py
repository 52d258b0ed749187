"""Write a large attention stack for the memory check of docs/PERFORMANCE.md.

Pure Python (no numpy): one 512×512 row-stochastic head (softmax of seeded
Gaussian logits of standard deviation 3), repeated over [12, 12] heads, as a
float32 ``.npy`` file of 151 MB::

    python3 scripts/big_stack.py /tmp/big.npy
"""

import array
import math
import random
import sys

N, LAYERS, HEADS = 512, 12, 12


def main(path: str) -> None:
    random.seed(0)
    head = array.array("f")
    for _ in range(N):
        x = [random.gauss(0.0, 3.0) for _ in range(N)]
        m = max(x)
        e = [math.exp(v - m) for v in x]
        s = sum(e)
        head.extend(v / s for v in e)
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({LAYERS}, {HEADS}, {N}, {N}), }}"
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
        block = head.tobytes()
        for _ in range(LAYERS * HEADS):
            f.write(block)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "big.npy")
