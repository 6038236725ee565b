"""The trap generator's templates and values (bench/semantic_traps.generate): per category,
question templates with {v}, value pairs that differ, and rewordings that do not.

HELD_OUT's value pairs were written after the lexicon (router/semantic/assets/lexicon.toml)
and never added to it; see bench/semantic_traps.py.
"""

from __future__ import annotations

Category = tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]
"""(templates with {v}, value pairs that differ, matching rewordings (template, template))."""

CATEGORIES: dict[str, Category] = {
    "numbers_units": (
        [
            "Do you still have the {v} bag of rice?",
            "How much is shipping for a {v} parcel?",
            "is the {v} version in stock",
        ],
        [
            ("5 kg", "5 lb"),
            ("10 kg", "15 kg"),
            ("256GB", "128GB"),
            ("2 pack", "3 pack"),
            ("500 ml", "1 l"),
            ("12 inch", "15 inch"),
            ("1TB", "2TB"),
            ("6 ft", "6 m"),
            ("20 oz", "32 oz"),
            ("64 GB", "64 MB"),
            ("3 pieces", "4 pieces"),
            ("50%", "25%"),
        ],
        [
            ("Do you still have the 5 kg bag of rice?", "is the 5kg bag of rice still available"),
            ("is the 256GB version in stock", "do you have the 256 GB version in stock?"),
            ("How much is shipping for a 10 kg parcel?", "what does it cost to ship a 10kg parcel"),
        ],
    ),
    "sizes": (
        [
            "Is this hoodie available in {v}?",
            "do you have the jacket in {v}",
            "I ordered a {v} shirt but need to exchange it",
        ],
        [
            ("extra large", "large"),
            ("XL", "L"),
            ("S", "M"),
            ("small", "medium"),
            ("XXL", "XL"),
            ("extra small", "small"),
            ("size 8", "size 9"),
            ("petite", "regular"),
            ("x-large", "xx-large"),
            ("size M", "size L"),
            ("large", "medium"),
            ("tall", "regular"),
        ],
        [
            ("Is this hoodie available in extra large?", "do you have this hoodie in XL"),
            ("do you have the jacket in extra small", "is the jacket available in XS?"),
            ("Is this hoodie available in XXL?", "do you stock this hoodie in extra extra large"),
        ],
    ),
    "colours": (
        [
            "Is the {v} sofa back in stock?",
            "do you sell this dress in {v}",
            "I want to return the {v} sneakers",
        ],
        [
            ("dark green", "light green"),
            ("red", "blue"),
            ("navy", "black"),
            ("light blue", "dark blue"),
            ("pale pink", "hot pink"),
            ("grey", "white"),
            ("beige", "brown"),
            ("bright yellow", "pale yellow"),
            ("teal", "turquoise"),
            ("maroon", "burgundy"),
            ("olive", "khaki"),
            ("dark grey", "light grey"),
        ],
        [
            ("Is the gray sofa back in stock?", "is the grey sofa available again"),
            ("do you sell this dress in dark green", "Is this dress sold in dark green?"),
            ("I want to return the red sneakers", "how do I send back the red sneakers?"),
        ],
    ),
    "dates_times": (
        [
            "What did I order {v}?",
            "can you deliver it {v}",
            "Show me the payments I made {v}",
        ],
        [
            ("last week", "last month"),
            ("yesterday", "today"),
            ("this morning", "this evening"),
            ("tomorrow", "the day after tomorrow"),
            ("on March 5", "on March 6"),
            ("at 5pm", "at 5am"),
            ("next friday", "last friday"),
            ("in the morning", "at night"),
            ("2 days ago", "2 weeks ago"),
            ("on 2024-05-01", "on 2024-06-01"),
            ("last year", "this year"),
            ("at 9:30", "at 10:30"),
        ],
        [
            ("What did I order last week?", "what did i buy a week ago"),
            ("Show me the payments I made yesterday", "list the payments I made yesterday"),
            ("can you deliver it on May 1, 2024", "could you deliver it on 1 May 2024?"),
        ],
    ),
    "brands_products": (
        [
            "my {v} won't connect to bluetooth",
            "do you repair {v} screens",
            "is there a warranty on the {v}",
        ],
        [
            ("airpods", "earbuds"),
            ("ipad", "iphone"),
            ("samsung tv", "lg tv"),
            ("macbook", "chromebook"),
            ("Xbox", "PlayStation"),
            ("kindle", "tablet"),
            ("nike shoes", "adidas shoes"),
            ("dell laptop", "hp laptop"),
            ("sony", "bose"),
            ("pixel", "galaxy"),
            ("garmin", "fitbit"),
            ("dyson vacuum", "shark vacuum"),
        ],
        [
            ("my airpods won't connect to bluetooth", "My AirPods won't connect over Bluetooth"),
            ("do you repair ipad screens", "can you fix ipad screens?"),
            ("is there a warranty on the samsung tv", "does the Samsung TV come with a warranty"),
        ],
    ),
    "quantities": (
        [
            "I want to book a {v} room",
            "can I get a {v} shot of espresso",
            "why was I charged {v}",
        ],
        [
            ("double", "single"),
            ("triple", "double"),
            ("once", "twice"),
            ("single", "triple"),
            ("half", "whole"),
            ("a dozen", "a pair"),
        ],
        [
            ("I want to book a double room", "I'd like to reserve a double room"),
            ("why was I charged twice", "Why did you charge me twice?"),
        ],
    ),
    "negation": (
        [
            "{v} my subscription",
            "what happens if I {v} my order",
            "I {v} the package",
        ],
        [
            ("cancel", "don't cancel"),
            ("renew", "do not renew"),
            ("received", "never received"),
            ("paid for", "haven't paid for"),
            ("want to return", "don't want to return"),
            ("can track", "can't track"),
        ],
        [
            ("don't cancel my subscription", "please do not cancel my subscription"),
            ("I never received the package", "I have not received the package"),
            ("cancel my subscription", "please cancel my subscription"),
        ],
    ),
    "opposite_intent": (
        [
            "How do I {v} my spending limit?",
            "can you {v} the notifications for my account",
            "I want to {v} my plan",
        ],
        [
            ("increase", "decrease"),
            ("enable", "disable"),
            ("raise", "lower"),
            ("upgrade", "downgrade"),
            ("activate", "deactivate"),
            ("lock", "unlock"),
            ("turn on", "turn off"),
            ("subscribe to", "unsubscribe from"),
            ("extend", "reduce"),
            ("unfreeze", "freeze"),
            ("boost", "cut"),
            ("resume", "pause"),
        ],
        [
            ("How do I increase my spending limit?", "how can i raise my spending limit"),
            (
                "can you disable the notifications for my account",
                "please turn off the notifications for my account",
            ),
            ("I want to upgrade my plan", "how do I upgrade my plan?"),
        ],
    ),
    "refund_charge": (
        [
            "why did I get a {v} on my card",
            "how long does a {v} take to show up",
            "I see a {v} from your shop on my statement",
        ],
        [
            ("refund", "charge"),
            ("credit", "debit"),
            ("reimbursement", "fee"),
            ("rebate", "penalty"),
        ],
        [
            ("how long does a refund take to show up", "how long until a refund shows up"),
            ("why did I get a charge on my card", "why is there a charge on my card"),
        ],
    ),
    "order": (
        [
            "How do I move money {v}?",
            "what is the fee to transfer {v}",
            "ship it {v} please",
        ],
        [
            ("from savings to checking", "from checking to savings"),
            ("from USD to EUR", "from EUR to USD"),
            ("from London to Paris", "from Paris to London"),
            ("from my credit card to my debit card", "from my debit card to my credit card"),
            ("from GBP to USD", "from USD to GBP"),
            ("from Toronto to Dublin", "from Dublin to Toronto"),
        ],
        [
            (
                "How do I move money from savings to checking?",
                "how can i transfer money from savings to checking",
            ),
            ("ship it from London to Paris please", "please ship it from London to Paris"),
        ],
    ),
    "ids_money": (
        [
            "cancel order {v}",
            "where is my refund of {v}",
            "I was charged {v} for shipping",
        ],
        [
            ("113542617735902", "732201349959"),
            ("$20", "$200"),
            ("#00108", "#00109"),
            ("€15", "£15"),
            ("12.99 dollars", "12.90 dollars"),
            ("AB-1234", "AB-1243"),
        ],
        [
            ("cancel order 113542617735902", "please cancel my order #113542617735902"),
            ("where is my refund of $20", "where's my $20.00 refund?"),
        ],
    ),
}
HELD_OUT: dict[str, list[tuple[str, str]]] = {
    "numbers_units": [("750 ml", "330 ml"), ("8 oz", "8 lb"), ("4 pack", "6 pack")],
    "sizes": [("extra extra large", "extra large"), ("size 10", "size 12"), ("jumbo", "mini")],
    "colours": [("mustard", "amber"), ("deep purple", "light purple"), ("lilac", "mauve")],
    "dates_times": [("in the afternoon", "in the evening"), ("3 days ago", "3 months ago"),
                    ("next week", "next month"), ("on June 3rd", "on June 13th")],
    "brands_products": [("anker charger", "belkin charger"), ("sonos", "marshall"),
                        ("lenovo", "asus"), ("oura ring", "whoop strap")],
    "quantities": [("quadruple", "double"), ("several", "both")],
    "negation": [("approve", "not approve"), ("keep", "never keep")],
    "opposite_intent": [("unblock", "block"), ("show", "hide"), ("include", "exclude")],
    "refund_charge": [("cashback", "penalty")],
    "order": [("from Berlin to Rome", "from Rome to Berlin"),
              ("from CAD to AUD", "from AUD to CAD")],
    "ids_money": [("ORD-5521", "ORD-5512"), ("$1,200", "$1,020")],
}  # fmt: skip
"""Value pairs written after the lexicon and never added to it: the generalisation check."""
REWORDINGS: dict[str, list[tuple[str, str]]] = {
    "numbers_units": [("is the {v} version in stock", "do you have the {v} version in stock?")],
    "sizes": [("do you have the jacket in {v}", "is the jacket available in {v}?")],
    "colours": [("do you sell this dress in {v}", "is this dress sold in {v}?")],
    "dates_times": [("Show me the payments I made {v}", "list the payments I made {v}")],
    "brands_products": [("do you repair {v} screens", "can you fix {v} screens?")],
    "quantities": [("I want to book a {v} room", "I'd like to reserve a {v} room")],
    "negation": [("what happens if I {v} my order", "what would happen if I {v} my order?")],
    "opposite_intent": [("How do I {v} my spending limit?", "how can i {v} my spending limit")],
    "refund_charge": [("why did I get a {v} on my card", "why is there a {v} on my card?")],
    "order": [("what is the fee to transfer {v}", "how much does it cost to transfer {v}?")],
    "ids_money": [("cancel order {v}", "please cancel my order {v}")],
}
"""Template pairs that say the same in other words, filled with each value: matching pairs."""
