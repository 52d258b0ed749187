"""Write the `.npz` fixtures of tests/io.rs from the shipped MiniLM arrays,
with the standard library only (numpy's np.savez / np.savez_compressed
write the same layout: one ``NAME.npy`` member per array)::

    python3 scripts/npz_fixtures.py
"""

import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "data" / "minilm"
OUT = ROOT / "tests" / "data" / "npz"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    attn = (SRC / "lighthouse_n16_attn.npy").read_bytes()
    q = (SRC / "lighthouse_n16_q.npy").read_bytes()
    with zipfile.ZipFile(OUT / "stored.npz", "w", zipfile.ZIP_STORED) as z:
        z.writestr("attn.npy", attn)
        z.writestr("q.npy", q)
    with zipfile.ZipFile(OUT / "deflated.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("attn.npy", attn)


if __name__ == "__main__":
    main()
