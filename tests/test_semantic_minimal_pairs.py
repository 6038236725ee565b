"""Minimal pairs: questions alike but for a word that changes them never share an answer."""

from __future__ import annotations

import pytest

from router.semantic.entities import describe, extract
from router.semantic.minimal_pairs import differs, words


def _differs(one: str, other: str) -> str | None:
    return differs(words(one), words(other))


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("shipping time for a 5 miles box?", "shipping time for a 5 km box?"),
        ("Do you ship to Canada?", "Do you ship from Canada?"),
        ("do you have these jeans in m", "do you have these jeans in l"),
        ("is there a case for the iphone 14 pro", "is there a case for the iphone 14 pro max"),
        ("is this item refundable", "is this item non-refundable"),
        ("is this charger compatible with my phone", "is this charger incompatible with my phone"),
        ("the parcel arrived with the box", "the parcel arrived w/o the box"),
        ("should I use fba or fbm", "should I use fbm or fba"),
        ("show orders over $50", "show orders under $50"),
        ("I was charged twenty-five dollars", "I was charged twenty-six dollars"),
        ("is the light-blue hoodie in stock", "is the dark-blue hoodie in stock"),
        ("I did'nt receive my parcel", "I did receive my parcel"),
        ("what's the buyer's fee on this sale", "what's the seller's fee on this sale"),
        ("how do I mark an order as shipped", "how do I mark an order as delivered"),
        ("is the toddler size in stock", "is the infant size in stock"),
    ],
)  # fmt: skip
def test_a_changed_value_makes_two_questions(one: str, other: str) -> None:
    """Each pair differs in one thing a person sees (a unit, a role, a size, a variant, a
    negation, an order, a comparison, a number, a shade); the check says which."""
    assert _differs(one, other) is not None
    assert _differs(other, one) is not None


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("the seller is responding", "the seller stopped responding"),
        ("my payment went through", "my payment failed to go through"),
        ("is the price with tax", "is the price tax-free"),
        ("I'd like the phone with a case", "I'd like the phone minus the case"),
        ("deliver it this friday", "deliver it next friday"),
        ("what did I pay this month", "what did I pay last month"),
        ("please deliver before noon", "please deliver around noon"),
        ("my rent is due at the beginning of the month", "my rent is due at the end of the month"),
        ("will this jacket work at -20 degrees", "will this jacket work at 20 degrees"),
        ("will this jacket work at −20 degrees", "will this jacket work at 20 degrees"),
    ],
)  # fmt: skip
def test_negating_verbs_relative_times_and_signs_are_markers(one: str, other: str) -> None:
    """A verb or word that negates what follows, a relative time or point of a span, and a
    minus before a number are [paraphrase] markers or values: the pair is refused."""
    assert _differs(one, other) is not None
    assert _differs(other, one) is not None


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("how do I like a listing", "how do I dislike a listing"),
        ("I'd like this seller", "I'd unlike this seller"),
        ("can I do the transfer", "can I undo the transfer"),
    ],
)
def test_a_function_word_and_its_negation_differ(one: str, other: str) -> None:
    """A word and its negated-prefix form differ even when the word is paraphrase-safe."""
    assert _differs(one, other) is not None
    assert _differs(other, one) is not None


def test_a_minus_is_a_sign_only_before_a_number_alone() -> None:
    """A minus before a number alone is its sign; the hyphens of a date or a code are not."""
    assert words("at -20 degrees") == ("at", "-20", "degrees")
    assert words("due 2024-05-01") == ("due", "2024", "-", "05", "-", "01")
    assert words("SKU AB-12") == ("sku", "ab", "-", "12")


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("How do I top up my card?", "How can I top up my card?"),
        ("What happens if my card is lost", "What happen if my card is lost"),
        ("Where is my card?", "Where is my new card?"),
        ("Can I use my card at an ATM?", "Can I use my card at any ATM?"),
        ("jeans in ｘｌ", "jeans in xl"),
        ("café opening hours", "cafe opening hours"),
        ("meet at 5pm", "meet at 17:00"),
        ("order 12345 is late", "order #12345 is late"),
        ("I want to cancel my order", "please cancel my order"),
        ("How do I move money from savings?", "how can i transfer money from savings"),
        ("The ATM took my card.", "The ATM kept my card."),
        ("What did I buy last week?", "What did I buy a week ago?"),
    ],
)  # fmt: skip
def test_a_rewording_is_not_a_minimal_pair(one: str, other: str) -> None:
    """Function words, inflections, listed synonyms, accents and full-width letters, the
    same value spelt another way, or a reworded verb or noun (left to the embedding and the
    error bound) do not refuse a pair."""
    assert _differs(one, other) is None


