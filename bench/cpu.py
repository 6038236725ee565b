"""CPU time of named processes, from the processes' own counters (user plus system), so a
benchmark can say how much CPU each part spent per request on a shared, loaded machine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import psutil


class CpuMeter:
    """Reads the CPU seconds of groups of processes (a group: one part, its replicas)."""

    def __init__(self, groups: Mapping[str, Sequence[int]]) -> None:
        self._groups = {name: [psutil.Process(p) for p in pids] for name, pids in groups.items()}

    def seconds(self) -> dict[str, float]:
        """CPU seconds each group has used so far."""
        return {name: sum(_cpu(p) for p in procs) for name, procs in self._groups.items()}


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def per_request_us(
    before: Mapping[str, float], after: Mapping[str, float], requests: int
) -> dict[str, float]:
    """Microseconds of CPU per request of each group between two readings."""
    return {name: round((after[name] - before[name]) * 1e6 / max(requests, 1), 1) for name in after}
