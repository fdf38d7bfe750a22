"""Safe checkpoints: bit-exact round trips, clear errors, and no pickle ever runs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gmlp_core import CheckpointError, build_model, list_presets, load_checkpoint, preset, read_config, save_checkpoint
from gmlp_core.checkpoints import WEIGHTS_NAME, load_metrics


def _random_model(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(preset(name, **overrides))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.mark.parametrize("name", list_presets(group="tiny"))
def test_round_trip_is_bit_exact(tmp_path: Path, name: str) -> None:
    model = _random_model(name)
    save_checkpoint(model, tmp_path / "ckpt", metrics={"val_ppl": 12.5}, extra={"data": "unit-test"})
    loaded = load_checkpoint(tmp_path / "ckpt", device="cpu")
    assert not loaded.training
    assert loaded.config.replace(extra={}) == model.config.replace(extra={})
    assert loaded.config.extra["data"] == "unit-test"
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert load_metrics(tmp_path / "ckpt") == {"val_ppl": 12.5}
    assert not list((tmp_path / "ckpt").glob("*.tmp")), "temporary files must be renamed into place"


def test_causal_toeplitz_round_trip_keeps_forward_identical(tmp_path: Path) -> None:
    model = _random_model("gmlp-tiny-mlm", causal=True, spatial="toeplitz")
    save_checkpoint(model, tmp_path)
    loaded = load_checkpoint(tmp_path, device="cpu")
    ids = torch.randint(5, 64, (2, 16))
    assert torch.equal(model(input_ids=ids).logits, loaded(input_ids=ids).logits)
    for w1, w2 in zip(model.spatial_weights(), loaded.spatial_weights(), strict=True):
        assert torch.equal(w1, w2)


def test_fp16_storage_loads_as_float32(tmp_path: Path) -> None:
    model = _random_model("gmlp-tiny-vision")
    save_checkpoint(model, tmp_path, dtype=torch.float16)
    loaded = load_checkpoint(tmp_path, device="cpu")
    for k, v in loaded.state_dict().items():
        assert v.dtype == torch.float32
        torch.testing.assert_close(v, model.state_dict()[k].half().float())


def test_auto_device_is_cpu_without_cuda(tmp_path: Path) -> None:
    save_checkpoint(_random_model("gmlp-tiny-mlm"), tmp_path)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert load_checkpoint(tmp_path).device.type == expected


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    save_checkpoint(_random_model("gmlp-tiny-mlm"), tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_truncated_weights(saved: Path) -> None:
    data = (saved / WEIGHTS_NAME).read_bytes()
    (saved / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*(corrupt|truncated)"):
        load_checkpoint(saved)


def test_garbage_and_empty_weights(saved: Path) -> None:
    (saved / WEIGHTS_NAME).write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(saved)
    (saved / WEIGHTS_NAME).write_bytes(b"")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(saved)


def test_missing_config_and_weights(tmp_path: Path, saved: Path) -> None:
    (saved / "config.json").unlink()
    with pytest.raises(CheckpointError, match="missing config.json"):
        load_checkpoint(saved)
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        load_checkpoint(tmp_path / "nowhere")


def test_corrupt_and_unknown_arch_config(saved: Path) -> None:
    (saved / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: not valid JSON"):
        load_checkpoint(saved)
    cfg = preset("gmlp-tiny-mlm").to_dict() | {"arch": "lstm"}
    (saved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"config\.json.*arch='lstm'"):
        read_config(saved)


def test_shape_mismatch_names_the_tensors(saved: Path) -> None:
    cfg = preset("gmlp-tiny-mlm", d_model=48).to_dict()
    (saved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        CheckpointError, match=r"shape mismatch: blocks\.0\.norm\.bias \(file \(32,\), config \(48,\)\).*17 in all"
    ):
        load_checkpoint(saved)


def test_missing_and_unexpected_tensors(saved: Path) -> None:
    cfg = preset("gmlp-tiny-mlm", n_layers=3).to_dict()
    (saved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"missing: blocks\.2\."):
        load_checkpoint(saved)
    cfg = preset("gmlp-tiny-mlm", n_layers=1).to_dict()
    (saved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"unexpected: blocks\.1\."):
        load_checkpoint(saved)


def test_wrong_dtype_and_non_finite(saved: Path) -> None:
    model = _random_model("gmlp-tiny-mlm")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    bad = dict(state, **{"norm.weight": torch.ones(32, dtype=torch.int32)})
    save_file(bad, str(saved / WEIGHTS_NAME))
    with pytest.raises(CheckpointError, match=r"not a float tensor: norm\.weight"):
        load_checkpoint(saved)
    nan = dict(state, **{"norm.weight": torch.full((32,), float("nan"))})
    save_file(nan, str(saved / WEIGHTS_NAME))
    with pytest.raises(CheckpointError, match=r"non-finite values in norm\.weight"):
        load_checkpoint(saved)


class _Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_pickles_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "config.json").write_text(preset("gmlp-tiny-mlm").to_json())
    for name in ("pytorch_model.bin", "model.pt"):
        (folder / name).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match="refusing to load a pickle.*convert"):
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match="refusing to load a pickle"):
        load_checkpoint(folder / "model.pt")
    # A pickle renamed to model.safetensors is just a corrupt file: it is parsed, never unpickled.
    (folder / WEIGHTS_NAME).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(folder)
    assert not marker.exists(), "code inside a pickle ran"


def test_save_overwrites_atomically(saved: Path) -> None:
    first = (saved / WEIGHTS_NAME).read_bytes()
    save_checkpoint(_random_model("gmlp-tiny-mlm", n_layers=1), saved)
    assert (saved / WEIGHTS_NAME).read_bytes() != first
    assert load_checkpoint(saved).config.n_layers == 1


def test_eval_reads_only_built_in_data_a_checkpoint_records(tmp_path: Path) -> None:
    """A checkpoint's recorded data set picks the default only when it names built-in data; a recorded path or
    hub name is never read: eval asks for --data instead."""
    from gmlp_core.evaluate import evaluate_checkpoint

    model = _random_model("gmlp-tiny-vision")
    for recorded, expect in ((None, "digits"), ("digits-canvas", "digits-canvas"), ("/etc/passwd", None)):
        if recorded is not None:
            model.config.extra["data"] = recorded
        out = tmp_path / str(recorded).strip("/").replace("/", "_")
        save_checkpoint(model, out)
        if expect is None:
            with pytest.raises(ValueError, match="pass --data"):
                evaluate_checkpoint(out, device="cpu")
        else:
            assert evaluate_checkpoint(out, device="cpu")["data"].startswith(expect)
