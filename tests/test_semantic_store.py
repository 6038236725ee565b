"""The semantic cache on a real redis-server, with the real embedding model (loaded once)."""

from __future__ import annotations

import gc
import tracemalloc
import uuid
from collections.abc import Iterator, Sequence

import msgspec
import pytest
import redis.asyncio as aioredis

from bus.messages import CachePolicy, ChatMessage, Lever, LlmRequest, LlmResult, Status
from bus.settings import Settings
from router.semantic import SemanticCache, build_semantic_cache, keys, records
from router.semantic.embedder import OnnxMiniLmEmbedder
from router.semantic.protocol import Vectors

SHIPPING = "How do I change my shipping address?"
SHIPPING_PARAPHRASE = "How can I update my shipping address?"  # cosine 0.91
CANCEL = "How do I cancel order 113542617735902?"
CANCEL_PARAPHRASE = "how can i cancel my order 113542617735902"  # cosine 0.98
CANCEL_TRAP = "How do I cancel order 732201349959?"  # cosine 0.93 to CANCEL, another order


class FakeClock:
    """Wall-clock seconds that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        """The current fake time."""
        return self.now


@pytest.fixture(scope="module")
def embedder() -> Iterator[OnnxMiniLmEmbedder]:
    """The packaged all-MiniLM-L6-v2, loaded once for the module."""
    yield OnnxMiniLmEmbedder()


def make_cache(
    redis: aioredis.Redis,
    embedder: OnnxMiniLmEmbedder,
    clock: FakeClock | None = None,
    **semantic: object,
) -> SemanticCache:
    """A semantic cache with the shipped Settings (optionally overridden)."""
    settings = Settings(semantic=Settings().semantic.model_copy(update=semantic))
    cache = build_semantic_cache(settings, redis, embedder=embedder, clock=clock or FakeClock())
    assert cache is not None
    return cache


async def learned(cache: SemanticCache, *tenants: str, task: str = "seller_chat") -> None:
    """Give the tenants' calibrators enough right observations (as another replica's misses
    would) that any score passes: the tests below then check everything else."""
    for tenant in tenants or ("t1",):
        for n in range(300):  # at both ends of the scores: every lookup is between them
            await cache.observe(tenant, task, f"seen-{n}", (-1.0, 1.0)[n % 2], True, "test")
    await cache.sync()


def ask(text: str, *, tenant: str = "t1", task: str = "seller_chat") -> LlmRequest:
    """A request asking text."""
    return LlmRequest(
        id=uuid.uuid4().hex,
        tenant=tenant,
        agent="chat",
        task_type=task,
        messages=[
            ChatMessage(role="system", content="You answer the seller's questions."),
            ChatMessage(role="user", content=text),
        ],
    )


def paid(request: LlmRequest, content: str) -> LlmResult:
    """A paid answer of request."""
    return LlmResult(
        request_id=request.id,
        tenant=request.tenant,
        agent=request.agent,
        status=Status.OK,
        content=content,
        model="gpt-4o-mini",
        lever=Lever.ROUTED,
        cost_micro_usd=120,
        baseline_micro_usd=2000,
    )


async def test_paraphrase_hits_readdressed_at_no_cost(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """A paraphrase gets the cached answer as its own result, lever SEMANTIC_CACHE, cost 0."""
    cache = make_cache(redis_client, embedder)
    await learned(cache)
    first = ask(SHIPPING)
    await cache.put(first, paid(first, "Settings > Addresses."))
    await cache.put(other := ask("How do I reset my password?"), paid(other, "Use the link."))
    second = ask(SHIPPING_PARAPHRASE, tenant="t1")
    hit = await cache.get(second)
    assert hit is not None
    assert (hit.request_id, hit.tenant, hit.agent) == (second.id, "t1", "chat")
    assert hit.content == "Settings > Addresses." and hit.lever is Lever.SEMANTIC_CACHE
    assert hit.cost_micro_usd == 0 and hit.baseline_micro_usd == 2000
    assert first.id in hit.reason
    assert await cache.get(ask("Can I sell alcohol on Etsy?")) is None
    assert await cache.get_near_duplicate(second) is None  # 0.91 is no near-duplicate


async def test_entity_trap_misses(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """Another order id is a miss although the texts are 0.93 similar; the same id hits."""
    cache = make_cache(redis_client, embedder)
    await learned(cache)
    first = ask(CANCEL)
    await cache.put(first, paid(first, "Order 113542617735902 is cancelled."))
    vectors = embedder.embed([CANCEL, CANCEL_TRAP])
    assert float(vectors[0] @ vectors[1]) > Settings().semantic.thresholds["seller_chat"]
    assert await cache.get(ask(CANCEL_TRAP)) is None
    assert await cache.get_near_duplicate(ask(CANCEL_TRAP)) is None
    hit = await cache.get(ask(CANCEL_PARAPHRASE))
    assert hit is not None and "113542617735902" in hit.content


async def test_tenants_are_isolated(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """Another tenant never gets the entry, even for the identical question."""
    cache = make_cache(redis_client, embedder)
    await learned(cache, "t1", "t2")
    first = ask(SHIPPING, tenant="t1")
    await cache.put(first, paid(first, "t1's answer"))
    assert await cache.get(ask(SHIPPING, tenant="t2")) is None
    assert await cache.get_near_duplicate(ask(SHIPPING, tenant="t2")) is None
    hit = await cache.get(ask(SHIPPING, tenant="t1"))
    assert hit is not None and hit.content == "t1's answer"


async def test_unsafe_task_type_is_never_served_nor_stored(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """A task type that is neither safe nor near-duplicate-allowed leaves no trace."""
    cache = make_cache(redis_client, embedder)
    title = "Write a title for a teal stoneware mug."
    first = ask(title, task="text_generation")
    await cache.put(first, paid(first, "Teal Stoneware Mug"))
    assert await redis_client.keys(f"{keys.PREFIX}*") == []
    assert await cache.get(ask(title, task="text_generation")) is None
    assert await cache.get_near_duplicate(ask(title, task="text_generation")) is None


async def test_only_ok_paid_answers_are_stored_and_policy_is_obeyed(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """Errors and copies are not stored; BYPASS neither reads nor writes; REFRESH only writes."""
    cache = make_cache(redis_client, embedder)
    await learned(cache)
    first = ask(SHIPPING)
    failed = LlmResult(request_id=first.id, tenant="t1", agent="chat", status=Status.ERROR)
    copied = paid(first, "copy")
    copied.lever = Lever.EXACT_CACHE
    bypass = ask(SHIPPING)
    bypass.cache_policy = CachePolicy.BYPASS
    for request, result in ((first, failed), (first, copied), (bypass, paid(bypass, "x"))):
        await cache.put(request, result)
    assert await cache.get(ask(SHIPPING)) is None
    await cache.put(first, paid(first, "kept"))
    refresh = ask(SHIPPING)
    refresh.cache_policy = CachePolicy.REFRESH
    assert await cache.get(refresh) is None
    assert await cache.get_near_duplicate(refresh) is None
    assert await cache.get_near_duplicate(ask(SHIPPING)) is not None
    bypass.id = uuid.uuid4().hex
    assert await cache.get(bypass) is None


async def test_near_duplicate_window_expires(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """A near-identical request within 5 minutes takes the answer (DEDUP); after, it does not."""
    clock = FakeClock()
    cache = make_cache(redis_client, embedder, clock)
    first = ask(CANCEL, task="customer_support")  # near-duplicates allowed, not semantic-safe
    await cache.put(first, paid(first, "Cancelled."))
    again = ask(CANCEL + " ", task="customer_support")
    clock.now += 299
    hit = await cache.get_near_duplicate(again)
    assert hit is not None and hit.lever is Lever.DEDUP and hit.request_id == again.id
    assert await cache.get(again) is None  # customer_support is not safe for the semantic cache
    assert await cache.get_near_duplicate(ask(CANCEL_TRAP, task="customer_support")) is None
    clock.now += 2
    assert await cache.get_near_duplicate(again) is None


async def test_replicas_share_entries_through_redis(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """An answer stored by one replica serves a paraphrase on another; a new one rebuilds."""
    one, two = make_cache(redis_client, embedder), make_cache(redis_client, embedder)
    await two.start()
    await learned(one)  # observations, too, reach the other replica through Redis
    first = ask(CANCEL)
    await one.put(first, paid(first, "from replica one"))
    hit = await two.get(ask(CANCEL_PARAPHRASE))
    assert hit is not None and hit.content == "from replica one"
    three = make_cache(redis_client, embedder)
    await three.start()
    assert len(three.index) == 1


async def test_bound_evicts_oldest_and_large_partitions_use_hnsw(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """A tenant keeps max_entries entries in Redis; a big partition is searched by HNSW."""
    clock = FakeClock()
    cache = make_cache(redis_client, embedder, clock, max_entries=5, exact_below=4)
    await learned(cache)
    questions = [
        SHIPPING,
        "How do I reset my password?",
        "When do I get paid for my sales?",
        "How do I print a shipping label?",
        "Can I offer free returns?",
        "How do I close my shop?",
    ]
    requests = [ask(q) for q in questions]
    for question, request in zip(questions, requests, strict=True):
        clock.now += 1
        await cache.put(request, paid(request, f"answer to {question}"))
    assert await redis_client.zcard(keys.tenant_index("t1")) == 5
    assert await cache.get(ask(SHIPPING_PARAPHRASE)) is None  # the oldest was evicted
    assert ("t1", requests[0].id) not in cache.index
    hit = await cache.get(ask("how do i reset my password"))
    assert hit is not None and hit.content == "answer to How do I reset my password?"
    partition = cache.index.meta("t1", requests[1].id)
    assert partition is not None
    held = cache.index.partition("t1", partition.partition)
    assert held is not None and held.uses_hnsw


async def test_a_task_types_quota_evicts_its_oldest_and_entries_expire_after_their_ttl(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """A task type over its quota loses its own oldest entries, not another type's; an entry
    past its task type's TTL is neither served nor kept in Redis beyond it."""
    clock = FakeClock()
    cache = make_cache(
        redis_client, embedder, clock, quotas={"seller_chat": 2}, ttl_s={"seller_chat": 60}
    )
    await learned(cache)
    other = ask("Which category fits a leather wallet?", task="category_classification")
    await cache.put(other, paid(other, "Accessories > Wallets"))
    questions = [SHIPPING, "How do I reset my password?", "How do I print a shipping label?"]
    requests = [ask(q) for q in questions]
    for question, request in zip(questions, requests, strict=True):
        clock.now += 1
        await cache.put(request, paid(request, f"answer to {question}"))
    assert await redis_client.zcard(keys.task_index("t1", "seller_chat")) == 2
    assert await redis_client.zcard(keys.tenant_index("t1")) == 3
    assert not await redis_client.exists(keys.entry("t1", requests[0].id))  # its oldest
    assert await redis_client.exists(keys.entry("t1", other.id))  # another type's: kept
    assert await cache.get(ask(SHIPPING_PARAPHRASE)) is None
    window_ms = Settings().semantic.near_duplicate_window_s * 1000  # kept for near-duplicates
    assert 0 < await redis_client.pttl(keys.entry("t1", requests[2].id)) <= window_ms
    label = ask("how can I print a shipping label")
    assert await cache.get(label) is not None
    clock.now += 60
    assert await cache.get(ask("how can I print a shipping label")) is None  # expired


