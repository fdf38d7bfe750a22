"""Start-up work, done once per server process in a background thread, so the first visitor of each page finds
its default view ready: every default model loaded, the default sentence's maps on W versus attention (with
the influence estimate's measured error), the default model's W analysis and training snapshots, and the pair
models' answers, same-word shares and lecture-pair mixing for "When attention matters".

The first script run of the server starts it when its page is drawn (``start``); the jobs call the very cached functions the pages
call, with the same arguments, so a page that asks while a job runs waits for that job (Streamlit computes
each cached value once) instead of computing it again. ``progress`` shows how far it has got in the sidebar
while it runs, and refreshes itself until it is done.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import streamlit as st

from dashboard import attention_matters_view, loaders, scaling_view, spatial_view, w_vs_attention_view
from dashboard.context import Lens

log = logging.getLogger(__name__)

THREAD_NAME = "gmlp-lens-warmup"
NICE = 10  # the warm-up thread's scheduling priority (niceness), below the sessions' own threads
# At exit the warm-up stops between jobs and the interpreter waits for the job in hand: a daemon thread killed
# inside torch ends the process with "terminate called without an active exception" (exit status 134).
_STOP = threading.Event()
_THREADS: list[threading.Thread] = []
EXIT_WAIT_S = 120.0


@atexit.register
def _stop_at_exit() -> None:
    _STOP.set()
    for thread in _THREADS:
        thread.join(timeout=EXIT_WAIT_S)


Job = tuple[str, Callable[[], object]]


@dataclass
class Status:
    """Where the warm-up is: jobs done of total, the one running, seconds taken, jobs that failed."""

    total: int = 0
    done: int = 0
    current: str = ""
    started: float = field(default_factory=time.perf_counter)
    seconds: float | None = None  # set when every job has run
    failed: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.seconds is not None


_LOCK = threading.Lock()
_STATUS: dict[str, Status] = {}  # per checkpoint folder


class _NoContextWarnings(logging.Filter):
    """Streamlit warns "missing ScriptRunContext" when a cached function runs outside a page's run: expected here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != THREAD_NAME


def enabled() -> bool:
    """Whether to warm up: yes unless ``GMLP_LENS_WARMUP=0`` (the test suite sets it; one test turns it on)."""
    return os.environ.get("GMLP_LENS_WARMUP", "1").strip() not in ("0", "false", "no", "off")


def jobs(lens: Lens) -> list[Job]:
    """What the default views will ask for, in the order a visitor meets it (models first)."""
    out: list[Job] = [(f"loading {name}", functools.partial(lens.load, name)) for name in lens.names()]
    out += spatial_view.warm_jobs(lens)
    out += w_vs_attention_view.warm_jobs(lens)
    out += scaling_view.warm_jobs()
    out += attention_matters_view.warm_jobs(lens)  # the lecture's pair step: answers, shares, mixing
    out += w_vs_attention_view.error_jobs(lens)  # the exact maps: the slowest, and no page waits for them
    return out


def status(lens: Lens) -> Status | None:
    """The warm-up of ``lens.folder`` in this process, if one was started."""
    return _STATUS.get(str(lens.folder))


def start(lens: Lens) -> Status:
    """Start the warm-up for ``lens.folder`` once per process (later calls return its status). Returns at once:
    even the list of jobs is made in the background thread (it loads models to encode the default input)."""
    key = str(lens.folder)
    with _LOCK:
        if key in _STATUS:
            return _STATUS[key]
        state = _STATUS[key] = Status(current="planning")
    for name in ("streamlit.runtime.scriptrunner_utils.script_run_context", "streamlit.runtime.caching.cache_data_api"):
        logging.getLogger(name).addFilter(_NoContextWarnings())
    thread = threading.Thread(target=_run, args=(lens, state), name=THREAD_NAME, daemon=True)
    _THREADS.append(thread)
    thread.start()
    return state


def _run(lens: Lens, status: Status) -> None:
    loaders.torch_threads()
    # Linux schedules threads one by one: a visitor's own requests go first, the warm-up takes what is left.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    try:
        todo = jobs(lens)
    except Exception:
        log.exception("warm-up: planning failed")
        todo = []
        status.failed.append("planning")
    status.total = len(todo)
    for label, job in todo:
        if _STOP.is_set():  # the process is exiting
            break
        status.current = label
        try:
            job()
        except Exception:  # a broken checkpoint must not stop the rest; its page shows the error itself
            log.exception("warm-up: %s failed", label)
            status.failed.append(label)
        status.done += 1
    status.current = ""
    status.seconds = time.perf_counter() - status.started
    log.info("warm-up: %d jobs in %.1f s (%d failed)", status.total, status.seconds, len(status.failed))


@st.fragment(run_every=1.0)
def _progress_fragment(status: Status) -> None:
    if status.finished:
        st.rerun()  # a full run, which no longer draws this fragment: its timer stops
    st.progress(
        status.done / max(status.total, 1),
        text=f"Preparing the default views in the background ({status.done} of {status.total}): {status.current}",
    )


def progress(status: Status | None) -> None:
    """In the sidebar, while the warm-up runs: how far it has got (refreshed every second until done)."""
    if status is not None and not status.finished:
        with st.sidebar:
            _progress_fragment(status)
