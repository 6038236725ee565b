"""The prompt optimizer: shorter variants of an agent's prompt that keep its instructions.

Three rewrites, each a variant of its own and all together a fourth:
- compact: filler phrases dropped ("please", "make sure to", "in order to"...), wordy
  phrases shortened, repeated sentences removed, in the system prompt and the instructions;
- examples: lists of examples cut to their first two items;
- schema (opt-in): top-level output fields removed that no validator, no consuming agent
  and no code reads. The listing package carries an agent's whole output, so this one is
  for agents whose output only feeds other agents; its experiment arm decides.
A variant that lost a number, a quoted word or a negation of the original is discarded.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from agents.prompting import SYSTEM
from agents.spec import AgentSpec
from bus.messages import PromptPatch
from optimizer.errors import ExperimentError
from optimizer.experiments import Arm, Experiment, Metric
from router.tokens import count_text_tokens

FILLERS: tuple[tuple[str, str], ...] = (
    (r"\bplease\s+", ""),
    (r"\bmake sure (?:that )?(?:you )?(?:to )?", ""),
    (r"\bbe sure to\s+", ""),
    (r"\bit is important that you\s+", ""),
    (r"\bit is important (?:that|to)\s+", ""),
    (r"\bnote that\s+", ""),
    (r"\byou should\s+", ""),
    (r"\b(?:very|really|basically|actually|simply|carefully|just)\s+", ""),
    (r"\bin order to\b", "to"),
    (r"\bas well as\b", "and"),
    (r"\ba number of\b", "several"),
    (r"\bdue to the fact that\b", "because"),
    (r"\bin the event that\b", "if"),
    (r"\bfor the purpose of\b", "for"),
    (r"\bat this point in time\b", "now"),
    (r"\beach and every\b", "every"),
    (r"\bYou turn a seller's product into marketplace listings\.\s*", ""),
)
"""Regex and replacement: wording a model does not need to follow the instruction."""
_EXAMPLES = re.compile(r"\((e\.g\.|for example|such as|like)\s*,?\s*([^()]*)\)", re.IGNORECASE)
_ITEM = r"[\w'-]+(?: [\w'-]+)?"
_SUCH_AS = re.compile(rf"\b(such as|e\.g\.|like)\s+((?:{_ITEM},\s*){{2,}}(?:and |or )?{_ITEM})")
_KEEP = re.compile(
    r"\d+(?:\.\d+)?|(?<!\w)'[^']+'(?!\w)|\"[^\"]+\"|\b(?:not|never|only|no|without)\b", re.I
)


@dataclass(frozen=True, kw_only=True)
class PromptVariant:
    """A shorter prompt of an agent, and what it saves."""

    name: str
    system: str
    instructions: str
    output_schema: dict[str, Any] | None
    tokens: int
    original_tokens: int
    dropped_fields: tuple[str, ...] = ()
    changes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def saved_tokens(self) -> int:
        """Prompt tokens saved on every request."""
        return self.original_tokens - self.tokens

    def patch(self, original: AgentSpec) -> PromptPatch:
        """The prompt patch that applies this variant to the agent's requests."""
        return PromptPatch(
            system=self.system if self.system != SYSTEM else "",
            find=original.instructions if self.instructions != original.instructions else "",
            replace=self.instructions if self.instructions != original.instructions else "",
            output_schema=self.output_schema if self.dropped_fields else None,
        )


def prompt_tokens(system: str, instructions: str, schema: dict[str, Any] | None) -> int:
    """Tokens of the static prompt: system prompt, instructions and output schema."""
    schema_tokens = count_text_tokens(json.dumps(schema)) if schema is not None else 0
    return count_text_tokens(system) + count_text_tokens(instructions) + schema_tokens


def compact(text: str) -> str:
    """Text without filler phrases and repeated sentences, in tidy spacing."""
    sentences: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
        for pattern, replacement in FILLERS:
            sentence = re.sub(pattern, replacement, sentence, flags=re.IGNORECASE)
        sentence = re.sub(r"[ \t]{2,}", " ", sentence).strip()
        sentence = sentence[:1].upper() + sentence[1:]
        if sentence and sentence.lower() not in (s.lower() for s in sentences):
            sentences.append(sentence)
    return " ".join(sentences)


def compress_examples(text: str) -> str:
    """Lists of examples cut to their first two items."""

    def parenthesised(match: re.Match[str]) -> str:
        items = [i.strip() for i in re.split(r",|\bor\b|\band\b", match.group(2)) if i.strip()]
        return f"({match.group(1)} {', '.join(items[:2])})" if len(items) > 2 else match.group(0)

    def inline(match: re.Match[str]) -> str:
        items = [i.strip() for i in re.split(r",\s*(?:and |or )?", match.group(2)) if i.strip()]
        return f"{match.group(1)} {' or '.join(items[:2])}"

    return _SUCH_AS.sub(inline, _EXAMPLES.sub(parenthesised, text))


