"""Write the export sidecars (``<name>.json``, format ``attention-svd-export``
version 1, the schema of ``scripts/export_attention.py``) for the shipped
MiniLM data in ``data/minilm``, from its ``manifest.json`` and
``values_manifest.json``.

Usage (from the repository root; needs only the standard library)::

    python3 scripts/minilm_sidecars.py [--check]

``--check`` writes nothing and exits 1 if a sidecar on disk differs from
what would be written.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "minilm"


def sidecar(manifest: dict, values: dict, entry: dict) -> dict:
    model = manifest["model"]
    layers, heads, d = model["layers"], model["heads"], model["head_dim"]
    name = entry["name"]
    arrays = {}
    for role in ("attn", "q", "k"):
        f = entry["files"].get(role)
        if f is not None and (DATA / f).is_file():
            arrays[role] = {"file": f}
    v = next(x for x in values["inputs"] if x["name"] == name)
    arrays["v"] = {"file": v["file"]}
    return {
        "format": "attention-svd-export",
        "version": 1,
        "model": {
            "name": model["name"],
            "type": "bert",
            "class": "BertModel",
            "layers": layers,
            "heads": heads,
            "kv_heads": heads,
            "head_dim": d,
            "value_dim": d,
            "causal": False,
            "sliding_window": None,
            "positions": "absolute",
            "scale": [1.0 / math.sqrt(d)] * layers,
        },
        "kv_group": list(range(heads)),
        "dtype": "float32",
        "batched": False,
        "arrays": arrays,
        "prompts": [
            {
                "text": entry["text"],
                "n": entry["n"],
                "tokens": entry["tokens"],
                "token_ids": entry["token_ids"],
            }
        ],
        "validation": {
            "max_abs_diff_recomputed": entry["check_max_abs_attn_minus_softmax_of_saved_qk"],
        },
        "software": manifest["software"],
        "written_by": "scripts/minilm_sidecars.py from manifest.json and values_manifest.json",
    }


def main() -> int:
    check = "--check" in sys.argv[1:]
    manifest = json.loads((DATA / "manifest.json").read_text())
    values = json.loads((DATA / "values_manifest.json").read_text())
    stale = 0
    for entry in manifest["inputs"]:
        path = DATA / f"{entry['name']}.json"
        text = json.dumps(sidecar(manifest, values, entry), indent=1, ensure_ascii=False) + "\n"
        if check:
            if not path.is_file() or path.read_text() != text:
                print(f"{path}: out of date", file=sys.stderr)
                stale += 1
        else:
            path.write_text(text)
            print(f"wrote {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
