"""Service processes hold numpy's BLAS pool to one thread unless the operator sized it."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from flipsync.native_threads import OPERATOR_SETTINGS, one_native_thread


def blas_threads() -> list[int]:
    """Threads of every BLAS pool loaded in this process."""
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_pools_are_held_to_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OPERATOR_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    with threadpool_limits(limits=None):  # whatever the test process had, restored after
        assert one_native_thread()
        assert blas_threads() and set(blas_threads()) == {1}


def test_an_operators_setting_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    with threadpool_limits(limits=None):
        before = blas_threads()
        assert not one_native_thread()
        assert blas_threads() == before
