"""Export a transformer's attention probabilities and per-head Q, K, V.

Requires ``torch``, ``transformers`` (5.x; 4.48+ works for the interface
capture, older versions fall back to hooks), ``numpy`` and, for
``--format safetensors``, ``safetensors``: ``pip install torch transformers
numpy safetensors``.  A CPU build of torch is enough.

Usage::

    python scripts/export_attention.py --model bert-base-uncased \\
        --text "The cat sat on the mat." --out out/cat

    HF_HUB_OFFLINE=1 python scripts/export_attention.py \\
        --model /path/to/local/model_dir --texts-file prompts.txt \\
        --out out/run --batch --format safetensors --dtype float16

Options:

``--model NAME_OR_DIR``
    A Hugging Face model name or a local directory holding ``config.json``,
    the weights and the tokenizer files.  Set ``HF_HUB_OFFLINE=1`` to forbid
    any download (then a name only works if it is already in the local cache;
    a local directory always works).
``--text TEXT`` (repeatable) / ``--texts-file FILE`` (one prompt a line,
    blank lines skipped)
    The prompts; both may be given (``--text`` ones first).
``--out PREFIX``
    Output path prefix.  One prompt, or ``--batch``: ``PREFIX.json`` plus the
    arrays.  Several prompts without ``--batch``: one export per prompt, with
    prefix ``PREFIX_<i>`` (i = 0, 1, ...).
``--dtype float16|bfloat16|float32|float64`` (default float32)
    The stored dtype.  The forward pass runs in float32, or in float64 for
    ``--dtype float64`` (the weights are upcast); the checks run on the
    computed arrays before the cast, and a cast that overflows is an error.
    ``bfloat16`` needs ``--format safetensors`` (``.npy`` has no bfloat16).
``--format npy|safetensors`` (default npy)
    npy: ``PREFIX_attn.npy``, ``PREFIX_q.npy``, ``PREFIX_k.npy``,
    ``PREFIX_v.npy`` (C order, little-endian).  safetensors: one file
    ``PREFIX.safetensors`` with tensors ``attn``, ``q``, ``k``, ``v``.
``--batch``
    All prompts in one right-padded batch.  Every array gets a leading batch
    dimension [B, ...] and n is the longest prompt; prompt b occupies
    positions 0 .. n_b - 1.  Query rows and keys past n_b are whatever the
    model produced (the model masks padded keys, so they get probability 0
    in real rows); the per-prompt lengths are ``prompts[b].n`` in the JSON.
``--no-qkv``
    Store the attention only (q/k/v are still captured when possible, to
    run the recomputation check).
``--capture auto|interface|hooks`` (default auto)
    ``interface``: register a recording attention function with
    ``transformers.AttentionInterface`` (it records the query, key and value
    states each attention module hands to its attention function, then runs
    that model's own eager implementation).  ``hooks``: forward hooks on the
    projections (BERT-like ``query``/``key``/``value``, DistilBERT
    ``q_lin``/``k_lin``/``v_lin``, GPT-2 ``c_attn``); no rotary models.
    ``auto``: the interface when it is available and the model routes through
    it, else hooks.
``--name NAME``
    Model name recorded in the JSON (default: ``--model`` as given).
``--tol TOL`` (default 1e-5), ``--device DEVICE`` (default cpu).

Arrays (per prompt; with ``--batch`` a leading [B] is added):

* ``attn`` [layers, heads, n, n] (layer, head, query i, key j): the model's
  attention probabilities, eager attention, ``output_attentions=True``.
* ``q`` [layers, heads, n, d]: per-head queries after the projection (bias
  included) and, for rotary models, after the rotary embedding; before the
  logit scale.
* ``k`` [layers, kv_heads, n, d]: per-KV-head keys, same stage as q.  Query
  head h uses KV head ``kv_group[h]`` (grouped-query attention: h // (heads
  // kv_heads)); without GQA kv_heads == heads and kv_group[h] == h.
* ``v`` [layers, kv_heads, n, d_v]: per-KV-head values after the projection
  (bias included).

The JSON sidecar ``PREFIX.json`` (``"format": "attention-svd-export"``,
``"version": 1``) holds the model description (layers, heads, kv_heads,
head_dim, value_dim, causal, sliding_window, positions, per-layer scale), the
kv_group map, the stored dtype, whether the export is batched, the array
files (names relative to the JSON), the prompts (text, unpadded length n,
tokens, token ids), the validation numbers and the software versions.
Without captured q/k/v (``--no-qkv`` on a model that cannot be captured)
kv_heads, head_dim, value_dim, scale, kv_group and
max_abs_diff_recomputed are null.

Masks: ``causal`` means key j is visible to query i only if j <= i; a
``sliding_window`` W (Mistral-style) further requires i - j < W (a query
sees itself and the W - 1 keys before it).  ``positions`` is "rope",
"absolute", or "bias" when a position bias is added to the logits (ALiBi,
T5/relative biases): then q/k alone do not reproduce the attention and that
check is skipped with a note.

Checks (on the computed arrays, real query rows i < n_b only): every row of
attn sums to 1 within ``--tol``; softmax(q k[kv_group]^T * scale + mask) in
float64 reproduces attn within ``--tol``.  Note: with ``--dtype float64`` the
Llama-family eager implementations still run their softmax in float32, so
attn carries float32 rounding there while q/k/v are float64.

Exit codes: 0 success; 1 a check failed (nothing is written); 2 bad usage,
or the architecture is unsupported (no q/k/v capture without ``--no-qkv``,
per-layer sliding windows, ...): nothing is written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import transformers
from transformers import AutoModel, AutoTokenizer

CAPTURE_NAME = "attention_svd_capture"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16,
          "float32": torch.float32, "float64": torch.float64}
NPY_DTYPES = {"float16": "<f2", "float32": "<f4", "float64": "<f8"}
# Models adding a position bias to the attention logits.
BIAS_MODEL_TYPES = {"t5", "mt5", "umt5", "longt5", "switch_transformers",
                    "bloom", "mpt", "deberta", "deberta-v2", "transfo-xl"}
# BERT-like (query, key, value) projection attribute names.
QKV_NAMES = (("query", "key", "value"), ("q_lin", "k_lin", "v_lin"))


class ExportError(Exception):
    """A failure with an exit code: 1 check failed, 2 unsupported."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass
