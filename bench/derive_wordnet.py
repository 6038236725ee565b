"""Derive router/semantic/assets/wordnet_contrast.json.gz from Open English WordNet.

Run once, when the source or the embedder's vocabulary changes:

    git clone https://github.com/globalwordnet/english-wordnet /tmp/oewn
    .venv/bin/python -m bench.derive_wordnet /tmp/oewn

The table (router/semantic/wordnet.py reads it) keeps the single-word lemmas whose form, or
an inflection of it, is a whole word of the embedder's vocabulary: their senses in
WordNet's order, those senses' hypernyms two levels up, each such synset's depth (fewest
hypernym steps to a root), adjective satellites' heads, and antonyms. Made from
globalwordnet/english-wordnet @d94538a (CC-BY-4.0; Princeton WordNet 3.0 under the WordNet
License), about 500 KB gzipped.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

from router.semantic.wordnet import ASSET

ASSETS = Path(__file__).parent.parent / "router" / "semantic" / "assets"
"""Where the table is written, beside the embedder's vocabulary it is filtered by."""


def derive(repo: Path, vocabulary: Path, out: Path) -> None:
    """Write the table from a checkout of globalwordnet/english-wordnet (its src/yaml),
    keeping the single-word lemmas whose form, or an inflection of it, is a whole word of
    the embedder's vocabulary."""
    import yaml  # derivation only: PyYAML comes with the dev tools

    def load(path: Path) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.load(path.read_text("utf-8"), Loader=yaml.CSafeLoader)
        return loaded

    words = {w.strip() for w in vocabulary.read_text("utf-8").splitlines()}
    words = {w for w in words if w.isalpha() and w.islower()}
    senses: dict[str, list[tuple[str, str]]] = {}
    sense_word: dict[str, str] = {}
    antonym_senses: dict[str, list[str]] = {}
    hypernyms: dict[str, list[str]] = {}
    similar: dict[str, list[str]] = {}
    for path in sorted((repo / "src" / "yaml").glob("*.yaml")):
        kind = path.name.split(".")[0]
        if path.name.startswith("entries-"):
            for lemma, by_pos in load(path).items():
                word = str(lemma).lower()
                if " " in word:
                    continue
                for pos, entry in by_pos.items():
                    for sense in entry.get("sense", []):
                        senses.setdefault(word, []).append((pos, sense["synset"]))
                        sense_word[sense["id"]] = word
                        antonym_senses.setdefault(word, []).extend(sense.get("antonym", []))
        elif kind in ("noun", "verb", "adj", "adv"):
            for synset, body in load(path).items():
                hypernyms[synset] = body.get("hypernym", []) + body.get("instance_hypernym", [])
                if "similar" in body:
                    similar[synset] = body["similar"]
    endings = ("", "s", "es", "ed", "d", "ing")
    kept = sorted(w for w in senses if any(w + e in words for e in endings))
    used = {s for w in kept for _, s in senses[w]}
    needed, frontier = set(used), set(used)
    for _ in range(2):
        frontier = {h for s in frontier for h in hypernyms.get(s, [])}
        needed |= frontier
    needed |= {h for s in used for h in similar.get(s, [])}
    number = {s: i for i, s in enumerate(sorted(needed))}
    depth: dict[str, int] = {}

    def steps(synset: str) -> int:  # fewest hypernym steps to a root (a DAG, ~20 deep)
        if synset not in depth:
            above = hypernyms.get(synset, [])
            depth[synset] = 1 + min(steps(h) for h in above) if above else 0
        return depth[synset]

    for synset in needed:
        steps(synset)
    table_data = {
        "source": "Open English WordNet (globalwordnet/english-wordnet), CC-BY-4.0",
        "senses": {w: [[p, number[s]] for p, s in senses[w]] for w in kept},
        "hyper": {number[s]: [number[h] for h in hypernyms[s] if h in number]
                  for s in sorted(needed) if hypernyms.get(s)},
        "similar": {number[s]: [number[h] for h in similar[s] if h in number]
                    for s in sorted(used) if s in similar},
        "depth": {number[s]: depth[s] for s in sorted(needed)},
        "antonyms": {w: sorted({sense_word[a] for a in antonym_senses[w] if a in sense_word})
                     for w in kept if antonym_senses.get(w)},
    }  # fmt: skip
    encoded = json.dumps(table_data, separators=(",", ":"), sort_keys=True).encode()
    out.write_bytes(gzip.compress(encoded, compresslevel=9, mtime=0))


def main() -> None:
    """Rebuild the packaged table from a checkout of globalwordnet/english-wordnet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="a checkout of globalwordnet/english-wordnet")
    args = parser.parse_args()
    derive(args.repo, ASSETS / "minilm_vocab.txt", ASSETS / ASSET)
    print(f"wrote {ASSETS / ASSET}")


if __name__ == "__main__":
    main()
