"""Shared fixtures. Keep this file tidy: one section per owner, fixtures documented.

Dashboard section: ``lens_root`` is a checkpoint root of tiny random-init models named like the demo
zoo (mlm-gmlp, mlm-amlp, mlm-transformer, vision-gmlp, vision-amlp, vision-transformer, and the pair task's
match-gmlp, match-amlp, match-transformer with untrained heads), with
training logs and W snapshots, a sweep CSV, and every kind of broken checkpoint the app must survive.
``app_roots`` adds the real zoo in ``checkpoints/`` when it holds loadable models, so the app tests
run against both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

if TYPE_CHECKING:
    from gmlp_core.train import TrainConfig

from gmlp_core.zoo import MAIN_COMPARISON, zoo_entry

REPO = Path(__file__).resolve().parent.parent
ZOO_ROOT = REPO / "checkpoints"

# The dashboard's start-up warm-up (dashboard/warmup.py) would run in the background of every test that starts
# the app (and of the servers the browser tests start); tests/test_warmup.py turns it on where it is tested.
os.environ.setdefault("GMLP_LENS_WARMUP", "0")
# Tests rewrite checkpoints between two runs of a page: every run lists the folder afresh (the server's default
# serves one listing for 2 s; tests/test_loaders.py checks that path).
os.environ.setdefault("GMLP_LENS_SCAN_SECONDS", "0")
# The precision calibration (gmlp_core.hardware) keeps what it measured in a file: the tests' own, never ~/.cache.
if "GMLP_LENS_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["GMLP_LENS_CACHE_DIR"] = tempfile.mkdtemp(prefix="gmlp-lens-test-cache-")

# ------------------------------------------------------------------------------------------------
# Dashboard fixtures

TINY_TEXT = [
    "the model reads the text and fills the masked word.",
    "a gate multiplies one half of the channels by a spatial projection of the other half.",
    "attention mixes tokens with weights that depend on the input.",
    "the spatial weights are learned once and shared by every input.",
    "python is a programming language with a large standard library.",
] * 4
# The zoo's main comparison, each entry built from the tiny preset of its architecture and task.
TINY_ZOO = {name: zoo_entry(name).preset.replace("-demo-", "-tiny-") for name in MAIN_COMPARISON}
# The canvas entries the lecture shows, as tiny models of the same kind: a 32 x 32 canvas, 8 x 8-pixel patches.
TINY_CANVAS = {"canvas-gmlp": "gmlp-tiny-vision", "canvas-amlp": "amlp-tiny-vision"}
BROKEN = ("broken-arch", "broken-corrupt", "broken-mismatch", "broken-noconfig", "broken-pickle", "broken-truncated")


def _metrics_rows(task: str, steps: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for step in range(0, steps + 1, steps // 5):
        loss = 4.0 * (1 + step) ** -0.2 + 0.05 * float(torch.rand(1, generator=g))
        row = {"step": step, "loss": loss, "val_loss": loss + 0.1, "lr": 1e-3, "elapsed_s": step * 0.01}
        row |= (
            {"val_ppl": float(torch.exp(torch.tensor(loss + 0.1)))} if task == "mlm" else {"val_accuracy": step / steps}
        )
        row["tokens_per_s"] = 1000.0 + step
        rows.append(row)
    return rows


def build_lens_root(root: Path) -> Path:
    """Write the tiny zoo, the broken checkpoints and a sweep CSV under ``root``; returns ``root``."""
    from gmlp_core import build_model, preset, save_checkpoint
    from gmlp_core.data.tokenizer import train_tokenizer
    from gmlp_core.train.snapshots import save_spatial_snapshots

    tokenizer = train_tokenizer(TINY_TEXT, 160)
    for i, (name, preset_name) in enumerate((TINY_ZOO | TINY_CANVAS).items()):
        torch.manual_seed(i)
        cfg = preset(preset_name)
        if name in TINY_CANVAS:
            cfg = cfg.replace(image_size=32, patch_size=8)
        if cfg.task == "mlm":
            cfg = cfg.replace(vocab_size=tokenizer.get_vocab_size())
        model = build_model(cfg)
        if cfg.has_spatial_weights:  # give W some structure, as training would: a local, shift-invariant band
            state = model.state_dict()
            idx = torch.arange(cfg.seq_len)
            for layer in range(cfg.n_layers):
                band = torch.exp(-((idx[:, None] - idx[None, :] - layer) ** 2) / 2.0)
                state[f"blocks.{layer}.sgu.spatial.weight"] = 0.5 * band + 0.05 * torch.randn(cfg.seq_len, cfg.seq_len)
            model.load_state_dict(state)
        steps = 50
        metrics = {"steps": steps, "data": "tiny-test", "tokens_seen": steps * 64}
        metrics |= {"val_ppl": 100.0 + i, "val_loss": 4.6} if cfg.task == "mlm" else {"val_accuracy": 0.1 * (i + 1)}
        folder = save_checkpoint(
            model,
            root / name,
            tokenizer=tokenizer if cfg.task == "mlm" else None,
            metrics=metrics,
            extra={"data": "digits-canvas" if name in TINY_CANVAS else "tiny-test"},
        )
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _metrics_rows(cfg.task, steps, i)))
        if cfg.has_spatial_weights:
            final = torch.stack(model.spatial_weights())
            save_spatial_snapshots(folder, {s: final * s / steps for s in (0, 10, 25, 50)})

    # The pair task's finetuned models (the zoo's match-*): each tiny MLM model's trunk with a new 2-class head.
    from gmlp_core.train.finetune import start_finetune
    from gmlp_core.zoo import PAIR_MODELS

    for name in PAIR_MODELS:
        start = start_finetune(root / f"mlm-{name.split('-', 1)[1]}", "docs-match", 0, torch.device("cpu"))
        save_checkpoint(start.model, root / name, tokenizer=start.tokenizer, metrics={"steps": 0, "val_accuracy": 0.5})

    good = root / "mlm-gmlp"
    # Corrupt: garbage instead of safetensors. Truncated: half of a real file. Mismatch: another model's weights.
    for name in BROKEN:
        (root / name).mkdir()
    for name in ("broken-corrupt", "broken-truncated", "broken-mismatch", "broken-pickle"):
        (root / name / "config.json").write_text((good / "config.json").read_text())
    (root / "broken-corrupt" / "model.safetensors").write_bytes(b"\x00not a safetensors file" * 10)
    data = (good / "model.safetensors").read_bytes()
    (root / "broken-truncated" / "model.safetensors").write_bytes(data[: len(data) // 2])
    (root / "broken-mismatch" / "model.safetensors").write_bytes(
        (root / "mlm-transformer" / "model.safetensors").read_bytes()
    )
    (root / "broken-noconfig" / "model.safetensors").write_bytes(data)
    config = json.loads((good / "config.json").read_text())
    (root / "broken-arch" / "config.json").write_text(json.dumps(config | {"arch": "lstm"}))
    (root / "broken-arch" / "model.safetensors").write_bytes(data)
    torch.save({"weights": torch.zeros(2)}, root / "broken-pickle" / "model.pt")

    sweep = [
        {
            "arch": arch,
            "preset": f"{arch}-tiny-mlm",
            "name": f"{arch}-{k}",
            "params": p * 2,
            "non_embedding_params": p,
            "flops_per_token": 6 * p,
            "tokens_seen": 10_000,
            "val_loss": 1.0 + 5.0 * (p / 1e3) ** -0.3 + off,
            "val_ppl": 0.0,
            "wall_seconds": 1.0,
            "device": "cpu",
        }
        for off, arch in ((0.0, "gmlp"), (0.05, "transformer"), (-0.05, "amlp"))
        for k, p in enumerate((1e4, 3e4, 1e5, 3e5, 1e6))
    ]
    import pandas as pd

    df = pd.DataFrame(sweep)
    df["val_ppl"] = df["val_loss"].map(lambda v: float(torch.exp(torch.tensor(v))))
    (root / "sweeps").mkdir()
    df.to_csv(root / "sweeps" / "sweep_tiny.csv", index=False)
    return root


@pytest.fixture(scope="session")
def lens_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint root of tiny models, broken checkpoints, a sweep CSV, and a link that leaves the root."""
    base = tmp_path_factory.mktemp("lens")
    root = build_lens_root(base / "root")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for the app")
    (outside / "config.json").write_text((root / "mlm-gmlp" / "config.json").read_text())
    os.symlink(outside, root / "escape", target_is_directory=True)
    return root


