"""A simulated OpenAI-compatible LLM provider: realistic, deterministic, offline."""

from simulator.app import FAULT_HEADER, SIMULATED_HEADER, create_app
from simulator.config import DEFAULT_MODELS, FaultKind, Faults, SimConfig
from simulator.errors import SimError, StartError
from simulator.server import SimulatedProvider
from simulator.state import SimState, SimStats

__all__ = [
    "DEFAULT_MODELS",
    "FAULT_HEADER",
    "SIMULATED_HEADER",
    "FaultKind",
    "Faults",
    "SimConfig",
    "SimError",
    "SimState",
    "SimStats",
    "SimulatedProvider",
    "StartError",
    "create_app",
]
