"""Every agent spec is valid, strict, reachable in the DAG, and keyed on a known task type."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agents.dag import WorkflowDag
from agents.spec import UPLOAD, AgentSpec, Family
from agents.specs import ALL_SPECS, INTERACTIVE_SPECS, WORKFLOW_SPECS
from bus.messages import TaskType


def strict_problems(schema: Any, path: str = "$") -> list[str]:
    """Where a schema breaks OpenAI's strict mode (every property required, no extras)."""
    if not isinstance(schema, dict):
        return []
    problems: list[str] = []
    if schema.get("type") == "object":
        if schema.get("additionalProperties") is not False:
            problems.append(f"{path}: additionalProperties must be false")
        if set(schema.get("required", [])) != set(schema.get("properties", {})):
            problems.append(f"{path}: every property must be required")
    for name, sub in schema.get("properties", {}).items():
        problems += strict_problems(sub, f"{path}.{name}")
    problems += strict_problems(schema.get("items"), f"{path}[]")
    return problems


def test_about_35_agents_covering_every_family() -> None:
    assert 33 <= len(ALL_SPECS) <= 37
    names = [spec.name for spec in ALL_SPECS]
    assert len(set(names)) == len(names)
    families = Counter(spec.family for spec in ALL_SPECS)
    assert set(families) == set(Family)
    assert all(count >= 4 for count in families.values()), families


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.name)
def test_every_spec_validates(spec: AgentSpec) -> None:
    assert spec.problems() == []
    assert spec.task_type in set(TaskType)
    if spec.needs_llm:
        assert spec.instructions
    if spec.output_schema is not None:
        jsonschema.Draft202012Validator.check_schema(spec.output_schema)
        assert strict_problems(spec.output_schema) == []


def test_the_workflow_dag_reaches_every_workflow_agent() -> None:
    dag = WorkflowDag(WORKFLOW_SPECS)
    assert dag.reachable() == set(dag.specs) == {spec.name for spec in WORKFLOW_SPECS}
    assert set(dag.order) == set(dag.specs)
    assert dag.depth() <= 10
    for spec in INTERACTIVE_SPECS:  # seller chat runs on demand, never in a workflow
        assert spec.interactive and spec.name not in dag.specs


def test_zero_call_agents_do_the_plain_arithmetic() -> None:
    zero = {spec.name for spec in WORKFLOW_SPECS if not spec.needs_llm}
    assert {"fees", "margin", "shipping", "unit_conversion", "listing_check"} <= zero
    llm = {spec.name for spec in WORKFLOW_SPECS if spec.needs_llm}
    assert len(llm) >= 25


def test_what_a_listing_cannot_do_without_is_required() -> None:
    required = {spec.name for spec in WORKFLOW_SPECS if spec.required}
    listings = {"ebay_listing", "amazon_listing", "amazon_bullets", "etsy_listing", "etsy_tags"}
    assert listings | {"shopify_listing", "identify", "price", "fees", "compliance"} <= required
    optional = {spec.name for spec in WORKFLOW_SPECS if not spec.required}
    assert {"translation", "promotion", "bundles", "trend", "photo_quality"} <= optional
    # A required agent may use an optional one, but never needs it.
    specs = {spec.name: spec for spec in WORKFLOW_SPECS}
    for name in required:
        assert all(dep == UPLOAD or specs[dep].required for dep in specs[name].consumes), name


def test_vision_is_per_photo_and_detailed_only_where_needed() -> None:
    vision = [spec for spec in WORKFLOW_SPECS if spec.uses_images]
    assert {spec.name for spec in vision} >= {"photo_subject", "defects", "label_text"}
    assert all(spec.task_type is TaskType.IMAGE_ANALYSIS for spec in vision)
    high = {spec.name for spec in vision if spec.image_detail == "high"}
    assert high == {"defects", "label_text"}  # reading text and spotting scratches
    # Photo analyses see only the photo, so the same photo can be reused across products.
    assert all(spec.upload_fields == () for spec in vision)


def test_a_bad_spec_set_is_refused() -> None:
    cyclic = (
        AgentSpec(name="a", family=Family.COPY, consumes=("b",), compute=lambda i: {}),
        AgentSpec(name="b", family=Family.COPY, consumes=("a",), compute=lambda i: {}),
    )
    with pytest.raises(ValueError, match="cycle"):
        WorkflowDag(cyclic)
    unknown = (AgentSpec(name="a", family=Family.COPY, consumes=("nope",), compute=dict),)
    with pytest.raises(ValueError, match="unknown inputs"):
        WorkflowDag(unknown)
    schemaless = AgentSpec(name="a", family=Family.COPY, consumes=(UPLOAD,), instructions="x")
    assert schemaless.problems()


ROOT = Path(__file__).parent.parent
DOCS = ("README.md", "agents/README.md", "docs/capacity.md")
"""The pages that count the agents."""
COUNTED = re.compile(
    r"(about |~)?\b(\d+)[- ](?:marketplace |declarative )?(?:agents?|specs)\b", re.IGNORECASE
)


def test_every_count_of_the_agents_is_the_registrys() -> None:
    """A newcomer read 35 agents in the README and 34/34 on the demo's bars: each page says
    35 for every agent and 34 for those run on each product, and the demo prints both."""
    from flipsync.demo import agents_line

    total, per_product = len(ALL_SPECS), len(WORKFLOW_SPECS)
    counts = [
        (page, m[0], m[1], int(m[2]))
        for page in DOCS
        for m in COUNTED.finditer((ROOT / page).read_text(encoding="utf-8"))
    ]
    assert len(counts) >= 5
    for page, said, rough, count in counts:
        assert not rough and count in (total, per_product), (page, said)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{per_product} marketplace agents" in readme and f"{total} agents, each" in readme
    assert agents_line() == (
        f"{total} agents: {per_product} run on each product (the bars count them), "
        "seller_chat on the seller's question at the end"
    )
