"""WordNet sister terms and antonyms: one word swapped for its opposite or its sister is
another question; a synonym or a broader word is not."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bench.derive_wordnet import derive
from router.semantic.minimal_pairs import differs, words
from router.semantic.wordnet import contrasting


@pytest.mark.parametrize(
    ("one", "other"),
    [("hot", "cold"), ("cheap", "expensive"), ("violin", "cello"), ("wasp", "bee"),
     ("trumpet", "trombone"), ("violins", "cellos")],
)  # fmt: skip
def test_opposites_and_sisters_contrast(one: str, other: str) -> None:
    """Antonyms, and two kinds of one specific thing (inflected too), contrast both ways."""
    assert contrasting(one, other)
    assert contrasting(other, one)


@pytest.mark.parametrize(
    ("one", "other"),
    [("buy", "purchase"), ("car", "vehicle"), ("invoice", "bill"), ("sofa", "couch"),
     ("service", "support"), ("fba", "fbm"), ("refund", "refunds")],
)  # fmt: skip
def test_synonyms_kinds_shallow_sisters_and_unknown_words_do_not(one: str, other: str) -> None:
    """Synonyms somewhere, one a kind of the other, sisters under a parent near WordNet's
    roots ("service" / "support": "work"), and words it does not list do not contrast."""
    assert not contrasting(one, other)


def test_a_minimal_pair_of_sisters_is_two_questions() -> None:
    """One content word swapped for its sister refuses the pair; for a synonym it does not."""
    assert differs(words("can I learn the violin online"), words("can I learn the cello online"))
    assert (
        differs(words("how do I buy a gift card"), words("how do I purchase a gift card")) is None
    )


def test_the_table_derives_from_wordnet_yaml(tmp_path: Path) -> None:
    """derive() reads Open English WordNet's YAML: senses in order, hypernyms with their
    depth, antonyms by sense id; words outside the vocabulary are left out."""
    yaml_dir = tmp_path / "src" / "yaml"
    yaml_dir.mkdir(parents=True)
    (yaml_dir / "entries-a.yaml").write_text(
        "alto:\n  n:\n    sense:\n    - id: 'alto%1:1'\n      synset: 00000003-n\n"
        "bass:\n  n:\n    sense:\n    - id: 'bass%1:1'\n      synset: 00000004-n\n"
        "      antonym:\n      - 'alto%1:1'\n"
        "zither:\n  n:\n    sense:\n    - id: 'zither%1:1'\n      synset: 00000005-n\n",
        "utf-8",
    )
    (yaml_dir / "noun.Tops.yaml").write_text(
        "00000001-n:\n  members: [thing]\n  partOfSpeech: n\n"
        "00000002-n:\n  hypernym: [00000001-n]\n  members: [voice]\n  partOfSpeech: n\n"
        "00000003-n:\n  hypernym: [00000002-n]\n  members: [alto]\n  partOfSpeech: n\n"
        "00000004-n:\n  hypernym: [00000002-n]\n  members: [bass]\n  partOfSpeech: n\n",
        "utf-8",
    )
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_text("alto\nbass\n[CLS]\n", "utf-8")
    out = tmp_path / "table.json.gz"
    derive(tmp_path, vocabulary, out)
    table = json.loads(gzip.decompress(out.read_bytes()))
    assert sorted(table["senses"]) == ["alto", "bass"]  # zither is not in the vocabulary
    alto, bass = table["senses"]["alto"][0][1], table["senses"]["bass"][0][1]
    assert table["hyper"][str(alto)] == table["hyper"][str(bass)]
    (parent,) = table["hyper"][str(alto)]
    assert table["depth"][str(parent)] == 1 and table["depth"][str(alto)] == 2
    assert table["antonyms"] == {"bass": ["alto"]}
    derive(tmp_path, vocabulary, tmp_path / "again.json.gz")
    assert (tmp_path / "again.json.gz").read_bytes() == out.read_bytes()  # deterministic
