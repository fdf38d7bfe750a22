"""What the hardware can do, detected from torch's own build and the CPU's flags, never guessed from a name.

Two facts matter to this project:

- **Which float32 kernels run.** torch's CPU capability (``AVX2``, ``AVX512``) picks ATen's vector kernels,
  but oneDNN and MKL choose their own from the CPU's flags (AVX-512 BF16, AMX, ...). Two machines that report
  the same capability can therefore sum float32 in another order, so a number reproduces bit for bit only on
  the same machine kind; ``cpu_description()`` records enough to tell kinds apart.
- **Whether bfloat16 is fast.** Measured, not read from a flag. On an AMD EPYC with AVX-512 BF16 (no AMX) a
  1024^3 matmul ran at 982 GFLOP/s in bf16 against 224 in fp32, and the zoo's MLM training steps ran 1.45-1.73x
  faster under bf16 autocast (benchmarks/bench_precision.py); on an Intel Xeon that reports the same AVX-512 BF16
  flag (no AMX) bf16 GEMMs ran at 106-140 GFLOP/s against 163-248 in fp32 and training 0.76x; without native bf16
  oneDNN emulates it. ``choose_precision("auto", device, shapes)`` times bf16 against fp32 matrix products at the
  run's shapes (``calibrate``, a fraction of a second), keeps the result per machine kind, torch version and
  shapes (in memory and in ``$GMLP_LENS_CACHE_DIR`` or ``~/.cache/gmlp-lens``), and picks bf16 only where its
  products run at least ``BF16_GAIN`` times faster; the trainer records the figures in metrics.json.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


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


# bf16's matrix products must run this much faster than fp32's before a training step gains: autocast's casts and
# the parts of a step that stay float32 (norms, softmax, the optimizer) take the rest. At a 4.4x faster GEMM the zoo's
# steps ran 1.45-1.73x faster; at 0.6x they ran 0.76x (module docstring).
BF16_GAIN = 1.25
# The benchmark model's U and V products, (batch x n, d_model) x (d_model, d_ffn) and back: the shapes ``auto``
# measures when a caller names none (evaluation, token influence).
DEFAULT_SHAPES: tuple[tuple[int, int, int], ...] = ((2048, 128, 512), (2048, 256, 128))
_ROUNDS = 3  # fp32 and bf16 take turns, so background load hits them alike; the fastest round of each counts


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``auto`` (or an explicit choice) resolved to, and the measurement behind it."""

    precision: str  # "fp32" or "bf16"
    asked: str  # "auto", "fp32" or "bf16"
    how: str  # "asked", "measured", "measured before" (cached), or why nothing was measured
    fp32_gflops: float | None = None  # the products' rate in fp32 ...
    bf16_gflops: float | None = None  # ... and in bf16
    shapes: tuple[tuple[int, int, int], ...] = ()

    @property
    def bf16_speedup(self) -> float | None:
        if not self.fp32_gflops or not self.bf16_gflops:
            return None
        return self.bf16_gflops / self.fp32_gflops

    def record(self) -> dict[str, Any]:
        """The fields metrics.json keeps (``precision_choice``)."""
        out = asdict(self) | {"bf16_speedup": self.bf16_speedup, "bf16_gain_needed": BF16_GAIN}
        out["shapes"] = [list(s) for s in self.shapes]
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def calibrate(device: torch.device, shapes: Sequence[tuple[int, int, int]] = DEFAULT_SHAPES) -> dict[str, float]:
    """GFLOP/s of the matrix products ``(m, k) x (k, n)`` of ``shapes`` in fp32 and in bf16 on ``device``: the two
    precisions take turns over ``_ROUNDS`` rounds and the fastest round of each counts."""
    flops = sum(2 * m * k * n for m, k, n in shapes)
    g = torch.Generator(device="cpu").manual_seed(0)
    operands = {
        dtype: [
            (torch.randn(m, k, generator=g).to(device, dtype), torch.randn(k, n, generator=g).to(device, dtype))
            for m, k, n in shapes
        ]
        for dtype in (torch.float32, torch.bfloat16)
    }
    best = {dtype: float("inf") for dtype in operands}
    with torch.no_grad():
        for round_ in range(_ROUNDS + 1):  # round 0 warms up (kernel selection, caches) and is not counted
            times = {}
            for dtype, pairs in operands.items():
                _sync(device)
                start = time.perf_counter()
                for a, b in pairs:
                    a @ b
                _sync(device)
                times[dtype] = time.perf_counter() - start
            if round_ or times[torch.bfloat16] > 8 * BF16_GAIN * times[torch.float32]:
                best = {dtype: min(best[dtype], t) for dtype, t in times.items()}
            if best[torch.bfloat16] > 2 * BF16_GAIN * best[torch.float32]:
                break  # bf16 cannot win (emulated bf16 runs 10-20x slower than fp32): no need to time it further
    return {"fp32": flops / best[torch.float32] / 1e9, "bf16": flops / best[torch.bfloat16] / 1e9}


