"""Shared helpers for the benchmarks: machine facts, timing, the fp32 matmul peak, and the peer's models.

The peer is lucidrains' ``g-mlp-pytorch`` (PyPI, see requirements-bench.txt). Its gMLP is configured to match
ours exactly where the two share a meaning:

- ``dim = d_model``, ``depth = n_layers``, ``seq_len = n``, ``ff_mult = d_ffn / d_model`` (its ``dim_ff`` is the width
  of U's output before the split, like our ``d_ffn``), ``heads = 1`` (one W, as ours), ``causal = False``,
  ``attn_dim = None`` (gMLP, not aMLP), ``prob_survival = 1`` (no layer dropout), no token shift.
- Same block: ``x + V(s(GELU(U(LN(x)))))`` with ``s(Z) = Z1 * (W LN(Z2) + b)``, W initialised ~U(+-1e-3/n), b = 1.
- Heads differ by design: the peer's ``to_logits`` is LayerNorm + Linear(d, vocab) on *every* position; ours is
  BERT's head (dense, GELU, LayerNorm, decoder tied to the embedding) on the *masked* positions only. The benchmarks
  report the peer as shipped and, to separate trunk from head, the peer's trunk under our head.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from gmlp_core.models.config import ModelConfig


def machine() -> dict[str, str]:
    """CPU model, cores, torch version and threads, for the README's figures."""
    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), model)
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "torch": torch.__version__,
        "threads": str(torch.get_num_threads()),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "avx512_bf16": str(torch.cpu._is_avx512_bf16_supported()),
        "amx": str(torch.cpu._is_amx_tile_supported()),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_avg_1m": f"{load[0]:.2f}",
    }


def print_header(title: str) -> None:
    info = machine()
    print(f"# {title}")
    print("# " + ", ".join(f"{k}={v}" for k, v in info.items()))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(
    fn: Callable[[], object], repeats: int, warmup: int = 1, device: torch.device | None = None
) -> list[float]:
    """Seconds per call of ``fn``, ``repeats`` times after ``warmup`` calls."""
    device = device or torch.device("cpu")
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - start)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used so far, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14 and 15)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def matmul_peak(n: int = 1024, repeats: int = 10, device: torch.device | None = None, dtype=torch.float32) -> float:
    """The best fp32 (or ``dtype``) GEMM throughput in FLOP/s on this machine, measured now: max over repeats."""
    device = device or torch.device("cpu")
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    times = time_calls(lambda: a @ b, repeats, warmup=2, device=device)
    return 2 * n**3 / min(times)


def peer_gmlp(cfg: ModelConfig, with_head: bool = True) -> nn.Module:
    """The peer's gMLP matching ``cfg`` (see the module docstring); ``with_head=False`` gives the bare trunk."""
    from g_mlp_pytorch import gMLP

    if cfg.arch != "gmlp" or cfg.gating != "split" or cfg.spatial != "dense":
        raise ValueError("the peer implements split-gating dense gMLP only")
    if cfg.d_ffn % cfg.d_model:
        raise ValueError(f"the peer needs d_ffn to be a multiple of d_model, got {cfg.d_ffn} / {cfg.d_model}")
    return gMLP(
        num_tokens=cfg.vocab_size if with_head else None,
        dim=cfg.d_model,
        depth=cfg.n_layers,
        seq_len=cfg.seq_len,
        heads=1,
        ff_mult=cfg.d_ffn // cfg.d_model,
        attn_dim=None,
        prob_survival=1.0,
        causal=cfg.causal,
    )
