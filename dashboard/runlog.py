"""How long each script run took on the server, for load tests: with ``GMLP_LENS_RUN_LOG=FILE`` every run appends
one JSON line (page, wall seconds, the run thread's CPU seconds, end time). Off (no cost) without it.

A browser on the same machine as the server (as in ``tests/test_load.py``) adds its own drawing time to what a
user waits; these lines are the server's share, measured where it is spent.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

_LOCK = threading.Lock()


@dataclass(frozen=True)
class Run:
    path: str | None
    start: float
    cpu: float


def start() -> Run:
    """Call at the top of a script run."""
    return Run(os.environ.get("GMLP_LENS_RUN_LOG") or None, time.perf_counter(), time.thread_time())


def finish(run: Run, page: str) -> None:
    """Call when the run ends (also when it stops early): one line to the log, if there is one."""
    if run.path is None:
        return
    line = {
        "page": page,
        "seconds": round(time.perf_counter() - run.start, 4),
        "cpu": round(time.thread_time() - run.cpu, 4),
        "end": round(time.time(), 3),
    }
    with _LOCK, open(run.path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
