"""The prompt optimizer: shorter variants that keep the instructions, counted in tokens, run
as experiment arms, and promoted only when they hold the quality floor."""

from __future__ import annotations

import dataclasses

import pytest
import redis.asyncio as aioredis

from agents.prompting import SYSTEM, build_messages
from agents.spec import UPLOAD, AgentSpec, Family
from agents.specs import ALL_SPECS
from agents.specs.schema import obj, text
from bus.messages import LlmRequest, OutputSchema
from optimizer import keys
from optimizer.arm_stats import ArmStats
from optimizer.errors import ExperimentError
from optimizer.experiments import ExperimentStore, arm_rules
from optimizer.prompt_variants import (
    code_strings,
    compact,
    compress_examples,
    lost_terms,
    prompt_experiment,
    used_fields,
    variants,
)
from optimizer.report import promote
from router.flags.decide import FlagSet, apply_prompt

WORDY = AgentSpec(
    name="wordy_titles",
    family=Family.COPY,
    consumes=(UPLOAD,),
    instructions=(
        "Please make sure to write a title of at most 80 characters. It is important that you "
        "do not use emoji. In order to help buyers, basically list the materials as well as "
        "the colours (e.g. red, blue, green, teal). Please make sure to write a title of at "
        "most 80 characters."
    ),
    output_schema=obj(title=text(80), materials=text(80)),
)


def test_compact_drops_filler_and_repeats_but_keeps_the_instructions() -> None:
    short = compress_examples(compact(WORDY.instructions))
    assert "Please" not in short and "In order to" not in short and "basically" not in short
    assert short.count("80 characters") == 1  # the repeated sentence went
    assert "Do not use emoji." in short and "(e.g. red, blue)" in short
    assert lost_terms(WORDY.instructions, short) == []


def test_a_rewrite_that_loses_a_negation_or_a_number_is_caught() -> None:
    assert lost_terms("Do not use emoji; at most 80 characters.", "Use emoji; at most 80.") == [
        "not"
    ]
    assert lost_terms("at most 80 characters", "short") == ["80"]


def test_variants_are_shorter_in_tokens_and_keep_every_instruction() -> None:
    found = variants(WORDY)
    assert found, "the wordy prompt has shorter variants"
    for variant in found:
        assert variant.tokens < variant.original_tokens
        assert (
            lost_terms(
                SYSTEM + " " + WORDY.instructions, variant.system + " " + variant.instructions
            )
            == []
        )
    best = found[-1]
    assert best.saved_tokens >= 25, best


def test_schema_pruning_keeps_every_field_something_reads() -> None:
    code = code_strings()
    for spec in ALL_SPECS:
        if spec.output_schema is None:
            continue
        used = used_fields(spec, ALL_SPECS, code)
        for validator_field in ("package_dimensions_cm",):
            if validator_field in spec.output_schema.get("properties", {}):
                assert validator_field in used  # item_specifics' validator reads it
        consumed_by_model = any(spec.name in c.inputs and c.needs_llm for c in ALL_SPECS)
        if consumed_by_model:
            assert used == set(spec.output_schema["properties"])
    promotion = next(s for s in ALL_SPECS if s.name == "promotion")
    pruned = next(v for v in variants(promotion, ALL_SPECS, prune=True) if v.name == "schema")
    assert pruned.dropped_fields and pruned.output_schema is not None
    assert set(pruned.output_schema["required"]) == set(pruned.output_schema["properties"])
    assert not set(pruned.dropped_fields) & used_fields(promotion, ALL_SPECS, code)


def test_a_variant_arm_rewrites_the_agents_requests() -> None:
    spec = dataclasses.replace(WORDY, name="ebay_listing")
    found = variants(spec)
    experiment = prompt_experiment(spec, found, percent=30)
    assert len(found) >= 2 and experiment.arms[0].name == "original"
    assert experiment.arms[0].percent == 100 - 30 * len(found)
    flags = FlagSet(arm_rules(experiment))
    changed = 0
    for i in range(200):
        messages = build_messages(spec, {UPLOAD: {"title_hint": f"mug {i}"}})
        request = LlmRequest(
            id=f"r{i}",
            tenant="t1",
            agent=spec.name,
            messages=messages,
            output_schema=OutputSchema(name="x", schema=spec.output_schema or {}),
        )
        decision = flags.decide(request)
        assert decision is not None and decision.arm is not None
        if decision.prompt is not None and decision.prompt.replace:
            patched = apply_prompt(request, decision.prompt)
            body = patched.messages[1].content
            assert isinstance(body, list)
            text_part = getattr(body[0], "text", "")
            assert not text_part.startswith(spec.instructions) and "mug" in text_part
            changed += 1
    share = 30 * len(found) * 2  # of 200 requests, the variant arms' share
    assert abs(changed - share) <= 25, (changed, share)


async def test_promotion_is_refused_below_the_quality_floor(redis_client: aioredis.Redis) -> None:
    experiment = prompt_experiment(WORDY, variants(WORDY)[-1:], percent=50, min_samples=100)
    store = ExperimentStore(redis_client)
    await store.start(experiment)
    variant = experiment.arms[1].name
    # The variant costs half as much per request but is valid 85% of the time, the floor 95%.
    for arm, cost, valid in (("original", 400, 495), (variant, 200, 425)):
        await redis_client.hset(
            keys.arm_stats(experiment.name, arm),
            mapping={
                "n": 500,
                "cost": 500 * cost,
                "cost2": 500 * cost * cost + 500,
                "lat": 500 * 40,
                "lat2": 500 * 1700,
                "judged": 500,
                "valid": valid,
            },
        )
    with pytest.raises(ExperimentError, match=r"refusing to promote .*under the quality floor"):
        await promote(store, ArmStats(redis_client), experiment.name)
    # Holding the floor, the same saving is promoted: the patch becomes the agent's default.
    await redis_client.hset(keys.arm_stats(experiment.name, variant), "valid", 490)
    _, change = await promote(store, ArmStats(redis_client), experiment.name)
    assert [r.name for r in change.set_rules] == [f"promoted:{experiment.name}"]
    assert change.set_rules[0].prompt is not None and change.set_rules[0].agent == WORDY.name
