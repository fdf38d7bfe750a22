"""dashboard.loaders: the checkpoint handle and the one per-checkpoint cache decorator (no app needed)."""

from __future__ import annotations

import os
from pathlib import Path

from dashboard.loaders import Checkpoint, per_checkpoint


def test_per_checkpoint_caches_by_signature_and_keeps_functions_apart(lens_root: Path) -> None:
    calls: list[str] = []

    @per_checkpoint(max_entries=8)
    def first(checkpoint: Checkpoint, k: int) -> str:
        calls.append("first")
        return f"first {checkpoint.name} {k}"

    @per_checkpoint(max_entries=8)
    def second(checkpoint: Checkpoint, k: int) -> str:
        calls.append("second")
        return f"second {checkpoint.name} {k}"

    folder = lens_root / "mlm-gmlp"
    ckpt = Checkpoint.at("mlm-gmlp", folder)
    assert ckpt.config.arch == "gmlp" and ckpt.signature
    assert first(ckpt, 1) == first(Checkpoint.at("mlm-gmlp", folder), 1) == "first mlm-gmlp 1"
    assert second(ckpt, 1) == "second mlm-gmlp 1"  # same arguments, another function: its own cache
    assert first(ckpt, 2) == "first mlm-gmlp 2"
    assert calls == ["first", "second", "first"]
    config = folder / "config.json"
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # the file changed on disk
    try:
        assert first(Checkpoint.at("mlm-gmlp", folder), 1) == "first mlm-gmlp 1"
        assert calls[-1] == "first" and len(calls) == 4
    finally:
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
