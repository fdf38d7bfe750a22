"""The command line, as a user types it."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gmlp_core import build_model, load_checkpoint, preset
from gmlp_core.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_presets_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "--group", "paper"]) == 0
    out = capsys.readouterr().out
    assert "gmlp-s" in out and "19.423" in out and "bert-base" in out


def test_train_then_eval_through_python_dash_m(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "gmlp_core", "train", "--preset", "transformer-tiny-mlm", "--steps", "8"]
    cmd += ["--out", str(out), "--eval-every", "4", "--set", "vocab_size=300", "n_layers=1", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout)
    assert load_checkpoint(out).config.n_layers == 1
    recorded = json.loads((out / "config.json").read_text())["extra"]["command"]
    assert recorded.startswith("python -m gmlp_core train --preset transformer-tiny-mlm --steps 8"), recorded
    ev = subprocess.run(
        [sys.executable, "-m", "gmlp_core", "eval", str(out)], capture_output=True, text=True, timeout=300
    )
    assert json.loads(ev.stdout)["val_ppl"] == printed["val_ppl"]


def test_user_errors_are_messages_not_tracebacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert "no such checkpoint folder" in capsys.readouterr().err
    assert main(["train", "--preset", "no-such-preset", "--steps", "1", "--out", str(tmp_path / "x")]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["train", "--preset", "gmlp-tiny-mlm", "--steps", "1", "--set", "d_model=-3"]) == 2
    assert "d_model" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_convert_a_trusted_state_dict_without_unpickling_code(tmp_path: Path) -> None:
    cfg = preset("gmlp-tiny-mlm")
    model = build_model(cfg)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    (tmp_path / "config.json").write_text(cfg.to_json())
    assert (
        main(["convert", str(tmp_path / "model.pt"), str(tmp_path / "safe"), "--config", str(tmp_path / "config.json")])
        == 0
    )
    loaded = load_checkpoint(tmp_path / "safe", device="cpu")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.write_text, (marker, "x"))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": Evil()}))
    code = main(
        ["convert", str(tmp_path / "evil.pt"), str(tmp_path / "out2"), "--config", str(tmp_path / "config.json")]
    )
    assert code == 2
    assert not marker.exists(), "weights_only loading must not run code"
