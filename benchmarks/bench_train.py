"""Training throughput (MLM) and model FLOP utilisation: ours vs the peer ``g-mlp-pytorch``, same process, same data,
in fp32 and under bf16 autocast side by side.

Configurations: ``gmlp-bench`` (d_model 128, 6 layers, n 128, d_ffn 512, vocab 8000; the default) and
``gmlp-bench-wide`` (d_model 512, 4 layers, d_ffn 3072: GEMM-bound), batch 32, AdamW, 15% of positions masked.
Every variant trains on the same batches with the same optimiser settings; the variants take turns (round robin)
so background load hits them alike, and the median over rounds is reported. Model FLOP utilisation (MFU) = the
model's analytic training FLOPs (3x the forward matmul FLOPs of the work each variant actually does) per second,
divided by the GEMM peak of the variant's own precision (fp32 or bf16), both measured in the same run.

    pip install -r benchmarks/requirements-bench.txt
    python benchmarks/bench_train.py                          # ~4 minutes on a 2-core CPU
    python benchmarks/bench_train.py --preset gmlp-bench-wide # the GEMM-bound size
    python benchmarks/bench_train.py --quick                  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import matmul_peak, median, peer_gmlp, print_header, sync, time_calls  # noqa: E402

from gmlp_core import build_model, flops_per_token, preset  # noqa: E402
from gmlp_core.hardware import autocast, bf16_is_fast, cpu_description  # noqa: E402
from gmlp_core.models.config import ModelConfig  # noqa: E402
from gmlp_core.models.model import IGNORE_INDEX  # noqa: E402

MASK_ID = 4


def make_batches(cfg: ModelConfig, batch: int, count: int, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    """Random token batches with 15% of positions replaced by [MASK]; labels hold the originals (-100 elsewhere)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        ids = torch.randint(5, cfg.vocab_size, (batch, cfg.seq_len), generator=g)
        masked = torch.rand(batch, cfg.seq_len, generator=g) < 0.15
        labels = torch.where(masked, ids, torch.full_like(ids, IGNORE_INDEX))
        out.append((ids.masked_fill(masked, MASK_ID), labels))
    return out


class PeerShipped(nn.Module):
    """The peer as a user runs it: its own head gives vocabulary logits at every position, then masked CE."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.net = peer_gmlp(cfg, with_head=True)

    def forward(self, input_ids: Tensor, labels: Tensor) -> Tensor:
        logits = self.net(input_ids)  # (B, L, vocab)
        selected = labels != IGNORE_INDEX
        return F.cross_entropy(logits[selected], labels[selected])


class PeerTrunkOurHead(nn.Module):
    """The peer's trunk under our exact head (final LN, BERT head, tied decoder on masked positions only)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        ours = build_model(cfg)
        self.embed, self.norm, self.head, self.decoder_bias = ours.embed, ours.norm, ours.head, ours.decoder_bias
        self.trunk = peer_gmlp(cfg, with_head=False)

    def forward(self, input_ids: Tensor, labels: Tensor) -> Tensor:
        x = self.norm(self.trunk(self.embed(input_ids)))
        selected = labels != IGNORE_INDEX
        logits = F.linear(self.head(x[selected]), self.embed.token.weight, self.decoder_bias)
        return F.cross_entropy(logits, labels[selected])


