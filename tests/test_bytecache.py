"""The server's result cache is bounded in bytes, shared, least-recently-used, and gives memory back (#38 item 14)."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import numpy as np
import pandas as pd
import pytest
import torch

from dashboard.bytecache import ByteCache, nbytes
from dashboard.loaders import freeze

MB = 1_000_000


def test_nbytes_counts_tensors_arrays_tables_and_models_once() -> None:
    t = torch.zeros(1000)  # 4,000 bytes
    a = np.zeros(500)  # 4,000 bytes
    assert nbytes(t) == 4000 and nbytes(a) == 4000
    assert nbytes(t[10:20]) == 4000, "a view holds its whole storage"
    assert 8000 <= nbytes({"t": t, "again": t, "a": a, "view": a[:10]}) < 9000, "shared storage counted once"
    df = pd.DataFrame({"x": np.zeros(1000)})
    assert nbytes(df) >= 8000
    model = torch.nn.Linear(100, 10)
    assert nbytes(model) == (100 * 10 + 10) * 4


class Big:
    """A value with a known size whose death can be observed."""

    def __init__(self, mb: float) -> None:
        self.data = np.zeros(int(mb * MB), dtype=np.uint8)


def test_the_budget_is_in_bytes_and_the_least_recently_used_leave_first() -> None:
    cache = ByteCache(max_bytes=10 * MB)
    refs = {}
    for name in "abc":
        value = cache.get_or_compute(name, lambda: Big(3))
        refs[name] = weakref.ref(value)
        del value
    assert cache.bytes <= 10 * MB and len(cache) == 3
    cache.get_or_compute("a", lambda: pytest.fail("a is cached"))  # a is now the most recent
    cache.get_or_compute("d", lambda: Big(3))
    gc.collect()
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}
    assert refs["b"]() is None, "an evicted value is freed"
    assert cache.bytes <= 10 * MB
    # one result larger than the whole budget is served, not kept, and evicts nothing
    big = cache.get_or_compute("huge", lambda: Big(20))
    assert big.data.size == 20 * MB and "huge" not in cache and len(cache) == 3


def test_a_group_keeps_at_most_its_entries() -> None:
    cache = ByteCache(max_bytes=100 * MB)
    for i in range(5):
        cache.get_or_compute(("f", i), lambda: 1, group="f", group_max=2)
        cache.get_or_compute(("g", i), lambda: 2, group="g")
    assert [k for k in (("f", i) for i in range(5)) if k in cache] == [("f", 3), ("f", 4)]
    assert all(("g", i) in cache for i in range(5))
    cache.clear(lambda key: key[0] == "g")
    assert len(cache) == 2 and cache.bytes == nbytes(1) * 2


def test_concurrent_callers_of_one_key_compute_it_once() -> None:
    cache = ByteCache(max_bytes=100 * MB)
    calls = []

    def slow() -> int:
        calls.append(1)
        time.sleep(0.2)
        return 42

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_compute("k", slow))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 8 and len(calls) == 1


def test_a_failed_computation_is_not_cached_and_can_be_retried() -> None:
    cache = ByteCache(max_bytes=MB)
    with pytest.raises(ValueError):
        cache.get_or_compute("k", lambda: (_ for _ in ()).throw(ValueError("bad input")))
    assert "k" not in cache and cache.get_or_compute("k", lambda: 7) == 7


def test_tables_are_copied_per_caller_models_shared() -> None:
    cache = ByteCache(max_bytes=MB)
    first = cache.get_or_compute("t", lambda: pd.DataFrame({"x": [1, 2]}), copy_out=True)
    first.loc[0, "x"] = 99
    assert cache.get_or_compute("t", lambda: None, copy_out=True)["x"].tolist() == [1, 2]
    model = cache.get_or_compute("m", lambda: torch.nn.Linear(2, 2))
    assert cache.get_or_compute("m", lambda: None) is model


def test_arguments_are_keyed_by_value() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert freeze((a,)) == freeze((a.copy(),)) and freeze((a,)) != freeze((a + 1,))
    assert freeze((a,)) != freeze((a.reshape(3, 2),)), "the shape is part of the key"
    assert freeze({"ids": [1, 2], "k": None}) == freeze({"k": None, "ids": [1, 2]})
    assert freeze((torch.tensor([1, 2]),)) == freeze((np.array([1, 2]),))


def test_the_process_stays_near_what_the_cache_holds() -> None:
    """In a fresh process: 16 results of 25 MB each (heap memory: many small arrays) through a 50 MB budget leave
    the process near what the cache holds, not 400 MB bigger: evicted results are freed, not kept alive."""
    script = textwrap.dedent(
        """
        import numpy as np
        from dashboard.bytecache import ByteCache

        def rss_mb():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096 / 1e6

        cache = ByteCache(max_bytes=50_000_000)
        start = rss_mb()
        for i in range(16):
            # many small arrays: heap memory (not one mmap that the allocator always returns)
            cache.get_or_compute(i, lambda: [np.ones(25_000, dtype=np.uint8) for _ in range(1000)])
        print(rss_mb() - start, cache.bytes / 1e6)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    grown, held = map(float, out.stdout.split())
    assert held <= 50
    assert grown < 150, f"the process grew {grown:.0f} MB while holding {held:.0f} MB"


def test_recent_keeps_the_latest_entries_only() -> None:
    from dashboard.bytecache import Recent

    facts = Recent(max_entries=3)
    for k in range(5):
        facts[k] = k * k
    assert list(facts) == [2, 3, 4] and facts[4] == 16
    facts[2] = 0  # set again: the most recent now
    facts[5] = 25
    assert list(facts) == [4, 2, 5]