class LayerRecord:
    """What one self-attention call saw: states [B, heads, n, d] etc."""
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    scale: float
    causal: bool | None
    window: int | None
    notes: list[str] = field(default_factory=list)


@dataclass
class Capture:
    """The arrays of one forward pass (batch dimension kept)."""
    attn: torch.Tensor            # [B, L, H, n, n]
    q: torch.Tensor | None        # [B, L, H, n, d]
    k: torch.Tensor | None        # [B, L, KV, n, d]
    v: torch.Tensor | None        # [B, L, KV, n, dv]
    scales: list[float] | None
    causal: bool
    window: int | None
    notes: list[str]


# ---------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog="Offline: HF_HUB_OFFLINE=1 and --model LOCAL_DIR.")
    p.add_argument("--model", required=True,
                   help="Hugging Face model name or local directory")
    p.add_argument("--text", action="append", default=[],
                   help="a prompt (repeatable)")
    p.add_argument("--texts-file", help="file with one prompt per line")
    p.add_argument("--out", required=True, help="output path prefix")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="float32",
                   help="stored dtype (compute: float32, float64 if asked)")
    p.add_argument("--format", choices=("npy", "safetensors"), default="npy")
    p.add_argument("--batch", action="store_true",
                   help="all prompts in one right-padded batch")
    p.add_argument("--no-qkv", action="store_true",
                   help="store the attention only")
    p.add_argument("--capture", choices=("auto", "interface", "hooks"),
                   default="auto", help="q/k/v capture method")
    p.add_argument("--name", help="model name for the JSON (default --model)")
    p.add_argument("--tol", type=float, default=1e-5, help="check tolerance")
    p.add_argument("--device", default="cpu", help="torch device (cpu)")
    args = p.parse_args(argv)
    if args.dtype == "bfloat16" and args.format == "npy":
        p.error("--dtype bfloat16 needs --format safetensors")
    return args


