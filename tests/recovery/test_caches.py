"""Per-process caches under the threads of one Beam SDK worker: real threads hammering them with
real TensorFlow-written indexes must never raise, and must always return the right object."""

import os
import random
import shutil
import sys
import threading

import pytest

from recovery import healthy, storage
from recovery.caches import SharedCache
from recovery.counters import _origin_counter, _read_origin_counter
from tfbundle import read_index


@pytest.fixture
def fast_switching():
    """Switch threads every microsecond, so check-then-act races show up in a short test."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def _hammer(threads: int, rounds: int, work) -> list:
    start, errors = threading.Barrier(threads), []

    def run(seed):
        rng = random.Random(seed)
        start.wait()
        try:
            for _ in range(rounds):
                work(rng)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors


def test_the_parsed_index_cache_stays_correct_under_threads(pristine_family, tmp_path, fast_switching):
    family = pristine_family("keras3_adam")
    names = {}
    for i, source in enumerate([family.prefix, *family.siblings] * 6):    # more indexes than the cache holds
        path = str(tmp_path / f"copy-{i}.index")
        shutil.copy(source + ".index", path)
        with open(path, "rb") as f:
            names[path] = read_index(f.read()).entries
    assert len(names) > healthy._CACHE_SIZE
    fs, _ = storage.url_to_fs(str(tmp_path))
    paths = sorted(names)

    def work(rng):
        path = rng.choice(paths)
        got = healthy.read_index_cached(fs, path, os.path.getsize(path))
        assert got.entries == names[path], path

    assert _hammer(8, 300, work) == []
    assert len(healthy._parsed) <= healthy._CACHE_SIZE


def test_the_naming_cache_gives_every_thread_the_single_threaded_answer(pristine_family, fast_switching):
    family = pristine_family("keras3_adam")
    fs, _ = storage.url_to_fs(family.prefix)
    key = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"
    prefixes = [storage.url_to_fs(p)[1] for p in (family.prefix, *family.siblings)]
    expected = {p: _read_origin_counter(fs, p, key) for p in prefixes}
    assert all(value is not None for value in expected.values())      # real counters were read

    def work(rng):
        prefix = rng.choice(prefixes)
        assert _origin_counter(fs, prefix, key) == expected[prefix]

    assert _hammer(8, 200, work) == []


def test_shared_cache_evicts_oldest_and_never_caches_a_failure(fast_switching):
    cache = SharedCache(4)
    calls = []

    def work(rng):
        key = rng.randrange(20)
        assert cache.get_or_compute(key, lambda: calls.append(key) or key * 3) == key * 3

    assert _hammer(8, 500, work) == []
    assert len(cache) <= 4
    with pytest.raises(OSError):
        cache.get_or_compute("bad", lambda: (_ for _ in ()).throw(OSError("store did not answer")))
    assert cache.get_or_compute("bad", lambda: "fine") == "fine"
