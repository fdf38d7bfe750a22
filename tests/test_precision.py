"""Precision: bf16 autocast where the hardware has it, fp32 master weights, the spatial gate summed in float32.

bf16 autocast runs on every CPU (emulated where the CPU lacks native bf16), so these tests run everywhere;
``auto`` is tested by pretending both kinds of hardware.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_config
from safetensors import safe_open

from gmlp_core import build_model, preset
from gmlp_core import hardware as hw
from gmlp_core.cli import main
from gmlp_core.evaluate import evaluate_checkpoint
from gmlp_core.train import TrainConfig, train

CPU = torch.device("cpu")


def test_auto_is_chosen_by_measurement_and_explicit_choices_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """bf16 where its products run ``BF16_GAIN`` times faster than fp32's, whatever the flags say (an Intel Xeon
    with the AVX-512 BF16 flag ran them 0.6x); one measurement per machine kind and shapes, kept on disk."""
    monkeypatch.setenv("GMLP_LENS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(hw, "_MEASURED", {})
    calls = []

    def pretend(rates: dict[str, float]):
        def calibrate(device: torch.device, shapes: object) -> dict[str, float]:
            calls.append(shapes)
            return rates

        return calibrate

    for flags in (True, False):  # the flags decide nothing
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=flags: v)
        for rates, want in (({"fp32": 100.0, "bf16": 300.0}, "bf16"), ({"fp32": 200.0, "bf16": 120.0}, "fp32")):
            monkeypatch.setattr(hw, "calibrate", pretend(rates))
            hw._MEASURED.clear()
            (tmp_path / "precision.json").unlink(missing_ok=True)
            shapes = ((64, 32, 32 + len(calls)),)  # another key each time
            choice = hw.choose_precision("auto", CPU, shapes)
            assert (choice.precision, choice.how) == (want, "measured"), rates
            assert choice.bf16_speedup == pytest.approx(rates["bf16"] / rates["fp32"])
            hw._MEASURED.clear()  # a new process: the file remembers
            again = hw.choose_precision("auto", CPU, shapes)
            assert (again.precision, again.how, again.fp32_gflops) == (want, "measured before", rates["fp32"])
    assert len(calls) == 4, "measured once per machine kind and shapes"
    gain = {"fp32": 100.0, "bf16": 100.0 * hw.BF16_GAIN * 0.99}  # faster, but not by enough to pay for the casts
    monkeypatch.setattr(hw, "calibrate", pretend(gain))
    assert hw.choose_precision("auto", CPU, ((8, 8, 9),)).precision == "fp32"
    assert hw.resolve_precision("auto", torch.device("meta")) == "fp32"
    assert hw.resolve_precision("bf16", CPU) == "bf16" and hw.resolve_precision("fp32", CPU) == "fp32"
    with pytest.raises(ValueError, match="precision='fp16'"):
        hw.resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(preset="gmlp-tiny-mlm", precision="half")


def test_the_machine_kind_is_read_from_torchs_cpu_detection() -> None:
    cpu = hw.cpu_description()
    assert cpu["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert hw.bf16_is_fast(CPU) == (hw.choose_precision("auto", CPU).precision == "bf16")
    assert cpu["cpu_bf16"] == torch.cpu._is_avx512_bf16_supported() and cpu["cpu"]


@pytest.mark.parametrize("arch", ["gmlp", "amlp"])
def test_the_spatial_gate_is_summed_in_float32_under_bf16_autocast(arch: str) -> None:
    """At init W z is below bf16's resolution around 1 (2^-8): a bf16 gate would be exactly b = 1 and the young
    W would pass no signal forward. The product W z runs in bf16 (its own relative precision, 2^-9) and the
    sum b + W z in float32, so every gate value still carries W z."""
    torch.manual_seed(0)
    cfg = preset(f"{arch}-tiny-mlm", vocab_size=100)
    model = build_model(cfg)
    ids = torch.randint(5, 100, (2, cfg.seq_len))
    with hw.autocast("bf16", CPU):
        out = model(input_ids=ids, output_gates=True)
    assert out.logits.dtype == torch.bfloat16, "the matmuls did run in bf16"
    spatial = model.blocks[0].sgu.spatial
    z = torch.randn(2, cfg.seq_len, 8, dtype=torch.bfloat16)  # LN(Z2) as autocast hands it over
    with hw.autocast("bf16", CPU):
        gate = spatial(z)
    assert gate.dtype == torch.float32
    w = spatial.matrix()
    product = torch.bmm(w.to(torch.bfloat16).expand(2, -1, -1), z)
    assert product.dtype == torch.bfloat16
    assert torch.equal(gate, product.float() + spatial.bias[:, None]), "bf16 product, float32 sum"
    exact = w @ z.float()  # W z in float32
    signal = gate - spatial.bias[:, None]
    assert 0 < signal.abs().max() < 2**-8, "W z is smaller than bf16's step at 1, and still present"
    # W z itself is good to bf16's relative precision (rounding the inputs and the result: a few 2^-9).
    torch.testing.assert_close(signal, exact, rtol=0, atol=3 * 2**-8 * exact.abs().max().item())
    assert torch.corrcoef(torch.stack([signal.flatten(), exact.flatten()]))[0, 1] > 0.999
    for g in out.gates:
        assert g.dtype == torch.float32


def test_fp32_forward_is_unchanged_by_the_gate_precision_code() -> None:
    """Outside autocast the gate is the plain float32 baddbmm, bit for bit."""
    torch.manual_seed(1)
    cfg = preset("gmlp-tiny-mlm", vocab_size=100)
    spatial = build_model(cfg).blocks[0].sgu.spatial
    z = torch.randn(3, cfg.seq_len, 8)
    direct = torch.baddbmm(spatial.bias[None, :, None].expand(3, -1, 8), spatial.matrix().expand(3, -1, -1), z)
    assert torch.equal(spatial(z), direct)


def _tiny(tmp_path: Path, precision: str, **kw) -> TrainConfig:
    return tiny_train_config(tmp_path / precision, "gmlp-tiny-mlm", precision=precision, **kw)


def test_calibration_measures_both_precisions_here() -> None:
    rates = hw.calibrate(CPU, ((64, 48, 32), (64, 32, 48)))
    assert set(rates) == {"fp32", "bf16"} and all(0 < r < 1e6 for r in rates.values())


def test_training_records_how_auto_chose(tmp_path: Path) -> None:
    result = train(_tiny(tmp_path, "auto"))
    choice = result.metrics["precision_choice"]
    assert choice["asked"] == "auto" and choice["precision"] == result.metrics["precision"]
    assert choice["how"] in ("measured", "measured before") and choice["fp32_gflops"] > 0
    assert choice["shapes"] == [[16 * 16, 32, 128], [16 * 16, 128, 32]]  # batch x n, d_model, d_ffn of the run
    saved = json.loads((result.checkpoint / "metrics.json").read_text())
    assert saved["precision_choice"] == choice


def test_bf16_training_learns_keeps_fp32_state_and_records_its_precision(tmp_path: Path) -> None:
    bf16 = train(_tiny(tmp_path, "bf16", save_every=20))
    fp32 = train(_tiny(tmp_path, "fp32"))
    assert bf16.metrics["precision"] == "bf16" and fp32.metrics["precision"] == "fp32"
    rows = [json.loads(line) for line in (bf16.checkpoint / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 0.2, "30 bf16 steps lower the validation loss"
    # Same seed and batches: bf16 follows the fp32 run closely at this size.
    assert bf16.metrics["val_loss"] == pytest.approx(fp32.metrics["val_loss"], rel=0.03)
    # Master weights and AdamW moments stay float32 (the resumable state holds both).
    for name in ("model.safetensors", "optimizer.safetensors"):
        with safe_open(str(bf16.checkpoint / "trainer_state" / name), "pt") as f:
            dtypes = {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable
        assert dtypes <= {torch.float32, torch.uint8}, (name, dtypes)  # uint8: the RNG state


def test_eval_precision_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = train(_tiny(tmp_path, "fp32", dtype="float16")).checkpoint
    stored = json.loads((ckpt / "metrics.json").read_text())
    fp32 = evaluate_checkpoint(ckpt, device="cpu")
    assert fp32["precision"] == "fp32" and fp32["val_loss"] == pytest.approx(stored["val_loss"], rel=1e-6)
    assert main(["eval", str(ckpt), "--device", "cpu", "--precision", "bf16"]) == 0
    bf16 = json.loads(capsys.readouterr().out)
    assert bf16["precision"] == "bf16"
    assert bf16["val_loss"] != fp32["val_loss"], "the forward pass really ran in bf16"
    assert bf16["val_loss"] == pytest.approx(fp32["val_loss"], rel=0.01)