def read_prompts(args: argparse.Namespace) -> list[str]:
    """--text values, then the non-blank lines of --texts-file."""
    prompts = list(args.text)
    if args.texts_file:
        lines = Path(args.texts_file).read_text(encoding="utf-8").splitlines()
        prompts += [line for line in lines if line.strip()]
    if not prompts:
        raise ExportError("no prompt: give --text or --texts-file", 2)
    return prompts


# ------------------------------------------------------------------ capture
class InterfaceRecorder:
    """Attention function recording (q, k, v) and running the model's eager.

    Registered under CAPTURE_NAME in ``AttentionInterface`` (and the eager
    mask builder under the same name in ``AttentionMaskInterface``, without
    which transformers builds no mask at all for a custom name).  The states
    it receives are after RoPE and before ``repeat_kv`` (kv_heads heads).
    """

    def __init__(self) -> None:
        self.records: list[LayerRecord] = []

    def __call__(self, module: torch.nn.Module, query: torch.Tensor,
                 key: torch.Tensor, value: torch.Tensor,
                 attention_mask: torch.Tensor | None, **kwargs: Any) -> Any:
        eager = eager_function(module)
        scale = kwargs.get("scaling")
        if scale is None:
            scale = getattr(module, "scaling", None)
        if scale is None:
            scale = query.shape[-1] ** -0.5
        window = kwargs.get("sliding_window",
                            getattr(module, "sliding_window", None))
        notes = []
        if kwargs.get("softcap") is not None:
            notes.append("logit soft-capping")
        if getattr(module, "sinks", None) is not None:
            notes.append("attention sinks")
        self.records.append(LayerRecord(
            q=query.detach(), k=key.detach(), v=value.detach(),
            scale=float(scale), causal=getattr(module, "is_causal", None),
            window=int(window) if window is not None else None,
            notes=notes))
        return eager(module, query, key, value, attention_mask, **kwargs)


def eager_function(module: torch.nn.Module) -> Callable[..., Any]:
    """The eager attention function of the module's own modeling file."""
    fn = getattr(sys.modules.get(type(module).__module__),
                 "eager_attention_forward", None)
    if fn is None:
        raise ExportError(f"{type(module).__name__}: no eager_attention_"
                          f"forward in {type(module).__module__}", 2)
    return fn


def register_interface(recorder: InterfaceRecorder) -> bool:
    """Register the recorder; False if this transformers has no interface."""
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import (ALL_MASK_ATTENTION_FUNCTIONS,
                                                AttentionMaskInterface)
    except ImportError:
        return False
    AttentionInterface.register(CAPTURE_NAME, recorder)
    AttentionMaskInterface.register(CAPTURE_NAME,
                                    ALL_MASK_ATTENTION_FUNCTIONS["eager"])
    return True


def load(model_name: str, attn_impl: str, device: str,
         dtype: torch.dtype) -> tuple[Any, torch.nn.Module]:
    """Tokenizer and model (eval, compute dtype, no cache)."""
    tokenizer = AutoTokenizer.from_pretrained(model_name)
    model = AutoModel.from_pretrained(model_name, attn_implementation=attn_impl)
    model = model.to(device=device, dtype=dtype).eval()
    model.config.use_cache = False
    return tokenizer, model


def find_projections(model: torch.nn.Module) -> tuple[str, list[Any]] | None:
    """Hook targets: ('qkv', [(q, k, v) Linear]) or ('c_attn', [Conv1D])."""
    for names in QKV_NAMES:
        found = [tuple(getattr(m, a) for a in names) for m in model.modules()
                 if all(isinstance(getattr(m, a, None), torch.nn.Linear)
                        for a in names)]
        if found:
            return "qkv", found
    found = [m.c_attn for m in model.modules()  # GPT-2: c_attn -> q|k|v
             if getattr(getattr(m, "c_attn", None), "nf", None)
             == 3 * getattr(m, "embed_dim", -1)]
    return ("c_attn", found) if found else None


