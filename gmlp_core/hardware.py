"""What the hardware can do, detected from torch's own build and the CPU's flags, never guessed from a name.

Two facts matter to this project:

- **Which float32 kernels run.** torch's CPU capability (``AVX2``, ``AVX512``) picks ATen's vector kernels,
  but oneDNN and MKL choose their own from the CPU's flags (AVX-512 BF16, AMX, ...). Two machines that report
  the same capability can therefore sum float32 in another order, so a number reproduces bit for bit only on
  the same machine kind; ``cpu_description()`` records enough to tell kinds apart.
- **Whether bfloat16 is fast.** A CPU with native bf16 instructions (AVX-512 BF16, or AMX tiles) multiplies
  bf16 matrices several times faster than float32: on an AMD EPYC with AVX-512 BF16 (no AMX) a 1024^3 matmul
  ran at 982 GFLOP/s in bf16 against 224 in fp32, and the zoo's MLM training steps ran 1.45-1.73x faster under
  bf16 autocast (benchmarks/bench_precision.py). Without native bf16, oneDNN emulates it and gains nothing.
  ``resolve_precision("auto", device)`` picks bf16 exactly there (and on CUDA), fp32 elsewhere.
"""

from __future__ import annotations

import platform
from functools import cache
from typing import Any

import torch


@cache
def cpu_model_name() -> str:
    """The CPU's model name as the OS reports it (``/proc/cpuinfo``), or ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_description() -> dict[str, Any]:
    """The facts that decide which float32 kernels run here, for ``metrics.json`` and benchmark reports."""
    cpu = torch.cpu
    return {
        "cpu": cpu_model_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16": bool(cpu._is_avx512_bf16_supported()),
        "cpu_amx": bool(cpu._is_amx_tile_supported()),
        "torch": torch.__version__,
    }


PRECISIONS = ("auto", "fp32", "bf16")


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 autocast speeds up training on ``device``: CUDA with bf16 support, or a CPU with native
    bf16 (AVX-512 BF16 or AMX tiles, as torch's build detects them; never guessed from the model name)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    return device.type == "cpu" and bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"`` for ``precision`` on ``device``: ``"auto"`` is bf16 where bf16 is fast."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """The forward-pass context for a resolved ``precision``: bf16 autocast, or a disabled one for fp32.

    Parameters, gradients and optimizer state stay float32 either way; under autocast the matmuls run in
    bfloat16 and the model sums its spatial gate ``W z + b`` in float32 (see ``models.gmlp.SpatialWeight``).
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"resolve {precision!r} first (resolve_precision)")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