def lost_terms(original: str, variant: str) -> list[str]:
    """Numbers, quoted words and negations of the original the variant no longer has."""
    have = {t.lower() for t in _KEEP.findall(variant)}
    lost: list[str] = []
    for term in _KEEP.findall(original):
        if term.lower() not in have and term not in lost:
            lost.append(term)
    return lost


def code_strings() -> frozenset[str]:
    """Every string constant in the agents package's code (what code reads by name)."""
    found: set[str] = set()
    root = resources.files("agents")
    for folder in (root, root.joinpath("specs")):
        for entry in folder.iterdir():
            if not entry.name.endswith(".py"):
                continue
            tree = ast.parse(entry.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found.add(node.value)
    return frozenset(found)


def used_fields(spec: AgentSpec, specs: Iterable[AgentSpec], code: frozenset[str]) -> set[str]:
    """Top-level output fields that the instructions ask for, or a validator, a consuming
    agent or code reads."""
    fields = set((spec.output_schema or {}).get("properties", {}))
    used = {name for name in fields if name in code}
    own = set(re.findall(r"[a-z]+", spec.instructions.lower()))
    used |= {name for name in fields if any(w in own for w in name.split("_") if len(w) > 3)}
    for validator in spec.validators:
        cells = getattr(validator, "__closure__", None) or ()
        for cell in cells:
            value = cell.cell_contents
            values = value if isinstance(value, tuple | list | set | frozenset) else (value,)
            used |= {v for v in values if isinstance(v, str) and v in fields}
    for consumer in specs:
        if spec.name not in consumer.inputs:
            continue
        if consumer.needs_llm:  # a model reads the whole input: every field may matter
            return fields
        text = consumer.instructions.lower()
        used |= {name for name in fields if name in text or name.replace("_", " ") in text}
    return used


def prune_schema(schema: dict[str, Any], keep: set[str]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The schema without its unused top-level properties, and the names dropped."""
    properties = schema.get("properties", {})
    dropped = tuple(name for name in properties if name not in keep)
    if not dropped or len(dropped) == len(properties):
        return schema, ()
    pruned = copy.deepcopy(schema)
    pruned["properties"] = {k: v for k, v in properties.items() if k in keep}
    pruned["required"] = [name for name in schema.get("required", []) if name in keep]
    return pruned, dropped


def variants(
    spec: AgentSpec, specs: Iterable[AgentSpec] = (), *, prune: bool = False
) -> list[PromptVariant]:
    """Shorter prompts of an agent that keep its instructions, shortest last."""
    original = prompt_tokens(SYSTEM, spec.instructions, spec.output_schema)
    specs = tuple(specs)
    schema, dropped = spec.output_schema, tuple[str, ...]()
    if prune and spec.output_schema is not None:
        schema, dropped = prune_schema(spec.output_schema, used_fields(spec, specs, code_strings()))
    candidates: list[tuple[str, str, str, dict[str, Any] | None, tuple[str, ...]]] = [
        ("compact", compact(SYSTEM), compact(spec.instructions), spec.output_schema, ()),
        ("examples", SYSTEM, compress_examples(spec.instructions), spec.output_schema, ()),
    ]
    if dropped:
        candidates.append(("schema", SYSTEM, spec.instructions, schema, dropped))
    both = compact(compress_examples(spec.instructions))
    candidates.append(("all", compact(SYSTEM), both, schema, dropped))
    found: list[PromptVariant] = []
    seen: set[tuple[str, str, str]] = set()
    for name, system, instructions, out_schema, gone in candidates:
        key = (system, instructions, json.dumps(out_schema, sort_keys=True))
        tokens = prompt_tokens(system, instructions, out_schema)
        if key in seen or tokens >= original:
            continue
        if lost_terms(SYSTEM + " " + spec.instructions, system + " " + instructions):
            continue
        seen.add(key)
        found.append(
            PromptVariant(
                name=name,
                system=system,
                instructions=instructions,
                output_schema=out_schema,
                tokens=tokens,
                original_tokens=original,
                dropped_fields=gone,
            )
        )
    return sorted(found, key=lambda v: -v.tokens)


def prompt_experiment(
    spec: AgentSpec,
    found: list[PromptVariant],
    *,
    percent: float = 10.0,
    min_samples: int = 200,
    quality_floor: float = 0.95,
) -> Experiment:
    """An experiment of the agent's prompt variants, percent of its traffic each."""
    if not found:
        raise ExperimentError(f"no shorter prompt of {spec.name} keeps its instructions")
    control = 100 - percent * len(found)
    original = found[0].original_tokens
    arms = [Arm(name="original", percent=control, prompt_tokens=original)]
    for variant in found:
        arms.append(
            Arm(
                name=variant.name,
                percent=percent,
                prompt=variant.patch(spec),
                prompt_tokens=variant.tokens,
                note=f"-{variant.saved_tokens} prompt tokens",
            )
        )
    return Experiment(
        name=f"prompt-{spec.name}"[:48].replace("_", "-"),
        agent=spec.name,
        metric=Metric.COST_PER_VALID,
        min_samples=min_samples,
        quality_floor=quality_floor,
        arms=arms,
    )