def register_hooks(kind: str, modules: list[Any],
                   store: dict[str, list[torch.Tensor]]) -> list[Any]:
    """Forward hooks appending projection outputs [B, n, hidden]."""
    def keep(name: str) -> Callable[..., None]:
        return lambda _m, _i, out: store[name].append(out.detach())

    def split(_m: Any, _i: Any, out: torch.Tensor) -> None:
        for name, part in zip("qkv", out.detach().chunk(3, dim=-1)):
            store[name].append(part)

    if kind == "c_attn":
        return [m.register_forward_hook(split) for m in modules]
    handles = []
    for mods in modules:  # a shared module (ALBERT) fires once per layer
        for name, mod in zip("qkv", mods):
            handles.append(mod.register_forward_hook(keep(name)))
    return handles


def hook_records(model: torch.nn.Module, kind: str,
                 store: dict[str, list[torch.Tensor]],
                 heads: int) -> list[LayerRecord]:
    """Turn hooked projections into per-layer records ([B, H, n, d])."""
    attn_modules = [m for m in model.modules()
                    if (kind == "c_attn" and hasattr(m, "c_attn"))
                    or (kind == "qkv" and any(
                        isinstance(getattr(m, n[0], None), torch.nn.Linear)
                        for n in QKV_NAMES))]
    records = []
    for i, (q, k, v) in enumerate(zip(store["q"], store["k"], store["v"])):
        b, n, hidden = q.shape
        split = lambda t: t.reshape(b, n, heads, -1).transpose(1, 2)
        mod = attn_modules[min(i, len(attn_modules) - 1)]
        qh = split(q)
        scale = getattr(mod, "scaling", None)
        if scale is None:
            scale = legacy_scale(model.config, kind, i, qh.shape[-1])
        causal = getattr(mod, "is_causal", None)
        if causal is None and kind == "c_attn":
            causal = True
        records.append(LayerRecord(q=qh, k=split(k), v=split(v),
                                   scale=float(scale), causal=causal,
                                   window=None))
    return records


def legacy_scale(config: Any, kind: str, layer: int, head_dim: int) -> float:
    """Logit scale for transformers versions without ``module.scaling``."""
    scale = 1.0 / math.sqrt(head_dim)
    if kind == "c_attn":
        if not getattr(config, "scale_attn_weights", True):
            scale = 1.0
        if getattr(config, "scale_attn_by_inverse_layer_idx", False):
            scale /= layer + 1
    return scale


# ------------------------------------------------------------------ forward
def tokenize(tokenizer: Any, prompts: list[str], device: str) -> dict[str, Any]:
    """Right-padded batch (input_ids, attention_mask, ...) on device."""
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = (tokenizer.eos_token or tokenizer.unk_token
                               or tokenizer.convert_ids_to_tokens(0))
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    return {k: v.to(device) for k, v in enc.items()}


def forward(model: torch.nn.Module, enc: dict[str, Any]) -> Any:
    """One no-grad forward with attentions (ids and padding mask only)."""
    with torch.no_grad():
        return model(input_ids=enc["input_ids"],
                     attention_mask=enc["attention_mask"],
                     output_attentions=True)


