"""Run the simulated provider standalone: python -m simulator --port 8100 --latency-ms 40."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from simulator.app import create_app
from simulator.config import FaultKind, Faults, SimConfig
from simulator.quality import ModelQuality


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; every fault kind has its own --<kind> RATE option."""
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--name", default="simulated", help="provider name (owned_by)")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--latency-jitter-ms", type=float, default=0.0)
    parser.add_argument("--per-output-token-ms", type=float, default=0.0)
    parser.add_argument(
        "--stream-token-ms",
        type=float,
        default=8.0,
        help="pause per token between streamed chunks when --per-output-token-ms is 0",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retry-after-s", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=30.0)
    parser.add_argument(
        "--model-quality", action="store_true", help="models differ (simulator.quality)"
    )
    for kind in FaultKind:
        flag = f"--{kind.value.replace('_', '-')}"
        parser.add_argument(flag, dest=kind.value, type=float, default=0.0, metavar="RATE")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The SimConfig the command line describes."""
    faults = Faults(
        retry_after_s=args.retry_after_s,
        timeout_s=args.timeout_s,
        **{kind.value: getattr(args, kind.value) for kind in FaultKind},
    )
    return SimConfig(
        name=args.name,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        per_output_token_ms=args.per_output_token_ms,
        stream_token_ms=args.stream_token_ms,
        seed=args.seed,
        faults=faults,
        quality=ModelQuality(seed=args.seed) if args.model_quality else None,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until interrupted."""
    args = parse_args(argv)
    app = create_app(config_from_args(args))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