def zoo_is_present() -> bool:
    """Whether ``checkpoints/`` holds the demo zoo's main MLM and vision models."""
    return all(
        (ZOO_ROOT / n / "config.json").is_file() and (ZOO_ROOT / n / "model.safetensors").is_file()
        for n in ("mlm-gmlp", "vision-gmlp")
    )


@pytest.fixture(params=["tiny", "zoo"])
def app_root(request: pytest.FixtureRequest, lens_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The root the app is pointed at (through ``GMLP_LENS_ROOT``): the tiny root, then the real zoo if built."""
    if request.param == "zoo":
        if not zoo_is_present():
            pytest.skip("the demo zoo is not built in checkpoints/ (python -m gmlp_core zoo)")
        root = ZOO_ROOT
    else:
        root = lens_root
    monkeypatch.setenv("GMLP_LENS_ROOT", str(root))
    return root


# ------------------------------------------------------------------------------------------------
# Training fixtures


def tiny_train_config(out: Path, preset: str, **overrides: object) -> TrainConfig:
    """A 30-step CPU training run of a tiny preset into ``out`` (seconds), with ``overrides`` applied."""
    from gmlp_core.train import TrainConfig

    base = dict(
        preset=preset,
        out=str(out),
        overrides={"vocab_size": 300} if preset.endswith("mlm") else {},
        steps=30,
        batch_size=16,
        lr=3e-3,
        warmup=3,
        eval_every=15,
        snapshot_every=10,
        progress=False,
        device="cpu",
    )
    return TrainConfig(**(base | overrides))


def tiny_finetune_config(source: Path, task: str, out: Path, **overrides: object) -> TrainConfig:
    """A 12-step CPU finetuning run of the MLM checkpoint ``source`` on ``task`` into ``out`` (seconds)."""
    return tiny_train_config(
        out,
        "",
        **(
            dict(
                init_from=str(source),
                task=task,
                steps=12,
                lr=1e-3,
                warmup=2,
                eval_every=6,
                snapshot_every=0,
            )
            | overrides
        ),
    )