def assemble(attentions: tuple[torch.Tensor, ...],
             records: list[LayerRecord], want_qkv: bool) -> Capture:
    """Stack per-layer tensors into [B, L, ...] and unify layer metadata."""
    attn = torch.stack([a.detach() for a in attentions], dim=1).cpu()
    layers = attn.shape[1]
    notes = sorted({n for r in records for n in r.notes})
    if not records:
        if want_qkv:
            raise ExportError("q/k/v capture unsupported for this model (no "
                              "call through AttentionInterface and no query/"
                              "key/value, q_lin/k_lin/v_lin or c_attn "
                              "projections); rerun with --no-qkv", 2)
        return Capture(attn, None, None, None, None,
                       causal=observed_causal(attn), window=None, notes=[])
    if len(records) != layers:
        raise ExportError(f"captured {len(records)} attention calls for "
                          f"{layers} layers (cross-attention or shared "
                          f"layers?)", 2)
    try:
        q, k, v = (torch.stack([getattr(r, n) for r in records], dim=1).cpu()
                   for n in "qkv")
    except RuntimeError as e:
        raise ExportError(f"per-layer q/k/v shapes differ: {e}", 2) from e
    windows = {r.window for r in records}
    if len(windows) > 1:
        raise ExportError(f"per-layer sliding windows {sorted(windows, key=str)}"
                          " cannot be described by one sliding_window", 2)
    causals = {r.causal for r in records}
    if len(causals) > 1 and None not in causals:
        raise ExportError("layers differ in causality", 2)
    causal = causals.pop() if len(causals) == 1 else None
    if causal is None:
        causal = observed_causal(attn)
    return Capture(attn, q, k, v, [r.scale for r in records], bool(causal),
                   windows.pop(), notes)


def observed_causal(attn: torch.Tensor) -> bool:
    """Causal when every strictly-upper entry is exactly 0 (n > 1)."""
    n = attn.shape[-1]
    return n > 1 and not attn.triu(1).any().item()


def run(args: argparse.Namespace, prompts: list[str],
        dtype: torch.dtype) -> tuple[Any, torch.nn.Module, list[Capture],
                                     list[dict[str, Any]], str]:
    """Load, then one forward per prompt (or one for the batch)."""
    recorder = InterfaceRecorder()
    use_interface = args.capture != "hooks" and register_interface(recorder)
    if args.capture == "interface" and not use_interface:
        raise ExportError("this transformers has no AttentionInterface", 2)
    groups = [prompts] if args.batch else [[p] for p in prompts]
    for method in (["interface"] if use_interface else []) + (
            ["hooks"] if args.capture != "interface" else []):
        impl = CAPTURE_NAME if method == "interface" else "eager"
        tokenizer, model = load(args.model, impl, args.device, dtype)
        captures, encodings = [], []
        for group in groups:
            enc = tokenize(tokenizer, group, args.device)
            records: list[LayerRecord] = []
            if method == "interface":
                recorder.records = records
                out = forward(model, enc)
            else:
                store: dict[str, list[torch.Tensor]] = {"q": [], "k": [],
                                                        "v": []}
                found = find_projections(model)
                handles = register_hooks(*found, store) if found else []
                try:
                    out = forward(model, enc)
                finally:
                    for h in handles:
                        h.remove()
                if found:
                    heads = out.attentions[0].shape[1]
                    records = hook_records(model, found[0], store, heads)
            if method == "interface" and not records:
                break  # the model does not route through the interface
            captures.append(assemble(out.attentions, records,
                                     not args.no_qkv))
            encodings.append(enc)
        else:
            return tokenizer, model, captures, encodings, method
    raise ExportError("the model made no call through AttentionInterface", 2)


