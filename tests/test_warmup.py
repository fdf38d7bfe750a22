"""The start-up warm-up (dashboard/warmup.py): the first run starts it once, it computes what the default views ask
for with the pages' own cached functions, and the first visit of W versus attention then computes nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from app_helpers import start, texts

from dashboard import w_vs_attention_view as view
from dashboard import warmup


def _wait(status: warmup.Status, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not status.finished and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status.finished, f"warm-up still at {status.done} of {status.total} ({status.current})"


def test_the_warm_up_prepares_the_default_views(app_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GMLP_LENS_WARMUP", "1")
    monkeypatch.setattr(warmup, "_STATUS", {})  # a fresh server process
    view.MEASURED.clear()
    at = start("overview", query={"models": "mlm-gmlp,mlm-amlp,mlm-transformer,vision-gmlp"})
    (status,) = warmup._STATUS.values()
    _wait(status)
    assert not status.failed and status.done == status.total
    # four models, W's analysis and snapshots of mlm-gmlp, three W-versus-attention jobs per MLM model, Scaling's two,
    # and three per pair model (test-pair answers, same-word share, the lecture pair's mixing)
    assert status.total == 4 + 3 + 3 * 3 + 2 + 3 * 3
    measured = {key[0]: error for key, (error, where) in view.MEASURED.items() if where == "the default sentence"}
    assert set(measured) == {"mlm-gmlp", "mlm-amlp", "mlm-transformer"} - _exact_models(app_root)
    for error in measured.values():
        assert 0 <= error["relative_error"] < 0.5 and 0 <= error["max_error"] < 1

    start("overview", query={"models": "mlm-gmlp"})  # another session: the warm-up is not started again
    assert list(warmup._STATUS.values()) == [status]

    calls = []
    original = view.mixing_report
    monkeypatch.setattr(view, "mixing_report", lambda *a, **k: calls.append(a) or original(*a, **k))
    at.switch_page("../pages/w_vs_attention.py").run()
    assert not at.exception
    assert calls == []  # every map of the default view was ready
    if measured:
        assert "against the exact map on the default sentence" in texts(at)


def _exact_models(root: Path) -> set[str]:
    """Models whose token influence is exact anyway (tiny presets): no estimate, so no error to measure."""
    from gmlp_core.analysis.influence import EXACT_LIMIT
    from gmlp_core.checkpoints import read_config

    out = set()
    for name in ("mlm-gmlp", "mlm-amlp", "mlm-transformer"):
        cfg = read_config(root / name)
        if cfg.seq_len * cfg.d_model <= EXACT_LIMIT:
            out.add(name)
    return out


def test_the_exact_maps_toggle_measures_the_estimate_on_this_input(app_root: Path) -> None:
    view.MEASURED.clear()
    at = start("w_vs_attention", query={"models": "mlm-gmlp,mlm-amlp,mlm-transformer"})
    if not any(t.key == "wva-exact" for t in at.toggle):
        pytest.skip("every map here is exact already (tiny models)")
    assert "is not measured yet" in texts(at)
    at.toggle(key="wva-exact").set_value(True).run()
    assert not at.exception
    assert "exact (computed on request)" in texts(at)
    at.toggle(key="wva-exact").set_value(False).run()
    assert "against the exact map on this input" in texts(at)


def test_a_process_that_exits_during_the_warm_up_exits_cleanly(tmp_path: Path) -> None:
    """The interpreter waits for the job in hand and runs no more: a daemon thread killed inside torch would end the
    process with "terminate called without an active exception" (exit status 134), as it did under AppTest."""
    import subprocess
    import sys

    script = tmp_path / "exit_during_warmup.py"
    script.write_text(
        "import time, types, torch\n"
        "from dashboard import warmup\n"
        "def job():\n"
        "    a = torch.randn(400, 400)\n"
        "    for _ in range(150):\n"
        "        a = (a @ a).tanh()\n"
        "warmup.jobs = lambda lens: [('job', job)] * 20\n"
        "status = warmup.start(types.SimpleNamespace(folder='x'))\n"
        "time.sleep(0.5)\n"
        "print('exiting at job', status.done, flush=True)\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "terminate called" not in done.stderr, done.stderr[-2000:]
    assert "exiting at job" in done.stdout
