"""Export a transformer's attention probabilities (and per-head Q, K) as .npy.

Requires: ``pip install torch transformers numpy``.

Usage::

    python scripts/export_attention.py --model bert-base-uncased \\
        --text "The cat sat on the mat." --out out/cat [--dtype float64] \\
        [--no-qk] [--device cpu]

``--model`` is a Hugging Face model name or a local directory (set
``HF_HUB_OFFLINE=1`` to forbid any download).  One sequence, no padding, the
tokenizer's default special tokens, ``model.eval()``, ``torch.no_grad()`` and
the eager attention implementation.  ``--dtype`` is the dtype of the outputs
and also of the forward pass (``float64`` upcasts the weights).

Outputs (C-order, little-endian, dtype from ``--dtype``):

* ``<out>_attn.npy``: [layers, heads, n, n] (layer, head, query i, key j),
  the model's attention probabilities; every row sums to 1.
* ``<out>_q.npy``, ``<out>_k.npy``: [layers, heads, n, head_dim], per-head
  queries and keys after the linear projection (bias included), before the
  1/sqrt(head_dim) scaling, captured by forward hooks.
* ``<out>.json``: model, text, tokens, token_ids, n, layers, heads, head_dim,
  causal, dtype, files (names relative to the JSON), validation numbers,
  torch and transformers versions.

Q/K capture supports BERT-like encoders (BERT, RoBERTa, ELECTRA, ALBERT, ...:
projections named ``query``/``key``), DistilBERT (``q_lin``/``k_lin``) and
GPT-2-like decoders (``c_attn`` producing q, k, v concatenated).  Checks:
each attention row sums to 1 within 1e-5; when q, k were captured and the
model has no extra position bias, softmax(q k^T * scale (+ causal mask))
must reproduce the attention within 1e-5 (max abs difference is printed).

Exit codes: 0 success; 1 a check failed (nothing is written); 2 the
architecture is unsupported for Q/K capture: the attention and the JSON are
still written, then the script fails so the gap is not missed.  With
``--no-qk`` no Q/K is captured and an unsupported architecture is not an
error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from transformers import AutoModel, AutoTokenizer

TOL = 1e-5
# (query attribute, key attribute) of BERT-like self-attention modules.
QK_PAIRS = (("query", "key"), ("q_lin", "k_lin"))


def find_projections(model: torch.nn.Module) -> tuple[str, list[Any]] | None:
    """Return (kind, modules) where kind is 'qk' or 'c_attn', or None."""
    found: list[Any]
    for q_name, k_name in QK_PAIRS:
        found = [(getattr(m, q_name), getattr(m, k_name))
                 for m in model.modules()
                 if isinstance(getattr(m, q_name, None), torch.nn.Linear)
                 and isinstance(getattr(m, k_name, None), torch.nn.Linear)]
        if found:
            return "qk", found
    found = [m.c_attn for m in model.modules()  # GPT-2: c_attn -> q|k|v
             if getattr(getattr(m, "c_attn", None), "nf", None)
             == 3 * getattr(m, "embed_dim", -1)]
    return ("c_attn", found) if found else None


def capture(kind: str, modules: list[Any], q_out: list[torch.Tensor],
            k_out: list[torch.Tensor]) -> list[Any]:
    """Register forward hooks appending projection outputs in call order."""
    def keep(store: list[torch.Tensor]) -> Any:
        return lambda _m, _i, out: store.append(out.detach()[0])

    def split(_m: Any, _i: Any, out: torch.Tensor) -> None:
        q, k, _v = out.detach()[0].chunk(3, dim=-1)
        q_out.append(q)
        k_out.append(k)

    if kind == "c_attn":
        return [m.register_forward_hook(split) for m in modules]
    handles = []
    for q_mod, k_mod in modules:  # a shared module (ALBERT) fires per layer
        handles.append(q_mod.register_forward_hook(keep(q_out)))
        handles.append(k_mod.register_forward_hook(keep(k_out)))
    return handles


def to_heads(x: list[torch.Tensor], heads: int) -> torch.Tensor:
    """[layers] x [n, hidden] -> [layers, heads, n, head_dim]."""
    t = torch.stack(x)
    layers, n, hidden = t.shape
    return t.reshape(layers, n, heads, hidden // heads).transpose(1, 2)


def attention_scales(config: Any, kind: str, layers: int,
                     head_dim: int) -> list[float] | None:
    """Logit scale per layer, or None if the model adds a position bias."""
    if getattr(config, "position_embedding_type", "absolute") not in (
            None, "absolute"):
        return None
    base = 1.0 / math.sqrt(head_dim)
    if kind == "c_attn":
        if not getattr(config, "scale_attn_weights", True):
            base = 1.0
        if getattr(config, "scale_attn_by_inverse_layer_idx", False):
            return [base / (i + 1) for i in range(layers)]
    return [base] * layers


def recompute(q: torch.Tensor, k: torch.Tensor, scales: list[float],
              causal: bool) -> torch.Tensor:
    """softmax(q k^T * scale (+ causal mask)) in float64."""
    q, k = q.double(), k.double()
    s = torch.tensor(scales, dtype=torch.float64).view(-1, 1, 1, 1)
    logits = q @ k.transpose(-1, -2) * s
    if causal:
        n = q.shape[-2]
        upper = torch.ones(n, n, dtype=torch.bool).triu(1)
        logits = logits.masked_fill(upper, float("-inf"))
    return logits.softmax(dim=-1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--model", required=True, help="HF model name or path")
    p.add_argument("--text", required=True, help="input text (one sequence)")
    p.add_argument("--out", required=True, help="output path prefix")
    p.add_argument("--dtype", choices=("float32", "float64"),
                   default="float32", help="output and compute dtype")
    p.add_argument("--no-qk", action="store_true", help="attention only")
    p.add_argument("--device", default="cpu", help="torch device (cpu)")
    args = p.parse_args()

    dtype = getattr(torch, args.dtype)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model, attn_implementation="eager")
    model = model.to(device=args.device, dtype=dtype).eval()
    config = model.config
    kind = None if args.no_qk else find_projections(model)

    q_list: list[torch.Tensor] = []
    k_list: list[torch.Tensor] = []
    handles = capture(kind[0], kind[1], q_list, k_list) if kind else []
    enc = tokenizer(args.text, return_tensors="pt").to(args.device)
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    for h in handles:
        h.remove()

    attn = torch.stack([a[0] for a in out.attentions]).cpu()
    layers, heads, n, _ = attn.shape
    head_dim = getattr(config, "hidden_size", 0) // heads or None
    # Declared decoder, or observed: every strictly-upper entry exactly 0.
    causal = (bool(kind and kind[0] == "c_attn")
              or bool(getattr(config, "is_decoder", False))
              or (n > 1 and not attn.triu(1).any().item()))
    ids = enc["input_ids"][0].tolist()
    row_err = (attn.double().sum(-1) - 1.0).abs().max().item()
    print(f"attn [{layers}, {heads}, {n}, {n}] max |row sum - 1| = "
          f"{row_err:.3e}")
    if not row_err <= TOL:
        print(f"error: attention rows do not sum to 1 within {TOL}",
              file=sys.stderr)
        return 1

    q = k = None
    qk_diff = None
    if kind:
        if len(q_list) != layers or len(k_list) != layers:
            print(f"error: captured {len(q_list)} q / {len(k_list)} k "
                  f"projections for {layers} layers", file=sys.stderr)
            return 1
        q, k = to_heads(q_list, heads).cpu(), to_heads(k_list, heads).cpu()
        head_dim = q.shape[-1]
        scales = attention_scales(config, kind[0], layers, head_dim)
        if scales is None:
            print("note: position bias in the logits; q/k check skipped")
        else:
            qk_diff = (recompute(q, k, scales, causal) - attn.double()
                       ).abs().max().item()
            print(f"softmax(q k^T scale) vs attn: max abs diff = "
                  f"{qk_diff:.3e}")
            if not qk_diff <= TOL:
                print(f"error: q/k do not reproduce the attention within "
                      f"{TOL}", file=sys.stderr)
                return 1

    prefix = Path(args.out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"attn": attn, "q": q, "k": k}
    files = {}
    for name, tensor in arrays.items():
        if tensor is None:
            continue
        path = prefix.with_name(f"{prefix.name}_{name}.npy")
        np.save(path, np.ascontiguousarray(tensor.numpy().astype(
            args.dtype)))
        files[name] = path.name
    meta = {
        "model": args.model, "text": args.text,
        "tokens": tokenizer.convert_ids_to_tokens(ids), "token_ids": ids,
        "n": n, "layers": layers, "heads": heads, "head_dim": head_dim,
        "causal": causal, "dtype": args.dtype, "files": files,
        "validation": {"max_row_sum_error": row_err,
                       "max_abs_diff_qk": qk_diff},
        "torch": torch.__version__, "transformers": transformers.__version__,
    }
    json_path = prefix.with_name(prefix.name + ".json")
    json_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {', '.join(files.values())}, {json_path.name} "
          f"in {json_path.parent}")
    if not args.no_qk and not kind:
        print(f"error: q/k capture unsupported for {type(model).__name__} "
              f"(no query/key, q_lin/k_lin or c_attn projections); attention "
              f"written, rerun with --no-qk to accept", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