class Ours(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.model = build_model(cfg)

    def forward(self, input_ids: Tensor, labels: Tensor) -> Tensor:
        return self.model(input_ids=input_ids, labels=labels).loss


def train_flops(cfg: ModelConfig, batch: int, n_masked: float, head_everywhere: bool, peer_head: bool) -> float:
    """Analytic training FLOPs of one step: 3x forward matmul FLOPs (trunk on every token, head where computed)."""
    trunk = flops_per_token(cfg, include_head=False) * batch * cfg.seq_len
    d, v = cfg.d_model, cfg.vocab_size
    head_per_token = 2 * d * v if peer_head else 2 * (d * d + d * v)
    head = head_per_token * (batch * cfg.seq_len if head_everywhere else n_masked)
    return 3.0 * (trunk + head)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gmlp-bench", choices=["gmlp-bench", "gmlp-bench-wide"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    parser.add_argument("--compile", action="store_true", help="also time ours under torch.compile")
    parser.add_argument("--no-peer", action="store_true", help="ours only (e.g. where the peer is too slow)")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 steps")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds = 2, 1
    device = torch.device(args.device)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if not set(precisions) <= {"fp32", "bf16"}:
        raise SystemExit(f"--precisions takes fp32 and/or bf16, got {args.precisions!r}")
    print_header("training throughput, MLM (tokens/s; higher is better)")
    print(f"# native bf16: {bf16_is_fast(device)} ({json.dumps(cpu_description())})")
    cfg = preset(args.preset)
    print(f"# config: {json.dumps(cfg.to_dict(), sort_keys=True, separators=(',', ':'))}")
    batches = [(x.to(device), y.to(device)) for x, y in make_batches(cfg, args.batch, 8)]
    n_masked = sum(int((y != IGNORE_INDEX).sum()) for _, y in batches) / len(batches)
    ours_flops = train_flops(cfg, args.batch, n_masked, False, False)

    # name -> (module, flops per step, precision)
    variants: dict[str, tuple[nn.Module, float, str]] = {}
    for precision in precisions:
        torch.manual_seed(0)
        variants[f"ours {precision}"] = (Ours(cfg), ours_flops, precision)
        if args.compile:
            # Inductor's CPU scatter-add sums in thread order; deterministic algorithms make runs bitwise
            # reproducible (tests/test_fast_paths.py checks the compiled path against eager and against itself).
            torch.use_deterministic_algorithms(True)
            torch.manual_seed(0)
            compiled = Ours(cfg)
            compiled.model = torch.compile(compiled.model)
            variants[f"ours {precision} (compile)"] = (compiled, ours_flops, precision)
        if not args.no_peer:
            torch.manual_seed(0)
            shipped = train_flops(cfg, args.batch, n_masked, True, True)
            variants[f"peer {precision} (as shipped)"] = (PeerShipped(cfg), shipped, precision)
            torch.manual_seed(0)
            variants[f"peer {precision} trunk+our head"] = (PeerTrunkOurHead(cfg), ours_flops, precision)

    steppers = {}
    for name, (module, _, precision) in variants.items():
        module.to(device).train()
        opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
        it = iter(range(10**9))

        def step(module=module, opt=opt, it=it, precision=precision) -> None:
            x, y = batches[next(it) % len(batches)]
            with autocast(precision, device):
                loss = module(x, y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        steppers[name] = step
        step()  # warm-up (and compilation)
        sync(device)

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    peaks = {p: matmul_peak(device=device, dtype=dtypes[p]) for p in dtypes}
    per_step: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, step in steppers.items():
            per_step[name].append(median(time_calls(step, args.steps, warmup=0, device=device)))
    peaks = {p: max(peak, matmul_peak(device=device, dtype=dtypes[p])) for p, peak in peaks.items()}

    tokens = args.batch * cfg.seq_len
    print(
        "# matmul peaks (1024^3, max of two measurements): "
        + ", ".join(f"{p} {v / 1e9:.1f} GFLOP/s" for p, v in peaks.items())
    )
    print(f"{'variant':<28} {'ms/step':>9} {'tokens/s':>10} {'GFLOP/s':>9} {'MFU':>6}")
    results = {}
    for name, (_, flops, precision) in variants.items():
        t = median(per_step[name])
        results[name] = tokens / t
        mfu = flops / t / peaks[precision]
        print(
            f"{name:<28} {t * 1e3:9.1f} {tokens / t:10.0f} {flops / t / 1e9:9.1f} {mfu:6.1%}  (of the {precision} peak)"
        )
    if "ours fp32" in results and "ours bf16" in results:
        print(f"ratio ours bf16 / ours fp32: {results['ours bf16'] / results['ours fp32']:.2f}x")
    for name, tps in results.items():
        if name.startswith("peer"):
            for ours in (n for n in results if n.startswith("ours")):
                print(f"ratio {ours} / {name}: {results[ours] / tps:.2f}x")


if __name__ == "__main__":
    main()
