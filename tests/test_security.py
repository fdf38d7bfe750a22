"""Hostile checkpoints and command lines: refused from config.json and headers alone, with a message that names
the field, before anything large is allocated, downloaded or built."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gmlp_core import CheckpointError, ModelConfig, build_model, load_checkpoint, preset, read_config, save_checkpoint
from gmlp_core import checkpoints as ck
from gmlp_core.cli import main
from gmlp_core.limits import Limits, check_config, estimate_parameters
from gmlp_core.models import count_parameters, list_presets


def _folder(tmp_path: Path, config: dict, name: str = "ckpt") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _never(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("this must not run for a refused checkpoint")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"spatial": "toeplitz", "seq_len": 6000, "d_model": 2, "d_ffn": 2, "n_layers": 1}, "seq_len"),
        ({"seq_len": 30000, "d_model": 2, "d_ffn": 2, "n_layers": 1}, "seq_len"),
        ({"n_layers": 100_000, "d_model": 2, "d_ffn": 2}, "n_layers"),
        ({"n_layers": 1_000_000}, "n_layers"),
        ({"d_model": 60_000, "d_ffn": 60_000}, "GB"),
        ({"vocab_size": 10**9}, "vocab_size"),
    ],
)
def test_configs_that_imply_huge_models_are_refused_before_building(
    tmp_path: Path, overrides: dict, field: str
) -> None:
    folder = _folder(tmp_path, preset("gmlp-tiny-mlm").to_dict() | overrides)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with mock.patch.object(ck, "build_model", _never), mock.patch.object(ck, "load_file", _never):
        with pytest.raises(CheckpointError, match=field):
            read_config(folder)
        with pytest.raises(CheckpointError, match=field):
            load_checkpoint(folder, device="cpu")


def test_limits_are_configurable_and_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = preset("gmlp-tiny-mlm", n_layers=600)
    with pytest.raises(ValueError, match="n_layers=600"):
        check_config(cfg)
    monkeypatch.setenv("GMLP_LENS_MAX_LAYERS", "1000")
    check_config(cfg)  # raised by the environment variable
    assert Limits.from_env().max_layers == 1000
    monkeypatch.setenv("GMLP_LENS_MAX_LAYERS", "many")
    with pytest.raises(ValueError, match="GMLP_LENS_MAX_LAYERS"):
        Limits.from_env()


@pytest.mark.parametrize("name", list_presets())
def test_the_parameter_estimate_is_exact_for_every_preset(name: str) -> None:
    for overrides in ({}, {"spatial": "toeplitz"}, {"gating": "additive"}, {"gating": "identity"}):
        cfg = preset(name, **overrides)
        assert estimate_parameters(cfg) == count_parameters(cfg), overrides


def test_paper_models_are_within_the_default_limits() -> None:
    for name in list_presets(group="paper"):
        check_config(preset(name))


def _safetensors_with_header(path: Path, header: dict, claimed: int | None = None) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", claimed if claimed is not None else len(raw)) + raw)


def test_a_huge_tensor_list_is_refused_from_its_header_size(tmp_path: Path) -> None:
    folder = _folder(tmp_path, preset("gmlp-tiny-mlm").to_dict())
    header = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(200_000)}
    _safetensors_with_header(folder / "model.safetensors", header)  # ~14 MB of header, no data
    with mock.patch.object(ck, "load_file", _never), pytest.raises(CheckpointError, match="header.*limit"):
        load_checkpoint(folder, device="cpu")


def test_the_tensor_list_is_checked_against_the_config_before_reading_data(tmp_path: Path) -> None:
    cfg = preset("gmlp-tiny-mlm")
    folder = save_checkpoint(build_model(cfg), tmp_path / "ok")
    big = {"dtype": "F32", "shape": [50_000, 50_000], "data_offsets": [0, 10_000_000_000]}
    _safetensors_with_header(folder / "model.safetensors", {"embed.token.weight": big})
    with mock.patch.object(ck, "load_file", _never), pytest.raises(CheckpointError, match="missing|shape"):
        load_checkpoint(folder, device="cpu")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq_len": 8.5}, "seq_len=8.5 must be an integer"),
        ({"seq_len": True}, "seq_len=True must be an integer"),
        ({"d_model": 1e18}, "d_model=1e\\+18 must be an integer"),
        ({"initializer_range": "abc"}, "initializer_range='abc' must be a number"),
        ({"layer_norm_eps": "abc"}, "layer_norm_eps='abc' must be a number"),
        ({"layer_norm_eps": 0}, "layer_norm_eps=0.0 must be positive"),
        ({"extra": [1]}, "extra=\\[1\\] must be a JSON object"),
        ({"causal": "yes"}, "causal='yes' must be true or false"),
        ({"arch": None}, "arch=None must be a string"),
    ],
)
def test_configs_with_wrong_types_get_a_message(tmp_path: Path, change: dict, message: str) -> None:
    folder = _folder(tmp_path, preset("gmlp-tiny-mlm").to_dict() | change)
    with pytest.raises(CheckpointError, match=message):
        read_config(folder)


def test_nan_layer_norm_eps_is_refused(tmp_path: Path) -> None:
    text = preset("gmlp-tiny-mlm").to_json().replace('"layer_norm_eps": 1e-05', '"layer_norm_eps": NaN')
    folder = tmp_path / "nan"
    folder.mkdir()
    (folder / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match="layer_norm_eps=nan must be a finite number"):
        read_config(folder)


def test_oversized_and_deeply_nested_json_files_are_refused(tmp_path: Path) -> None:
    big = _folder(tmp_path, preset("gmlp-tiny-mlm").to_dict() | {"extra": {"x": "y" * 3_000_000}}, "big")
    with pytest.raises(CheckpointError, match="above the limit of 1 MB"):
        read_config(big)
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="nested too deeply|not valid JSON"):
        read_config(deep)
    (deep / "metrics.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(CheckpointError, match="nested too deeply|not valid JSON"):
        ck.load_metrics(deep)


def test_a_panicking_tokenizer_is_a_checkpoint_error(tmp_path: Path) -> None:
    class PanicException(BaseException):  # what tokenizers raises when its Rust code panics
        pass

    folder = _folder(tmp_path, preset("gmlp-tiny-mlm").to_dict())
    (folder / "tokenizer.json").write_text("{}")

    def panic(_path: str) -> None:
        raise PanicException("regex backtracking limit")

    with mock.patch("tokenizers.Tokenizer.from_file", panic), pytest.raises(CheckpointError, match="PanicException"):
        ck.load_tokenizer(folder)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(sorted(ModelConfig.__dataclass_fields__)),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**70), 2**70),
            st.floats(allow_nan=True, allow_infinity=True),
            st.text(max_size=20),
            st.lists(st.integers(), max_size=3),
            st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
        ),
        max_size=6,
    )
)
def test_any_config_json_loads_or_gets_a_message(tmp_path_factory: pytest.TempPathFactory, changes: dict) -> None:
    folder = tmp_path_factory.mktemp("cfg")
    (folder / "config.json").write_text(json.dumps(preset("gmlp-tiny-mlm").to_dict() | changes))
    try:
        cfg = read_config(folder)
    except CheckpointError as err:
        assert str(folder) in str(err)
        return
    check_config(cfg)  # whatever loads is within the limits


def test_eval_reads_no_data_a_checkpoint_names_by_itself(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = preset("gmlp-tiny-mlm").replace(extra={"data": "some-org/some-set"})
    folder = save_checkpoint(build_model(cfg), tmp_path / "ckpt")
    import datasets

    with mock.patch.object(datasets, "load_dataset", _never):
        assert main(["eval", str(folder), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "some-org/some-set" in err and "--data" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "colour=blue"], "unknown config field"),
        (["--eval-every", "0"], "eval_every=0"),
        (["--device", "bogus"], "device 'bogus'"),
        (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "cuda:99"], "CUDA"),
    ],
)
def test_bad_training_options_get_a_message_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    argv = ["train", "--preset", "gmlp-tiny-mlm", "--steps", "2", "--out", str(tmp_path / "run"), "--no-progress"]
    with mock.patch("gmlp_core.train.trainer.build_task_data", _never):
        assert main(argv + args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("preset_name", "data", "change", "message"),
    [
        ("gmlp-tiny-vision", "digits-canvas", "image_size=40000", "image_size / patch_size"),
        (
            "gmlp-tiny-vision",
            "digits-canvas",
            "image_size=16000 patch_size=500",
            "image_size",
        ),  # n fits, the images not
        ("gmlp-tiny-mlm", "embedded", "seq_len=30000", "seq_len"),
        ("gmlp-tiny-mlm", "embedded", "n_layers=100000", "n_layers"),
        ("amlp-tiny-mlm", "embedded", "d_model=20000 d_ffn=200000", "GMLP_LENS_MAX_MEMORY_GB"),
    ],
)
def test_training_configs_meet_the_limits_before_data_is_rendered(
    tmp_path: Path, capsys: pytest.CaptureFixture, preset_name: str, data: str, change: str, message: str
) -> None:
    argv = ["train", "--preset", preset_name, "--data", data, "--steps", "1", "--out", str(tmp_path / "run")]
    with mock.patch("gmlp_core.train.trainer.build_task_data", _never):
        assert main([*argv, "--no-progress", "--set", *change.split()]) == 2
    assert message in capsys.readouterr().err


def test_a_full_disk_is_a_checkpoint_error_and_the_old_file_survives(tmp_path: Path) -> None:
    model = build_model(preset("gmlp-tiny-mlm"))
    folder = save_checkpoint(model, tmp_path / "ckpt")
    before = (folder / "model.safetensors").read_bytes()

    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    with mock.patch.object(ck, "save_file", full), pytest.raises(CheckpointError, match="disk full"):
        save_checkpoint(model, folder)
    assert (folder / "model.safetensors").read_bytes() == before
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")], "no temporary file left behind"


def test_checkpoint_files_are_readable_by_other_users(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        folder = save_checkpoint(build_model(preset("gmlp-tiny-mlm")), tmp_path / "ckpt", metrics={"a": 1})
    finally:
        os.umask(old)
    for path in folder.iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path.name


def test_training_into_a_folder_with_another_model_needs_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = str(tmp_path / "run")
    common = ["--steps", "2", "--eval-every", "2", "--out", out, "--no-progress", "--device", "cpu"]
    assert main(["train", "--preset", "gmlp-tiny-mlm", "--set", "vocab_size=300", *common]) == 0
    assert (tmp_path / "run" / "tokenizer.json").exists()
    capsys.readouterr()
    assert main(["train", "--preset", "gmlp-tiny-vision", *common]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert read_config(tmp_path / "run").task == "mlm", "the old model is untouched"
    assert main(["train", "--preset", "gmlp-tiny-mlm", "--set", "vocab_size=300", *common]) == 0, "same model again"
    assert main(["train", "--preset", "gmlp-tiny-vision", *common, "--overwrite"]) == 0
    assert read_config(tmp_path / "run").task == "vision"
    assert not (tmp_path / "run" / "tokenizer.json").exists(), "no stale tokenizer from the old model"


@pytest.mark.parametrize("pattern", ["(a+)+$", "(\\w+\\s?)+$"])
def test_a_tokenizer_with_a_backtracking_pattern_is_refused_at_load(tmp_path: Path, pattern: str) -> None:
    """A real tokenizer.json whose pre-tokenizer regex backtracks catastrophically: tokenizers panics on the
    first long run of text. The load-time probe finds it, before any visitor's text does."""
    zoo_tokenizer = Path(__file__).resolve().parent.parent / "checkpoints" / "mlm-gmlp" / "tokenizer.json"
    spec = json.loads(zoo_tokenizer.read_text())
    spec["pre_tokenizer"] = {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}
    folder = _folder(tmp_path, preset("gmlp-tiny-mlm").to_dict())
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match="fails on long runs of text"):
        ck.load_tokenizer(folder)
