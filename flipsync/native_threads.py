"""Native thread pools (BLAS, OpenMP) held to one thread in a service process.

numpy's OpenBLAS starts a thread per core and spins them on every matrix product. The
router multiplies a prompt's vector against stored vectors on each request (the routing
neighbours, the semantic cache's index): small products that one thread finishes in tens of
microseconds. With two threads on a machine whose cores the router already shares with the
ledger, nats-server and redis-server, the same product cost about seventeen times the CPU
(measured here: a 3,072 x 256 float32 matrix-vector product, 84 µs of CPU with one thread,
1,455 µs with two, on a loaded 2-core machine). A service gains nothing from the second
thread: its concurrency is the event loop's, and more replicas are how it uses more cores.

An operator who sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or MKL_NUM_THREADS keeps their
choice. onnxruntime's pools are set where its sessions are made (router.semantic.embedder).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

OPERATOR_SETTINGS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables by which an operator sizes the pools themselves."""


def one_native_thread() -> bool:
    """Limit the process's BLAS and OpenMP pools to one thread, unless the operator sized
    them (OPERATOR_SETTINGS); True when the limit was applied."""
    if any(os.environ.get(name) for name in OPERATOR_SETTINGS):
        return False
    import numpy  # noqa: F401  (loads OpenBLAS, so that its pool can be limited)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # process-wide until restored; nothing restores it
    return True