def test_words_are_bounded_and_longer_texts_are_not_compared() -> None:
    """A text of more than MAX_WORDS words keeps none, and two such texts are not compared."""
    long_text = "word " * 500
    assert words(long_text) == ()
    assert differs(words(long_text), words(long_text + "km")) is None


def test_money_keeps_its_sign_scale_and_ambiguous_thousands() -> None:
    """ "$2k" is not "$2m", "-$300" is not "$300", and "1.000" (a thousand or one) is kept as
    written rather than read as 1."""
    assert describe(extract("above $2k")) != describe(extract("above $2m"))
    assert describe(extract("a balance of -$300")) != describe(extract("a balance of $300"))
    assert describe(extract("1.000 euros")) != describe(extract("1 euro"))
    assert describe(extract("$1,200.00")) == describe(extract("1200 dollars"))


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("my sister owes me $20", "I owe my sister $20"),
        ("I sent the parcel to the buyer", "the buyer sent the parcel to me"),
        ("I owe my roommate money, what now", "my roommate owes me money, what now"),
        ("How can I exchange GBP for AUD?", "How do I exchange AUD for GBP?"),
        ("can she refund him", "can he refund her"),
    ],
)  # fmt: skip
def test_who_does_what_to_whom_is_an_order(one: str, other: str) -> None:
    """The same words with doer and done-to traded ("I" and "me" are one person, its case
    aside) are two questions, though the words differ in form ("owe" / "owes")."""
    assert _differs(one, other) is not None
    assert _differs(other, one) is not None


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("I did not make a cash withdrawal that is on my statement",
         "There is a cash withdrawal on my statement that I did not make"),
        ("I need to change my name, since i just got married",
         "Since I just got married I need to change my name."),
        ("I just got married and I need to change my name",
         "I need to change my name, since i just got married"),
        ("i try to set up the delivery address", "I am trying to set a delivery address up"),
        ("do you ship from the US to Canada", "do you ship to Canada from the US"),
        ("I was charged for the same thing twice", "I was charged twice for the same thing"),
    ],
)  # fmt: skip
def test_a_clause_moved_whole_keeps_the_question(one: str, other: str) -> None:
    """One block of words moved to another place (a clause, a particle, a "from ... to ..."
    pair) keeps who does what: not a minimal pair."""
    assert _differs(one, other) is None
    assert _differs(other, one) is None


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("after the buyer pays the seller ships", "the buyer pays after the seller ships"),
        ("if the buyer returns it we refund", "the buyer returns it if we refund"),
        ("before I get paid I ship", "I get paid before I ship"),
        ("is it refundable but not returnable", "is it not refundable but returnable"),
        ("the item arrived not damaged but late", "the item arrived damaged but not late"),
        ("fee 5% on ebay and 10% on etsy", "fee 10% on ebay and 5% on etsy"),
        ("i want the tan boots not the dark tan", "i want the dark tan boots not the tan"),
    ],
)  # fmt: skip
def test_one_word_that_joins_negates_or_names_a_value_is_not_a_block(one: str, other: str) -> None:
    """A connective, a negation or a value moved alone past a clause changes which clause
    depends on which, or what is negated: two questions (percentages are words too)."""
    assert _differs(one, other) is not None
    assert _differs(other, one) is not None
