"""Training, evaluation, resume and failure modes, on tiny configs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_config

from gmlp_core import load_checkpoint, load_tokenizer
from gmlp_core.evaluate import evaluate_checkpoint
from gmlp_core.train import TrainConfig, load_spatial_snapshots, lr_at, train

ROOT = Path(__file__).resolve().parent.parent


def _cfg(tmp_path: Path, preset: str, **kw) -> TrainConfig:
    return tiny_train_config(kw.pop("out", tmp_path / preset), preset, **kw)


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("preset", ["gmlp-tiny-mlm", "amlp-tiny-mlm", "transformer-tiny-mlm", "gmlp-tiny-vision"])
def test_short_training_lowers_loss_and_writes_a_loadable_checkpoint(tmp_path: Path, preset: str) -> None:
    vision = preset.endswith("vision")
    # Images need bigger batches to leave the initial plateau within 30 steps.
    result = train(_cfg(tmp_path, preset, batch_size=64 if vision else 16))
    rows = _log(result.checkpoint)
    assert [r["step"] for r in rows] == [0, 15, 30]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - (0.03 if vision else 0.2), "30 steps lower the val loss"
    model = load_checkpoint(result.checkpoint, device="cpu")
    assert model.config.arch == preset.split("-")[0]
    if preset.endswith("mlm"):
        assert load_tokenizer(result.checkpoint).get_vocab_size() == model.config.vocab_size
        assert result.metrics["unigram_ppl"] > 1
    else:
        assert result.metrics["val_accuracy"] > 0.2, "above the 10% of chance after 30 steps"
    assert result.metrics["tokens_seen"] > 0 and result.metrics["steps"] == 30
    # The machine kind its numbers reproduce on bit for bit (README, "Reproducibility").
    assert result.metrics["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert result.metrics["torch"] == torch.__version__ and result.metrics["cpu"]
    assert isinstance(result.metrics["cpu_bf16"], bool) and isinstance(result.metrics["cpu_amx"], bool)
    snaps = load_spatial_snapshots(result.checkpoint)
    if model.config.has_spatial_weights:
        assert list(snaps) == [0, 10, 20, 30]
        assert snaps[30].shape == (model.config.n_layers, model.config.seq_len, model.config.seq_len)
        assert not torch.allclose(snaps[0], snaps[30]), "W changes during training"
    else:
        assert snaps == {}


def test_eval_reproduces_the_stored_metric_exactly(tmp_path: Path) -> None:
    result = train(_cfg(tmp_path, "gmlp-tiny-mlm", dtype="float16"))
    stored = json.loads((result.checkpoint / "metrics.json").read_text())
    again = evaluate_checkpoint(result.checkpoint, device="cpu")
    assert again["val_ppl"] == stored["val_ppl"] and again["val_loss"] == stored["val_loss"]
    vision = train(_cfg(tmp_path, "gmlp-tiny-vision"))
    assert evaluate_checkpoint(vision.checkpoint)["val_accuracy"] == vision.metrics["val_accuracy"]


def test_eval_scores_the_validation_windows_the_checkpoint_records(tmp_path: Path) -> None:
    result = train(_cfg(tmp_path, "gmlp-tiny-mlm", val_windows=8, short_fraction=0.0))
    config = json.loads((result.checkpoint / "config.json").read_text())
    assert config["extra"]["train"]["val_windows"] == 8 and config["extra"]["train"]["short_fraction"] == 0.0
    assert config["extra"]["train"]["mask_prob"] == 0.15
    assert evaluate_checkpoint(result.checkpoint)["val_tokens"] == result.metrics["val_tokens"]
    assert result.metrics["python"] == sys.version.split()[0], "the built-in corpora depend on Python's version"
    # A checkpoint from before the record was scored on 128 windows; a malformed record is refused.
    del config["extra"]["train"]["val_windows"]
    (result.checkpoint / "config.json").write_text(json.dumps(config))
    assert evaluate_checkpoint(result.checkpoint)["val_tokens"] > result.metrics["val_tokens"]
    config["extra"]["train"]["val_windows"] = "all"
    (result.checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="val_windows"):
        evaluate_checkpoint(result.checkpoint)
    with pytest.raises(ValueError, match="short_fraction"):
        _cfg(tmp_path, "gmlp-tiny-mlm", short_fraction=1.5)
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="mask_prob"):
            _cfg(tmp_path, "gmlp-tiny-mlm", mask_prob=bad)


def test_training_is_bit_for_bit_deterministic(tmp_path: Path) -> None:
    """Same seed, same machine: the same weights, byte for byte, and the same validation numbers."""
    a = train(_cfg(tmp_path / "a", "gmlp-tiny-mlm", steps=10, eval_every=10))
    b = train(_cfg(tmp_path / "b", "gmlp-tiny-mlm", steps=10, eval_every=10))
    assert a.metrics["val_loss"] == b.metrics["val_loss"]
    weights = [(r.checkpoint / "model.safetensors").read_bytes() for r in (a, b)]
    assert weights[0] == weights[1]


def test_lr_schedule_warms_up_then_decays() -> None:
    cfg = TrainConfig(preset="gmlp-tiny-mlm", steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    lrs = [lr_at(cfg, s) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)


def _cli_train(out: Path, steps: int, resume: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "gmlp_core", "train", "--preset", "gmlp-tiny-mlm", "--steps", str(steps)]
    cmd += ["--out", str(out), "--save-every", "10", "--eval-every", "10", "--batch-size", "8", "--device", "cpu"]
    cmd += ["--set", "vocab_size=300", "--no-progress"]
    return cmd + (["--resume"] if resume else [])


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    steps = 200
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(_cli_train(tmp_path / "full", steps), check=True, env=env, capture_output=True)
    full = {r["step"]: r for r in _log(tmp_path / "full")}

    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli_train(out, steps), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "trainer_state" / "state.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 0.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((out / "trainer_state" / "state.json").read_text())["step"]
    assert killed_at < steps, "the run must be killed before it finishes"
    # The last checkpoint written before the kill is loadable.
    load_checkpoint(out, device="cpu")
    subprocess.run(_cli_train(out, steps, resume=True), check=True, env=env, capture_output=True)
    resumed = {r["step"]: r for r in _log(out)}
    assert sorted(resumed) == sorted(full)
    for step in full:
        assert resumed[step].get("loss", 0.0) == pytest.approx(full[step].get("loss", 0.0), abs=1e-5), step
        assert resumed[step]["val_loss"] == pytest.approx(full[step]["val_loss"], abs=1e-5), step


def test_unwritable_output_fails_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="cannot write to the output folder"):
        train(_cfg(tmp_path, "gmlp-tiny-mlm", out=str(blocker / "run")))


def test_full_disk_fails_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10, 10, 0))
    with pytest.raises(OSError, match="not enough disk space"):
        train(_cfg(tmp_path, "gmlp-tiny-mlm"))
    assert not (tmp_path / "gmlp-tiny-mlm" / "metrics.jsonl").exists()


def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    cmd += ["--master_port", str(port), "-m", "gmlp_core", "train", "--preset", "gmlp-tiny-mlm", "--steps", "6"]
    cmd += ["--out", str(tmp_path / "ddp"), "--eval-every", "3", "--batch-size", "4", "--device", "cpu"]
    cmd += ["--set", "vocab_size=300", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["tokens_seen"] == 6 * 2 * 4 * 16, "global batch = processes x batch_size"
    assert [r["step"] for r in _log(tmp_path / "ddp")] == [0, 3, 6], "only rank 0 writes the log"
    load_checkpoint(tmp_path / "ddp", device="cpu")