async def test_young_cache_serves_nothing_until_misses_teach_it(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """No observation, no hit; each miss answered by a paid call is an observation, shared
    with other replicas, and once they bound the error a paraphrase is served."""
    cache, other = make_cache(redis_client, embedder), make_cache(redis_client, embedder)
    first = ask(SHIPPING)
    await cache.put(first, paid(first, "Settings > Addresses."))
    assert await cache.get(ask(SHIPPING_PARAPHRASE)) is None  # young: nothing is bounded yet
    served = []
    for _ in range(250):  # paraphrases whose paid answers agree with the entry's: right
        again = ask(SHIPPING_PARAPHRASE)
        hit = await cache.get(again)
        if hit is None:
            assert await cache.learn(again, paid(again, "Settings > Addresses."))
        else:
            served.append(hit)
    assert served and all(h.content == "Settings > Addresses." for h in served)
    await other.start()
    calibrator = other.calibrator("t1", "seller_chat")
    assert calibrator is not None and len(calibrator) == 250 - len(served)
    assert "learned threshold" in served[0].reason


async def test_a_wrong_entry_is_vetoed_at_its_score(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """A served hit that a validator finds wrong stops that entry serving at that score."""
    cache = make_cache(redis_client, embedder)
    await learned(cache)
    first = ask(SHIPPING)
    await cache.put(first, paid(first, "Settings > Addresses."))
    served = ask(SHIPPING_PARAPHRASE)
    assert await cache.get(served) is not None
    assert not await cache.verify(served.id, False, "validator", tenant="t2")  # not t2's hit
    assert await cache.verify(served.id, False, "validator", tenant="t1")
    assert not await cache.verify(served.id, False, "validator")  # once per request
    await cache.sync()
    assert await cache.get(ask(SHIPPING_PARAPHRASE)) is None


async def test_opposite_intents_and_other_names_never_share_an_answer(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """Increase is not decrease, nor one lower-case brand another, however similar."""
    cache = make_cache(redis_client, embedder)
    await learned(cache)
    for question in ("How do I increase my spending limit?", "my anker charger is broken"):
        first = ask(question)
        await cache.put(first, paid(first, f"answer to {question}"))
    assert await cache.get(ask("How do I decrease my spending limit?")) is None
    assert await cache.get(ask("my belkin charger is broken")) is None
    hit = await cache.get(ask("how can I raise my spending limit"))
    assert hit is not None and hit.content == "answer to How do I increase my spending limit?"


async def test_near_duplicate_of_a_real_paraphrase(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """Near-duplicate dedup takes a reworded request (not only added spaces), same entities."""
    cache = make_cache(redis_client, embedder)
    first = ask(CANCEL, task="customer_support")
    await cache.put(first, paid(first, "Cancelled."))
    vectors = embedder.embed([CANCEL, CANCEL_PARAPHRASE])
    assert float(vectors[0] @ vectors[1]) >= Settings().semantic.near_duplicate_threshold
    hit = await cache.get_near_duplicate(ask(CANCEL_PARAPHRASE, task="customer_support"))
    assert hit is not None and hit.lever is Lever.DEDUP
    assert await cache.get_near_duplicate(ask(CANCEL_TRAP, task="customer_support")) is None


async def test_a_minimal_pair_is_never_served_nor_learned_from(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """A question alike but for a word that changes it (5 km / 5 miles, to / from) gets no
    hit, not even from a cache that serves any score, nor a near-duplicate one; it teaches
    the error bound nothing; a rewording of the stored question is still served."""
    cache = make_cache(redis_client, embedder, near_duplicate_task_types=["seller_chat"])
    await learned(cache, "t7")
    before = len(cache.calibrator("t7", "seller_chat") or ())
    for text in ("How long does shipping take for a 5 km box?", "Do you ship to Canada?"):
        first = ask(text, tenant="t7")
        await cache.put(first, paid(first, f"answer to {text}"))
    for text in ("How long does shipping take for a 5 miles box?", "Do you ship from Canada?"):
        trap = ask(text, tenant="t7")
        assert await cache.get(trap) is None
        assert await cache.get_near_duplicate(trap) is None
        assert await cache.candidates(trap) == []
        assert not await cache.learn(trap, paid(trap, "another answer"))
    assert len(cache.calibrator("t7", "seller_chat") or ()) == before
    hit = await cache.get(ask("How long does shipping take for a 5 km parcel?", tenant="t7"))
    assert hit is not None and hit.content.endswith("5 km box?")


async def test_calibrators_of_many_tenants_are_bounded(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """A sender naming a new tenant per request must not grow a replica's calibrators without
    end: past the bound the least recently used is forgotten (stricter, never looser)."""
    cache = make_cache(redis_client, embedder, max_calibrators=3)
    flood = [f"flood{uuid.uuid4().hex[:8]}" for _ in range(10)]
    for tenant in flood:
        await cache.observe(tenant, "seller_chat", "e1", 0.5, True, "test")
    await cache.sync()
    held = [t for t in flood if cache.calibrator(t, "seller_chat") is not None]
    assert held == flood[-3:]


class CountingEmbedder:
    """The real embedder, counting the texts it embeds."""

    def __init__(self, inner: OnnxMiniLmEmbedder) -> None:
        self.inner = inner
        self.texts: list[str] = []
        self.counted = []
        self.name, self.dim, self.max_tokens = inner.name, inner.dim, inner.max_tokens

    counted: list[str]

    def token_count(self, text: str) -> int:
        """The inner embedder's count, counted."""
        self.counted.append(text)
        return self.inner.token_count(text)

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed with the inner embedder, counting."""
        self.texts += texts
        return self.inner.embed(texts)


async def test_a_question_is_embedded_only_when_a_lookup_needs_it(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """Most partitions are never searched again (one product's questions): a lookup with
    nothing stored in its partition, and the store of an answer no lookup embedded, embed
    nothing; the first lookup that can use a stored question embeds it."""
    counting = CountingEmbedder(embedder)
    settings = Settings()
    cache = build_semantic_cache(settings, redis_client, embedder=counting, clock=FakeClock())
    assert cache is not None
    await learned(cache)
    first = ask(SHIPPING)
    assert await cache.get(first) is None
    await cache.put(first, paid(first, "Settings > Addresses."))
    elsewhere = ask("Where is my parcel 4411?")  # another partition (its entities)
    assert await cache.get(elsewhere) is None
    await cache.put(elsewhere, paid(elsewhere, "On its way."))
    assert counting.texts == []

    second = ask(SHIPPING_PARAPHRASE)
    hit = await cache.get(second)
    assert hit is not None and hit.content == "Settings > Addresses."
    assert sorted(counting.texts) == sorted([SHIPPING, SHIPPING_PARAPHRASE])

    other = CountingEmbedder(embedder)  # another replica learns the entry from the log
    replica = build_semantic_cache(settings, redis_client, embedder=other, clock=FakeClock())
    assert replica is not None
    await learned(replica)
    again = await replica.get(ask(SHIPPING_PARAPHRASE))
    assert again is not None and again.content == "Settings > Addresses."
    assert sorted(other.texts) == sorted([SHIPPING, SHIPPING_PARAPHRASE])


async def test_a_requests_view_is_worked_out_once(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """Its semantic lookup, near-duplicate lookup and store share one view (entities, token
    count); a changed copy of the request gets its own."""
    counting = CountingEmbedder(embedder)
    cache = build_semantic_cache(Settings(), redis_client, embedder=counting, clock=FakeClock())
    assert cache is not None
    request = ask(SHIPPING, task="market_data")  # semantic and near-duplicate task type
    assert await cache.get(request) is None
    assert await cache.get_near_duplicate(request) is None
    await cache.put(request, paid(request, "Settings > Addresses."))
    assert counting.counted == [SHIPPING]
    await cache.get(msgspec.structs.replace(request, temperature=0.5))
    assert counting.counted == [SHIPPING, SHIPPING]


async def test_a_record_without_a_vector_is_skipped_by_replicas_that_need_one(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """A replica of the version before pending entries reads every log record of
    RECORD_VERSION 1 as carrying a vector, and indexes an empty one (every later lookup in
    its partition then fails in numpy): a record stored with its question alone has a
    version of its own, which such a replica skips, and which this one still learns."""
    cache = make_cache(redis_client, embedder)
    await learned(cache)
    first = ask(SHIPPING)
    await cache.put(first, paid(first, "Settings > Addresses."))  # no lookup embedded it
    log_records = await redis_client.xrange(keys.LOG)
    assert log_records
    for _, fields in log_records:
        raw = (fields or {})[b"e"]
        assert isinstance(raw, bytes)
        record = msgspec.msgpack.decode(raw, type=records.LogRecord)
        if record.v == 1:  # what a replica of version 1 indexes as it is
            assert len(record.vector) == embedder.dim * 4
        else:
            assert record.question == SHIPPING and not record.vector
    replica = make_cache(redis_client, embedder)
    await learned(replica)
    hit = await replica.get(ask(SHIPPING_PARAPHRASE))
    assert hit is not None and hit.content == "Settings > Addresses."


async def test_a_kept_view_does_not_keep_its_request(
    redis_client: aioredis.Redis, embedder: OnnxMiniLmEmbedder
) -> None:
    """The views kept (VIEWS of them) hold no request: a request may be max_request_bytes
    (4 MiB) of earlier turns, and VIEWS of those would stay in memory once answered."""
    cache = make_cache(redis_client, embedder)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for n in range(8):
            request = ask(SHIPPING)
            turns = [ChatMessage(role="user", content=f"{n} " + "earlier turn " * 40_000)]
            request.messages[1:1] = [*turns, ChatMessage(role="assistant", content="Noted.")]
            assert await cache.get(request) is None  # 0.5 MB of history, nothing stored
            del request, turns
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1_000_000  # 8 requests of 0.5 MB each were kept before
