"""A simulated OpenAI-compatible LLM provider: realistic, deterministic, offline."""

from router.simulated.app import FAULT_HEADER, SIMULATED_HEADER, create_app
from router.simulated.config import DEFAULT_MODELS, FaultKind, Faults, SimConfig
from router.simulated.errors import SimError, StartError
from router.simulated.server import SimulatedProvider
from router.simulated.state import SimState, SimStats

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
