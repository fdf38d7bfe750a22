"""One least-recently-used cache for every per-checkpoint result, bounded in bytes, that gives memory back.

Streamlit's caches bound entries, not bytes: 16 held-out sets of a large hostile checkpoint and a few of its
analyses held 4.4 GB after the sessions that made them had gone (#38). Here every entry is weighed when it is
stored (tensors, arrays, tables, models, and containers of them), all caches share one budget
(``GMLP_LENS_MAX_CACHE_GB``, default 2), the least recently used entries leave first, and after an eviction the
freed heap is handed back to the operating system (glibc ``malloc_trim``), so the server's size follows what it
holds. Concurrent callers of one key wait for the first one's result instead of computing it again (30 students
opening the same step compute it once). No streamlit import: ``dashboard.loaders`` adds the spinner.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import dataclasses
import gc
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import pandas as pd
import torch

log = logging.getLogger(__name__)

BUDGET_ENV = "GMLP_LENS_MAX_CACHE_GB"
DEFAULT_BUDGET_GB = 2.0


def nbytes(value: Any) -> int:
    """The memory ``value`` holds, counted once per tensor storage or array: tensors, arrays, DataFrames,
    modules, dataclasses, and dicts, lists, tuples and sets of them (anything else by ``sys.getsizeof``)."""
    seen: set[int] = set()

    def walk(v: Any, depth: int) -> int:
        if depth > 64 or id(v) in seen:
            return 0
        seen.add(id(v))
        if isinstance(v, torch.Tensor):
            storage = v.untyped_storage()
            key = storage.data_ptr() or id(storage)
            if key in seen:
                return 0
            seen.add(key)
            return storage.nbytes()
        if isinstance(v, np.ndarray):
            return v.nbytes if v.base is None else walk(v.base, depth + 1)
        if isinstance(v, (pd.DataFrame, pd.Series)):
            usage = v.memory_usage(deep=True)
            return int(usage.sum() if isinstance(usage, pd.Series) else usage)
        if isinstance(v, torch.nn.Module):
            return sum(walk(t, depth + 1) for t in [*v.parameters(), *v.buffers()])
        if isinstance(v, dict):
            return sys.getsizeof(v) + sum(walk(k, depth + 1) + walk(x, depth + 1) for k, x in v.items())
        if isinstance(v, (list, tuple, set, frozenset)):
            return sys.getsizeof(v) + sum(walk(x, depth + 1) for x in v)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return sys.getsizeof(v) + sum(walk(getattr(v, f.name), depth + 1) for f in dataclasses.fields(v))
        if hasattr(v, "__dict__") and not isinstance(v, type):  # any other object: what its attributes hold
            return sys.getsizeof(v) + walk(vars(v), depth + 1)
        return sys.getsizeof(v)

    return walk(value, 0)


def budget_bytes() -> int:
    """The shared budget: ``$GMLP_LENS_MAX_CACHE_GB`` gigabytes (default 2)."""
    raw = os.environ.get(BUDGET_ENV)
    try:
        gb = float(raw) if raw is not None else DEFAULT_BUDGET_GB
    except ValueError:
        log.warning("%s=%r is not a number: using %g GB", BUDGET_ENV, raw, DEFAULT_BUDGET_GB)
        gb = DEFAULT_BUDGET_GB
    return max(0, int(gb * 1e9))


_libc: Any = None


def give_memory_back(collect: bool = False) -> None:
    """Hand the heap's free pages back to the operating system (glibc ``malloc_trim``; elsewhere a no-op), after
    a full garbage collection when ``collect`` (values in reference cycles; ~0.2 s in a server, so not on every
    eviction: reference counting frees the arrays and tensors an eviction drops at once)."""
    global _libc
    if collect:
        gc.collect()
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name) if name and sys.platform.startswith("linux") else False
        except OSError:
            _libc = False
    trim = getattr(_libc, "malloc_trim", None) if _libc else None
    if trim is not None:
        trim(0)


@dataclasses.dataclass
class _Entry:
    value: Any
    size: int
    group: Hashable = None


class ByteCache:
    """A least-recently-used map bounded by the bytes of its values (``nbytes``), shared by many functions."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self._max = max_bytes
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}
        self._groups: dict[Hashable, int] = {}
        self.bytes = 0

    @property
    def max_bytes(self) -> int:
        return budget_bytes() if self._max is None else self._max

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get_or_compute(
        self,
        key: Hashable,
        compute: Callable[[], Any],
        *,
        copy_out: bool = False,
        group: Hashable = None,
        group_max: int | None = None,
    ) -> Any:
        """The cached value of ``key``, else ``compute()`` stored (while it fits the budget); with ``copy_out``
        each caller gets its own deep copy (a table a page may change), else the shared object. ``group`` (e.g.
        the function) may hold at most ``group_max`` entries, its least recently used leaving first."""
        hit, value = self._get(key)
        if not hit:
            with self._lock:
                gate = self._computing.setdefault(key, threading.Lock())
            with gate:  # the first caller computes; the others wait for it and then find the value
                hit, value = self._get(key)
                if not hit:
                    try:
                        value = compute()
                        self._put(key, value, group, group_max)
                    finally:
                        with self._lock:
                            self._computing.pop(key, None)
        return copy.deepcopy(value) if copy_out else value

    def _get(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            self._entries.move_to_end(key)
            return True, entry.value

    def _put(self, key: Hashable, value: Any, group: Hashable = None, group_max: int | None = None) -> None:
        size = nbytes(value)
        evicted = False
        with self._lock:
            if key in self._entries:
                self._drop(key)
            if size > self.max_bytes:  # larger than the whole budget: served, not kept
                log.info(
                    "cache: a %.1f MB result is over the %.1f MB budget; not kept", size / 1e6, self.max_bytes / 1e6
                )
                return
            self._entries[key] = _Entry(value, size, group)
            self._groups[group] = self._groups.get(group, 0) + 1
            self.bytes += size
            if group_max is not None and self._groups[group] > group_max:
                oldest = next(k for k, e in self._entries.items() if e.group == group)
                self._drop(oldest)
                evicted = True
            while self.bytes > self.max_bytes and len(self._entries) > 1:
                self._drop(next(iter(self._entries)))
                evicted = True
        if evicted:
            give_memory_back()

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size
        self._groups[entry.group] -= 1

    def clear(self, where: Callable[[Hashable], bool] | None = None) -> None:
        """Drop every entry (or those whose key ``where`` accepts) and give the memory back."""
        with self._lock:
            for key in [k for k in self._entries if where is None or where(k)]:
                self._drop(key)
        give_memory_back(collect=True)


CACHE = ByteCache()  # the server's one cache of per-checkpoint results


class Recent(OrderedDict):
    """A dict of at most ``max_entries`` items that forgets the least recently set one first: for small facts a
    server keeps about checkpoints (a measured error, a note), so a long-running server's set of them stays bounded."""

    def __init__(self, max_entries: int) -> None:
        super().__init__()
        self.max_entries = max_entries
        self._lock = threading.Lock()

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            super().__setitem__(key, value)
            self.move_to_end(key)
            while len(self) > self.max_entries:
                self.popitem(last=False)
