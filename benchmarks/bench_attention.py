"""Attention on a CPU: torch's fused kernel against the explicit softmax path, forward + backward.

``gmlp_core.models.layers.attention`` sends bfloat16 on a CPU down its explicit path (two GEMMs and a float32
softmax) because the fused CPU kernel is slower there at the sizes the zoo uses. This measures both paths on the
shapes of aMLP's tiny attention and the Transformer's heads, in bfloat16 and in float32, the variants taking turns
round by round; median milliseconds per forward + backward and the ratio fused / explicit.

    python benchmarks/bench_attention.py            # ~1 minute on a 2-core CPU
    python benchmarks/bench_attention.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, print_header, time_calls  # noqa: E402

from gmlp_core.models.layers import attention, explicit_attention  # noqa: E402

# (what, batch, heads, length, head dim): the zoo's shapes
SHAPES = (
    ("canvas aMLP tiny attention", 64, 1, 64, 16),
    ("text aMLP tiny attention", 32, 1, 64, 32),
    ("text Transformer, 4 heads", 32, 4, 64, 32),
    ("benchmark size, 1 head of 64", 32, 1, 128, 64),
)


def _step(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, explicit: bool) -> None:
    if explicit:
        with explicit_attention():
            out, _ = attention(q, k, v, causal=False)
    else:
        out = F.scaled_dot_product_attention(q, k, v)  # the fused kernel, whatever the dtype
    out.float().square().sum().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10, help="timed calls per variant per round")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the dashboard runs one per session)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls = 1, 2
    torch.set_num_threads(args.threads)
    print_header(f"attention forward + backward on the CPU, fused kernel vs explicit path (ms; {args.threads} thread)")
    print(f"{'shape':<32} {'dtype':<9} {'fused':>8} {'explicit':>9} {'fused/explicit':>15}")
    for what, batch, heads, length, dim in SHAPES:
        for dtype in (torch.bfloat16, torch.float32):
            g = torch.Generator().manual_seed(0)
            qkv = [torch.randn(batch, heads, length, dim, generator=g).to(dtype).requires_grad_() for _ in range(3)]
            times: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.rounds):
                for explicit in (False, True):
                    times[explicit].append(median(time_calls(lambda e=explicit, t=qkv: _step(*t, e), args.calls)))
            fused, explicit = median(times[False]) * 1e3, median(times[True]) * 1e3
            name = str(dtype).removeprefix("torch.")
            print(f"{what:<32} {name:<9} {fused:>8.2f} {explicit:>9.2f} {fused / explicit:>14.2f}x")


if __name__ == "__main__":
    main()