# --------------------------------------------------------------- validation
def kv_groups(heads: int, kv_heads: int) -> list[int]:
    """Query head -> KV head (repeat_kv order: h // (heads // kv_heads))."""
    if heads % kv_heads:
        raise ExportError(f"{heads} heads not a multiple of {kv_heads} KV "
                          f"heads", 2)
    return [h // (heads // kv_heads) for h in range(heads)]


def positions_kind(model: torch.nn.Module) -> str:
    """'rope', 'bias' (position bias added to the logits) or 'absolute'."""
    config = model.config
    pet = getattr(config, "position_embedding_type", None)
    if (config.model_type in BIAS_MODEL_TYPES or getattr(config, "alibi", False)
            or (pet is not None and pet not in ("absolute", "rope", "rotary"))):
        return "bias"
    if any("rotary" in type(m).__name__.lower() for m in model.modules()):
        return "rope"
    return "absolute"


def reference_mask(n: int, length: int, causal: bool,
                   window: int | None) -> torch.Tensor:
    """Boolean [n, n]: key j visible to query i."""
    i = torch.arange(n).view(-1, 1)
    j = torch.arange(n).view(1, -1)
    allowed = (j < length).expand(n, n)
    if causal:
        allowed = allowed & (j <= i)
    if window is not None:
        allowed = allowed & ((i - j) < window)
    return allowed


def recompute(q: torch.Tensor, k: torch.Tensor, groups: list[int],
              scales: list[float], allowed: torch.Tensor) -> torch.Tensor:
    """softmax(q k[kv_group]^T * scale + mask) in float64, [L, H, n, n]."""
    k = k.double()[:, groups]
    s = torch.tensor(scales, dtype=torch.float64).view(-1, 1, 1, 1)
    logits = q.double() @ k.transpose(-1, -2) * s
    logits = logits.masked_fill(~allowed, float("-inf"))
    return logits.softmax(dim=-1)


def validate(cap: Capture, lengths: list[int], groups: list[int] | None,
             positions: str, tol: float) -> dict[str, float | None]:
    """Row sums and recomputation on the real rows of every prompt."""
    row_err = 0.0
    diff: float | None = None
    for b, length in enumerate(lengths):
        a = cap.attn[b, :, :, :length].double()
        row_err = max(row_err, (a.sum(-1) - 1.0).abs().max().item())
        if cap.q is None or positions == "bias" or groups is None:
            continue
        allowed = reference_mask(cap.attn.shape[-1], length, cap.causal,
                                 cap.window)
        ref = recompute(cap.q[b], cap.k[b], groups, cap.scales, allowed)
        d = (ref[:, :, :length] - a).abs().max().item()
        diff = d if diff is None else max(diff, d)
    if not row_err <= tol:
        raise ExportError(f"attention rows do not sum to 1 within {tol}: "
                          f"max |row sum - 1| = {row_err:.3e}")
    if diff is not None and not diff <= tol:
        hint = f" ({', '.join(cap.notes)})" if cap.notes else ""
        raise ExportError(f"softmax(q k^T scale + mask) does not reproduce "
                          f"the attention within {tol}: max abs diff = "
                          f"{diff:.3e}{hint}")
    return {"max_row_sum_error": row_err, "max_abs_diff_recomputed": diff}


# ------------------------------------------------------------------ writing
def stored_arrays(cap: Capture, batched: bool, no_qkv: bool,
                  dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The tensors to write, cast to the stored dtype, overflow checked."""
    names = ("attn",) if no_qkv or cap.q is None else ("attn", "q", "k", "v")
    out = {}
    for name in names:
        t = getattr(cap, name)
        t = (t if batched else t[0]).to(dtype).contiguous()
        if not torch.isfinite(t).all():
            raise ExportError(f"{name} overflows {dtype} (non-finite values "
                              f"after the cast)")
        out[name] = t
    return out


def write_arrays(prefix: Path, arrays: dict[str, torch.Tensor], fmt: str,
                 dtype_name: str) -> dict[str, dict[str, str]]:
    """Write npy files or one safetensors file; return the JSON 'arrays'."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        from safetensors.torch import save_file
        path = prefix.with_name(prefix.name + ".safetensors")
        save_file(arrays, str(path))
        path.chmod(0o666 & ~current_umask())  # save_file creates it 0600
        return {n: {"file": path.name, "tensor": n} for n in arrays}
    entries = {}
    for name, t in arrays.items():
        path = prefix.with_name(f"{prefix.name}_{name}.npy")
        np.save(path, np.ascontiguousarray(
            t.cpu().numpy().astype(NPY_DTYPES[dtype_name])))
        entries[name] = {"file": path.name}
    return entries


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def prompt_entries(tokenizer: Any, texts: list[str],
                   enc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per prompt: text, unpadded n, tokens, token ids."""
    entries = []
    for b, text in enumerate(texts):
        n = int(enc["attention_mask"][b].sum().item())
        ids = enc["input_ids"][b, :n].tolist()
        entries.append({"text": text, "n": n,
                        "tokens": tokenizer.convert_ids_to_tokens(ids),
                        "token_ids": ids})
    return entries


def sidecar(args: argparse.Namespace, model: torch.nn.Module, cap: Capture,
            groups: list[int] | None, positions: str,
            arrays: dict[str, dict[str, str]], prompts: list[dict[str, Any]],
            validation: dict[str, float | None]) -> dict[str, Any]:
    """The JSON document (schema 'attention-svd-export' version 1)."""
    _, layers, heads, n, _ = cap.attn.shape
    return {
        "format": "attention-svd-export", "version": 1,
        "model": {
            "name": args.name or args.model,
            "type": model.config.model_type,
            "class": type(model).__name__,
            "layers": layers, "heads": heads,
            "kv_heads": cap.k.shape[2] if cap.k is not None else None,
            "head_dim": cap.q.shape[-1] if cap.q is not None else None,
            "value_dim": cap.v.shape[-1] if cap.v is not None else None,
            "causal": cap.causal, "sliding_window": cap.window,
            "positions": positions,
            "scale": cap.scales,
        },
        "kv_group": groups,
        "dtype": args.dtype,
        "batched": bool(args.batch),
        "arrays": arrays,
        "prompts": prompts,
        "validation": validation,
        "software": {"torch": torch.__version__,
                     "transformers": transformers.__version__,
                     "python": platform.python_version()},
    }


# --------------------------------------------------------------------- main
def export(args: argparse.Namespace) -> None:
    """All steps; raises ExportError before writing anything on failure."""
    prompts = read_prompts(args)
    compute = torch.float64 if args.dtype == "float64" else torch.float32
    tokenizer, model, captures, encodings, method = run(args, prompts,
                                                        compute)
    positions = positions_kind(model)
    groups_texts = [prompts] if args.batch else [[p] for p in prompts]
    base = Path(args.out)
    plans = []
    for i, (cap, enc, texts) in enumerate(zip(captures, encodings,
                                              groups_texts)):
        entries = prompt_entries(tokenizer, texts, enc)
        groups = (kv_groups(cap.q.shape[2], cap.k.shape[2])
                  if cap.q is not None else None)
        validation = validate(cap, [e["n"] for e in entries], groups,
                              positions, args.tol)
        arrays = stored_arrays(cap, args.batch, args.no_qkv,
                               DTYPES[args.dtype])
        prefix = base if len(captures) == 1 else base.with_name(
            f"{base.name}_{i}")
        plans.append((prefix, cap, groups, arrays, entries, validation))
        shape = "x".join(map(str, cap.attn.shape[1:]))
        how = method if cap.q is not None else "none"
        print(f"[{prefix.name}] capture={how} attn[{shape}] "
              f"row-sum err {validation['max_row_sum_error']:.2e}, "
              f"recomputed diff "
              + (f"{validation['max_abs_diff_recomputed']:.2e}"
                 if validation["max_abs_diff_recomputed"] is not None
                 else "n/a"))
    if positions == "bias":
        print("note: the model adds a position bias to the logits; the "
              "q/k recomputation check is skipped")
    for prefix, cap, groups, arrays, entries, validation in plans:
        files = write_arrays(prefix, arrays, args.format, args.dtype)
        meta = sidecar(args, model, cap, groups, positions, files, entries,
                       validation)
        json_path = prefix.with_name(prefix.name + ".json")
        json_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False)
                             + "\n", encoding="utf-8")
        print(f"wrote {json_path} and "
              f"{', '.join(sorted({f['file'] for f in files.values()}))}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    transformers.utils.logging.disable_progress_bar()
    try:
        export(args)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
