"""Every agent spec, in one list the workflow DAG is derived from."""

from agents.specs.copy import LISTING
from agents.specs.image import IDENTIFY
from agents.specs.pricing import PRICE

ALL_SPECS = (IDENTIFY, LISTING, PRICE)

__all__ = ["ALL_SPECS", "IDENTIFY", "LISTING", "PRICE"]
