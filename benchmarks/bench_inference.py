"""Inference latency, batch 1 and batch 32: ours vs the peer ``g-mlp-pytorch`` on the same gMLP configuration.

The benchmark configuration (gMLP, d_model 128, 6 layers, n 128, d_ffn 512, vocab 8000), eval mode, under
``torch.inference_mode``. Rows:

- "full logits": every position projected onto the vocabulary, ours ``model(input_ids).logits`` and the peer's
  ``model(ids)`` (its LayerNorm + Linear head). Ours has a larger head (BERT's dense + GELU + LayerNorm before
  the tied decoder), so this row is conservative for us.
- "masked only": what fill-mask does: ours projects only the [MASK] positions (15% here); the peer cannot.

Variants take turns; the median over all calls is reported, and p95 next to it.

    pip install -r benchmarks/requirements-bench.txt
    python benchmarks/bench_inference.py            # ~1 minute on a 2-core CPU
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import make_batches  # noqa: E402
from common import median, peer_gmlp, percentile, print_header, time_calls  # noqa: E402

from gmlp_core import build_model, preset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=10, help="timed calls per variant per round (batch 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls = 2, 3
    device = torch.device(args.device)
    print_header("inference latency (ms; lower is better)")
    cfg = preset("gmlp-bench")
    torch.manual_seed(0)
    ours = build_model(cfg).to(device).eval()
    torch.manual_seed(0)
    peer = peer_gmlp(cfg).to(device).eval()

    rows = []
    for batch in (1, 32):
        ids, labels = make_batches(cfg, batch, 1, seed=batch)[0]
        ids, labels = ids.to(device), labels.to(device)
        variants = {
            "ours, full logits": lambda ids=ids: ours(input_ids=ids).logits,
            "peer, full logits": lambda ids=ids: peer(ids),
            "ours, masked only": lambda ids=ids, labels=labels: ours(input_ids=ids, labels=labels).masked_logits,
        }
        calls = args.calls if batch == 1 else max(2, args.calls // 4)
        times: dict[str, list[float]] = {k: [] for k in variants}
        with torch.inference_mode():
            for fn in variants.values():
                time_calls(fn, 1, warmup=2, device=device)
            for _ in range(args.rounds):
                for name, fn in variants.items():
                    times[name] += time_calls(fn, calls, warmup=0, device=device)
        for name, ts in times.items():
            rows.append((batch, name, median(ts) * 1e3, percentile(ts, 0.95) * 1e3))

    print(f"{'batch':>5} {'variant':<20} {'p50 ms':>8} {'p95 ms':>8}")
    for batch, name, p50, p95 in rows:
        print(f"{batch:>5} {name:<20} {p50:8.2f} {p95:8.2f}")
    for batch in (1, 32):
        r = {name: p50 for b, name, p50, _ in rows if b == batch}
        print(
            f"batch {batch}: peer / ours (full logits) = {r['peer, full logits'] / r['ours, full logits']:.2f}x, "
            f"peer / ours (masked only) = {r['peer, full logits'] / r['ours, masked only']:.2f}x (>= 1 means ours is faster)"
        )


if __name__ == "__main__":
    main()
