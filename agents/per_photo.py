"""Per-photo agents: each photo analysed once per tenant, reused by its perceptual hash.

For each photo of the upload the agent claims the photo's analysis in the photo memory.
Photos analysed before (by any workflow of the tenant) are reused at no cost; photos it
claimed are analysed together in one call, whose answer is split per photo and kept; photos
another workflow is analysing right now are waited for. Claims are all taken before any
waiting, so two workflows that share photos never wait on each other.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from nats.js.object_store import ObjectStore

from agents.asking import Ask, Asked, Asker, session_tags
from agents.photo_memory import ClaimState, PhotoMemory
from agents.prompting import Image, build_messages, photos_schema
from agents.spec import AgentSpec, Inputs, Output
from bus.messages import ChatMessage, Photo, PhotoAnalysis, PhotoRendition, Priority

CACHE_PHOTOS = 256


@dataclass(kw_only=True)
class PhotoWork:
    """A per-photo agent's result: one analysis per photo, and what it cost or saved."""

    asked: Asked = field(default_factory=Asked)
    analyses: list[Output] = field(default_factory=list)
    reused: int = 0
    reused_baseline_micro_usd: int = 0


@dataclass(frozen=True, kw_only=True)
class PhotoJob:
    """Where a per-photo agent runs: tenant, workflow, request id, priority and stores."""

    tenant: str
    workflow_id: str
    request_id: str
    priority: Priority
    memory: PhotoMemory
    objects: ObjectStore


class PhotoAnalyst:
    """Runs per-photo agents against the photo memory and the object store."""

    def __init__(self, asker: Asker, *, wait_s: float = 120.0) -> None:
        self._asker = asker
        self._wait_s = wait_s
        self._images: OrderedDict[str, bytes] = OrderedDict()

    async def analyse(self, spec: AgentSpec, photos: list[Photo], job: PhotoJob) -> PhotoWork:
        """Every photo's analysis, paying only for photos this tenant never had analysed."""
        work = PhotoWork()
        keys = [_key(photo) for photo in photos]
        first: dict[str, Photo] = {}
        for key, photo in zip(keys, photos, strict=True):
            first.setdefault(key, photo)
        claims = await asyncio.gather(
            *(job.memory.claim(job.tenant, spec.name, key, job.workflow_id) for key in first)
        )
        found: dict[str, PhotoAnalysis] = {}
        mine: list[str] = []
        busy: list[str] = []
        for key, claim in zip(first, claims, strict=True):
            if claim.state is ClaimState.DONE and claim.analysis is not None:
                found[key] = claim.analysis
            else:
                (mine if claim.state is ClaimState.MINE else busy).append(key)
        if mine and not await self._batch(spec, mine, first, found, work, job):
            return work
        if busy:
            ours = await self._wait(spec, busy, found, job)
            if ours and not await self._batch(spec, ours, first, found, work, job):
                return work
            mine += ours
        reused = [key for key in keys if key not in mine]
        work.asked.ok, work.asked.reason = True, ""
        work.analyses = [dict(found[key].output) for key in keys]
        work.reused = len(reused)
        work.reused_baseline_micro_usd = sum(found[key].baseline_micro_usd for key in reused)
        return work

    async def _batch(
        self,
        spec: AgentSpec,
        batch: list[str],
        first: dict[str, Photo],
        found: dict[str, PhotoAnalysis],
        work: PhotoWork,
        job: PhotoJob,
    ) -> bool:
        """Analyse the claimed photos in one call; keep each analysis, or release the claims."""
        request_id = f"{job.request_id}-p{len(work.asked.request_ids)}"
        ask = await self._ask(spec, [first[key] for key in batch], job, request_id)
        asked = await self._asker.ask(ask)
        _merge(work.asked, asked)
        if not asked.ok:
            for key in batch:
                await job.memory.release(job.tenant, spec.name, key)
            return False
        share = asked.baseline_micro_usd // len(batch)
        for key, analysis in zip(batch, asked.output["photos"], strict=True):
            kept = PhotoAnalysis(
                output=analysis,
                workflow_id=job.workflow_id,
                request_id=asked.request_ids[-1],
                baseline_micro_usd=share,
            )
            found[key] = kept
            await job.memory.put(job.tenant, spec.name, key, kept)
        return True

    async def _wait(
        self, spec: AgentSpec, busy: list[str], found: dict[str, PhotoAnalysis], job: PhotoJob
    ) -> list[str]:
        """Wait for other workflows' analyses; return the photos left for us to analyse
        (claims that lapsed, or all of them if the others take too long)."""
        waits = [job.memory.wait(job.tenant, spec.name, k, job.workflow_id) for k in busy]
        try:
            async with asyncio.timeout(self._wait_s):
                claims = await asyncio.gather(*waits)
        except TimeoutError:
            return list(busy)
        ours: list[str] = []
        for key, claim in zip(busy, claims, strict=True):
            if claim.state is ClaimState.DONE and claim.analysis is not None:
                found[key] = claim.analysis
            else:
                ours.append(key)
        return ours

    async def _ask(
        self, spec: AgentSpec, photos: list[Photo], job: PhotoJob, request_id: str
    ) -> Ask:
        images = [await self._image(job.objects, photo, spec.image_detail) for photo in photos]
        inputs: Inputs = {}

        def messages(problems: list[str], previous: str) -> list[ChatMessage]:
            return build_messages(spec, inputs, images, fix=problems or None, previous=previous)

        def check(output: Output) -> list[str]:
            items: list[Any] = output.get("photos", [])
            if len(items) != len(images):
                return [f"photos has {len(items)} analyses for {len(images)} photos"]
            return [
                f"photos[{i}]: {problem}"
                for i, item in enumerate(items)
                for validate in spec.validators
                for problem in validate(item, inputs)
            ]

        return Ask(
            spec=spec,
            tenant=job.tenant,
            workflow_id=job.workflow_id,
            request_id=request_id,
            priority=job.priority,
            messages=messages,
            schema=photos_schema(spec, len(images)),
            check=check,
            tags=session_tags(job.workflow_id, spec.name),  # its batches stay on one model
        )

    async def _image(self, objects: ObjectStore, photo: Photo, detail: str) -> Image:
        """The photo's rendition for this detail (bytes cached: agents share photos)."""
        rendition = photo.renditions.get(detail) or next(iter(photo.renditions.values()), None)
        if rendition is None:  # an upload made without renditions: send the original
            rendition = PhotoRendition(
                object_name=photo.object_name,
                content_type=photo.content_type,
                width=photo.width,
                height=photo.height,
            )
        data = self._images.get(rendition.object_name)
        if data is None:
            data = (await objects.get(rendition.object_name)).data or b""
            self._images[rendition.object_name] = data
            if len(self._images) > CACHE_PHOTOS:
                self._images.popitem(last=False)
        else:
            self._images.move_to_end(rendition.object_name)
        return rendition, data


def _key(photo: Photo) -> str:
    """The photo's memory key: its perceptual hash, else a digest of its object name."""
    if photo.phash:
        return photo.phash
    return "obj-" + hashlib.sha256(photo.object_name.encode()).hexdigest()[:32]


def _merge(total: Asked, part: Asked) -> None:
    total.request_ids += part.request_ids
    total.cost_micro_usd += part.cost_micro_usd
    total.baseline_micro_usd += part.baseline_micro_usd
    total.paid_calls += part.paid_calls
    total.result = part.result
    total.ok, total.reason = part.ok, part.reason