def _cache_file() -> Path:
    root = os.environ.get("GMLP_LENS_CACHE_DIR") or Path.home() / ".cache" / "gmlp-lens"
    return Path(root) / "precision.json"


_MEASURED: dict[str, dict[str, float]] = {}
_LOCK = threading.Lock()


def _machine_key(device: torch.device, shapes: Sequence[tuple[int, int, int]]) -> str:
    if device.type == "cuda":
        kind = f"cuda:{torch.cuda.get_device_name(device)}"
    else:
        d = cpu_description()
        kind = f"cpu:{d['cpu']}:{d['cpu_capability']}:bf16={d['cpu_bf16']}:amx={d['cpu_amx']}"
    return f"{kind}|torch {torch.__version__}|threads {torch.get_num_threads()}|{sorted(map(tuple, shapes))}"


def _read_cache() -> dict[str, dict[str, float]]:
    try:
        data = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(key: str, rates: dict[str, float]) -> None:
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache() | {key: rates}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)
    except OSError as err:  # a read-only home: the measurement is kept for this process only
        log.debug("could not keep the precision calibration in %s: %s", path, err)


def choose_precision(
    precision: str, device: torch.device, shapes: Sequence[tuple[int, int, int]] | None = None
) -> PrecisionChoice:
    """Resolve ``precision`` on ``device``: ``"fp32"`` and ``"bf16"`` as asked; ``"auto"`` bf16 where its matrix
    products at ``shapes`` (default ``DEFAULT_SHAPES``) run at least ``BF16_GAIN`` times faster than fp32's,
    measured once per machine kind, torch version, thread count and shapes (``calibrate``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return PrecisionChoice(precision, precision, "asked")
    if device.type not in ("cpu", "cuda"):
        return PrecisionChoice("fp32", precision, f"no bf16 calibration on {device.type}")
    if device.type == "cuda" and not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        return PrecisionChoice("fp32", precision, "this GPU has no bf16")
    shapes = tuple(tuple(int(v) for v in s) for s in (shapes or DEFAULT_SHAPES))
    key = _machine_key(device, shapes)
    with _LOCK:  # one measurement at a time: two at once would time each other
        how = "measured before"
        rates = _MEASURED.get(key) or _read_cache().get(key)
        if not (isinstance(rates, dict) and {"fp32", "bf16"} <= set(rates)):
            rates, how = calibrate(device, shapes), "measured"
            _write_cache(key, rates)
        _MEASURED[key] = rates
    chosen = "bf16" if rates["bf16"] >= BF16_GAIN * rates["fp32"] else "fp32"
    return PrecisionChoice(chosen, precision, how, rates["fp32"], rates["bf16"], shapes)


def bf16_is_fast(device: torch.device) -> bool:
    """Whether ``auto`` picks bf16 on ``device`` at the default shapes (measured: ``choose_precision``)."""
    return choose_precision("auto", device).precision == "bf16"


def resolve_precision(
    precision: str, device: torch.device, shapes: Sequence[tuple[int, int, int]] | None = None
) -> str:
    """``"fp32"`` or ``"bf16"`` for ``precision`` on ``device`` (``choose_precision``, its measurement left out)."""
    return choose_precision(precision, device, shapes).precision


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """The forward-pass context for a resolved ``precision``: bf16 autocast, or a disabled one for fp32.

    Parameters, gradients and optimizer state stay float32 either way; under autocast the matmuls run in
    bfloat16 and the model sums its spatial gate ``W z + b`` in float32 (see ``models.gmlp.SpatialWeight``).
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"resolve {precision!r} first (resolve_precision)")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
