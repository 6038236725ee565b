"""A finished workflow is written as files under --out/<tenant>/<product_id>/ and nowhere
else, whatever ids its event carries; an upload with such an id is refused at the start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest
from faststream.nats import NatsBroker

from agents.bulk_report import cost_line
from agents.limits import MAX_TEXT_BYTES
from agents.output import summary, write_package
from agents.product_input import ProductInput
from agents.upload import Uploader
from bus.messages import WorkflowDone


def done(tenant: str, product_id: str) -> WorkflowDone:
    """A finished workflow's final event, with an empty listing."""
    return WorkflowDone(workflow_id="w1", tenant=tenant, product_id=product_id, ok=True)


def test_a_package_is_written_under_the_tenant_and_product(tmp_path: Path) -> None:
    out = tmp_path / "listings"
    folder = write_package(out, done("default", "Tasse café ☕"), simulated=True)
    assert folder == out / "default" / "Tasse café ☕"
    assert json.loads((folder / "package.json").read_text())["ok"] is True


def test_a_failed_run_leaves_no_earlier_listing_beside_it(tmp_path: Path) -> None:
    """Found by a newcomer: after a run that failed, the product's folder held the new
    FAILED package.json beside the ebay/amazon/etsy/shopify files of an earlier good run."""
    good = done("default", "mug")
    good.listing = {"marketplaces": {"ebay": {"title": "Mug"}, "etsy": {"title": "Mug"}}}
    folder = write_package(tmp_path, good, simulated=True)
    (folder / "notes.txt").write_text("mine")  # the seller's own file stays
    assert (folder / "ebay.json").exists() and (folder / "etsy.json").exists()
    failed = WorkflowDone(workflow_id="w2", tenant="default", product_id="mug", ok=False,
                          reason="over budget")  # fmt: skip
    write_package(tmp_path, failed, simulated=True)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "package.json", "summary.txt"]
    assert json.loads((folder / "package.json").read_text())["ok"] is False


@pytest.mark.parametrize(
    ("tenant", "product_id"),
    [("default", "../../escaped"), ("default", "/tmp/x"), ("default", ".."), ("default", ""),
     ("../..", "x"), ("/tmp", "x"), ("a.b", "x")],
)  # fmt: skip
def test_ids_that_would_lead_outside_the_output_folder_are_refused(
    tmp_path: Path, tenant: str, product_id: str
) -> None:
    """Defence in depth: sources refuse such ids first, but the event is what is written."""
    out = tmp_path / "deep" / "listings"
    out.mkdir(parents=True)
    with pytest.raises(ValueError):
        write_package(out, done(tenant, product_id), simulated=True)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


async def test_every_upload_refuses_such_a_product_id_before_storing_anything() -> None:
    """The HTTP API and any other client of the Uploader hold the same rule as the files:
    nothing is stored or published (the broker is never touched)."""
    uploader = Uploader(cast(NatsBroker, None))
    with pytest.raises(ValueError, match="product id '../../escaped' has / or"):
        await uploader.upload(ProductInput(product_id="../../escaped"), tenant="default")


async def test_every_upload_refuses_oversized_text_before_storing_anything() -> None:
    """Notes, a title or an attribute over the per-field bound are refused by the Uploader
    itself, so the HTTP API holds the same bound as the CLI's files (megabytes of notes
    were uploaded there and then failed inside the router)."""
    uploader = Uploader(cast(NatsBroker, None))
    huge = "x" * (MAX_TEXT_BYTES + 1)
    for product in (
        ProductInput(product_id="p1", notes=huge),
        ProductInput(product_id="p1", title_hint=huge),
        ProductInput(product_id="p1", attributes={"material": huge}),
    ):
        with pytest.raises(ValueError, match="over the 65536-byte limit"):
            await uploader.upload(product, tenant="default")


async def test_every_upload_refuses_a_product_too_large_together_before_storing_anything() -> None:
    """Every field under its bound, but 9 MB together: the upload message was over NATS'
    max_payload and the publish raised MaxPayloadError, which no caller expected."""
    uploader = Uploader(cast(NatsBroker, None))
    attributes = {f"a{i}": "x" * 60_000 for i in range(150)}
    with pytest.raises(ValueError, match="together: 9000490 bytes, over the 1048576-byte"):
        await uploader.upload(ProductInput(product_id="p1", attributes=attributes), tenant="t")


def test_the_summary_names_each_compliance_issue_rather_than_ok_and_a_count() -> None:
    """Found by a newcomer: the demo said "compliance ok (2 issues)", an ok that hid what
    the issues were."""
    checked = done("default", "mug")
    issues = [
        {"marketplace": "all", "severity": "low", "rule": "condition not stated",
         "fix": "say Used: good"},
        {"marketplace": "etsy", "severity": "medium", "rule": "not handmade or vintage",
         "fix": "list it elsewhere"},
    ]  # fmt: skip
    checked.listing = {"operations": {"compliance": {"status": "ok", "issues": issues}}}
    lines = summary(checked, simulated=False).splitlines()
    at = lines.index("  compliance status ok; 2 issues found:")
    assert lines[at + 1 : at + 3] == [
        "  issue      low, all marketplaces: condition not stated (fix: say Used: good)",
        "  issue      medium, etsy: not handmade or vintage (fix: list it elsewhere)",
    ]
    assert not any("ok (" in line for line in lines)
    checked.listing = {"operations": {"compliance": {"status": "ok", "issues": []}}}
    assert "  compliance ok, no issues found" in summary(checked, simulated=False).splitlines()


def test_a_product_that_cost_nothing_says_which_levers_answered_it() -> None:
    """Found by a newcomer: a re-run of the demo said "saved 100.0%" for every product, and
    not that the answers came from the cache."""
    again = done("demo", "mug")
    again.baseline_micro_usd = 58_267
    again.served_by = {"exact_cache": 27, "zero_call": 6, "photo_dedup": 6, "dedup": 1}
    cost = summary(again, simulated=True).splitlines()[-1]
    assert cost == (
        "  cost       $0.000000 vs naive $0.058267: saved 100.0% simulated: no call paid, "
        "answers from exact_cache 27, photo_dedup 6, zero_call 6, dedup 1"
    )
    assert cost_line([again, again], simulated=False) == (
        "cost $0.000000 for 2 products vs naive $0.116534: saved 100.0%: no call paid, "
        "answers from exact_cache 54, photo_dedup 12, zero_call 12, dedup 2"
    )
    paid = done("demo", "lamp")  # a first run: calls were paid, the saving is the levers'
    paid.cost_micro_usd, paid.baseline_micro_usd = 6_032, 53_038
    paid.served_by = {"routed": 20, "zero_call": 6}
    assert summary(paid, simulated=False).splitlines()[-1].endswith("saved 88.6%")
    free_model = done("demo", "board")  # a paid call that happened to cost nothing
    free_model.baseline_micro_usd, free_model.served_by = 1_000, {"routed": 1}
    assert summary(free_model, simulated=False).splitlines()[-1].endswith("saved 100.0%")
