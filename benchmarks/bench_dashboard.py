"""Dashboard interactions, timed through the same library calls the pages make (no browser, no Streamlit):

- fill-mask (``gmlp_core.inference.fill_mask``) on each MLM model of the zoo: p50 / p95 over many sentences
  (target: < 100 ms per model);
- token influence (``gmlp_core.analysis.influence.token_influence``) of one sentence or image per model;
- one captum attribution (``gmlp_core.analysis.attribution.explain_mlm`` / ``explain_image``: Integrated
  Gradients with the app's default 32 steps, plus Gradient x Input) per model.

Models come from the zoo in ``checkpoints/`` (``--root``) when it loads; otherwise freshly initialised demo presets
(gmlp/amlp/transformer-demo-mlm and -vision) with a tokenizer trained on the embedded corpus, which the output says.
Timings of an untrained and a trained model of the same preset are the same: the work does not depend on the weights.

    python benchmarks/bench_dashboard.py                 # ~1 minute on a 2-core CPU
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, percentile, print_header, time_calls  # noqa: E402

from gmlp_core import build_model, load_checkpoint, load_tokenizer, preset  # noqa: E402
from gmlp_core.analysis.attribution import explain_image, explain_mlm  # noqa: E402
from gmlp_core.analysis.influence import token_influence  # noqa: E402
from gmlp_core.data.tokenizer import encode_for_model  # noqa: E402
from gmlp_core.inference import fill_mask  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ARCHS = ("gmlp", "amlp", "transformer")
SENTENCES = [
    "The [MASK] statement is used to leave a loop early.",
    "An exception is [MASK] when an error occurs.",
    "Strings are immutable [MASK] of characters.",
    "The value of the [MASK] is returned by the function.",
    "A class may define [MASK] methods, and the [MASK] of an instance is looked up in its class.",
    "If the file does not exist, an [MASK] is raised.",
    "the [MASK] of a module is executed when it is imported .",
    "a list is a [MASK] sequence , unlike a tuple .",
]


def load_models(root: Path, task: str) -> tuple[dict[str, tuple], str]:
    """{name: (model, tokenizer or None)} from the zoo, or demo presets when the zoo is missing or broken."""
    models = {}
    try:
        for arch in ARCHS:
            folder = root / f"{task}-{arch}"
            model = load_checkpoint(folder, device="cpu").eval()
            models[folder.name] = (model, load_tokenizer(folder) if task == "mlm" else None)
        return models, f"zoo checkpoints in {root}"
    except Exception as err:  # noqa: BLE001 - any failure means: fall back to the presets, and say why
        reason = f"{type(err).__name__}: {err}"
    tokenizer = None
    if task == "mlm":
        from gmlp_core.data.text import embedded_corpus
        from gmlp_core.data.tokenizer import train_tokenizer

        tokenizer = train_tokenizer(embedded_corpus().train, preset("gmlp-demo-mlm").vocab_size)
    for arch in ARCHS:
        torch.manual_seed(0)
        models[f"{arch}-demo-{task}"] = (build_model(preset(f"{arch}-demo-{task}")).eval(), tokenizer)
    return models, f"fresh demo presets (zoo not usable: {reason})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--calls", type=int, default=40, help="fill-mask calls per model")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of influence and attribution")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (the dashboard gives each session 1: dashboard/loaders)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.calls, args.repeats = 8, 1
    logging.basicConfig(level=logging.WARNING)
    print_header("dashboard interactions (ms; lower is better)")
    mlm, source = load_models(args.root, "mlm")
    vision, vsource = load_models(args.root, "vision")
    print(f"# MLM models: {source}")
    print(f"# vision models: {vsource}")

    print(f"{'model':<24} {'n':>4} {'fill-mask p50':>14} {'p95':>8} {'influence':>10} {'IG+GxI (32 steps)':>18}")
    worst_p95 = 0.0
    for name, (model, tok) in mlm.items():
        sentences = iter(range(10**9))

        def one(model=model, tok=tok, sentences=sentences) -> None:
            fill_mask(model, tok, SENTENCES[next(sentences) % len(SENTENCES)], top_k=5)

        times = time_calls(one, args.calls, warmup=2)
        worst_p95 = max(worst_p95, percentile(times, 0.95))
        enc = encode_for_model(tok, SENTENCES[0], model.config.seq_len)
        ids = torch.tensor([enc.input_ids])
        if model.config.arch == "transformer":  # the app feeds the Transformer its real tokens only
            ids = ids[:, : enc.n_real]
        # as W versus attention asks for it: the real tokens' rows only
        rows = range(enc.n_real)
        infl = time_calls(
            lambda model=model, ids=ids, rows=rows: token_influence(model, input_ids=ids, rows=rows), args.repeats
        )
        full = torch.tensor([enc.input_ids])
        attr = time_calls(
            lambda model=model, full=full, pos=enc.mask_positions[0]: explain_mlm(model, full, pos, 10, n_steps=32),
            args.repeats,
        )
        print(
            f"{name:<24} {model.config.seq_len:>4} {median(times) * 1e3:14.1f} {percentile(times, 0.95) * 1e3:8.1f} "
            f"{median(infl) * 1e3:10.0f} {median(attr) * 1e3:18.0f}"
        )
    for name, (model, _) in vision.items():
        cfg = model.config
        pixels = torch.rand(
            1, cfg.in_channels, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(0)
        )
        infl = time_calls(lambda model=model, pixels=pixels: token_influence(model, pixel_values=pixels), args.repeats)
        attr = time_calls(lambda model=model, pixels=pixels: explain_image(model, pixels, 3, n_steps=32), args.repeats)
        print(f"{name:<24} {cfg.seq_len:>4} {'-':>14} {'-':>8} {median(infl) * 1e3:10.0f} {median(attr) * 1e3:18.0f}")
    verdict = "meets" if worst_p95 < 0.1 else "MISSES"
    print(f"fill-mask worst p95 over the MLM models: {worst_p95 * 1e3:.1f} ms ({verdict} the < 100 ms target)")


if __name__ == "__main__":
    main()
