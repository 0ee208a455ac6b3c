"""Workers own partitions of the stream; state is checkpointed beside the stream sequence.

Membership uses JetStream's key-value store, nothing home-made on the wire:

- every worker renews ``member.<id>`` in the ``poise_members`` bucket; entries expire after
  the bucket's TTL, so a killed worker drops out by itself;
- a worker owns partition ``k`` while it holds the key ``p<k>`` of the ``poise_leases``
  bucket: it takes a free lease with ``create`` (which fails if the key exists: compare and
  set), renews it with ``update`` at the revision it holds, and a lease it stops renewing
  expires with the bucket's TTL;
- each worker aims at ``ceil(partitions / live workers)`` leases: one that joins takes free
  leases, and the others release their surplus (checkpoint first, then delete the lease);
- the state of partition ``k`` is kept in ``poise_checkpoints`` under ``p<k>`` as
  ``{"seq": last stream sequence applied, "state": engine state}``, written with ``update``
  at the revision the owner last read or wrote. A worker that lost its lease without
  noticing (paused, cut off) therefore cannot overwrite its successor's checkpoint: its
  write fails and it stops. This fencing, not timing, keeps two owners from both counting.

A new owner loads the checkpoint, restores the engine, and reads the stream from
``seq + 1`` with a consumer of its own (never relying on redelivery order). Outputs made
between the last checkpoint and a crash are made again after the takeover; the worker's
writes are idempotent (same measurement, tags and timestamp), so storage sees them once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from poise.core.ids import check_id
from poise.jetstream import layout

log = logging.getLogger("poise.worker.partitions")


Publish = Callable[[str, bytes], None]  # core-NATS publish, callable from any thread


class Engine(Protocol):
    """What a partition owner drives (the worker's per-partition state and outputs)."""

    def handle(self, routed: layout.Routed, payload: bytes) -> None: ...

    def on_status(self, site: str, sensor: str, payload: bytes) -> None: ...

    def flush(self) -> None: ...  # make every output so far durable before a checkpoint

    def get_state(self) -> dict[str, Any]: ...

    def set_state(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class OwnerParams:
    partitions: int = layout.PARTITIONS
    renew_every_s: float = 1.5  # well inside the lease TTL of the buckets (6 s by default)
    checkpoint_every_s: float = 2.0
    flush_every_s: float = 0.2  # live outputs leave at least this often (as the MQTT worker's)
    fetch_batch: int = 1000
    fetch_timeout_s: float = 0.2  # an idle partition waits this long for news


@dataclass
class OwnerStats:
    messages: int = 0
    checkpoints: int = 0
    acquired: int = 0
    released: int = 0
    lost: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "checkpoints": self.checkpoints,
            "partitions_acquired": self.acquired,
            "partitions_released": self.released,
            "partitions_lost": self.lost,
            "rejected_by_reason": dict(self.rejected),
        }


class FencedError(RuntimeError):
    """Another worker wrote this partition's checkpoint: this one no longer owns it."""


def _preference(member: str, k: int) -> int:
    # rendezvous hashing: each member prefers a different order of partitions, so members
    # starting together do not all race for partition 0
    return layout.fnv1a_32(f"{member}:{k}".encode())


class _Partition:
    def __init__(self, k: int, engine: Engine, lease_rev: int) -> None:
        self.k = k
        self.engine = engine
        self.lease_rev = lease_rev
        self.ckpt_rev = 0
        self.seq = 0
        self.task: asyncio.Task[None] | None = None
        self.stop = asyncio.Event()


class PartitionOwner:
    def __init__(
        self,
        url: str,
        member: str,
        make_engine: Callable[[int, Publish], Engine],
        *,
        user: str | None = None,
        password: str | None = None,
        params: OwnerParams | None = None,
    ) -> None:
        self.url = url
        self.member = check_id("worker", member)
        self.make_engine = make_engine
        self.p = params or OwnerParams()
        self.stats = OwnerStats()
        self._user, self._password = user, password
        self.owned: dict[int, _Partition] = {}
        self._js: Any = None
        self._kv: dict[str, Any] = {}
        self._publish: Publish = lambda _s, _d: None

    async def run(self, stop: asyncio.Event) -> None:
        import nats

        nc = await nats.connect(
            self.url,
            user=self._user,
            password=self._password,
            name=f"poise-worker-{self.member}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
        )
        try:
            self._js = nc.jetstream()
            loop = asyncio.get_running_loop()

            def publish(subject: str, data: bytes) -> None:
                asyncio.run_coroutine_threadsafe(nc.publish(subject, data), loop)

            self._publish = publish

            async def on_status(msg: Any) -> None:
                parts = msg.subject.split(".")
                if len(parts) != 5:
                    return
                for part in list(self.owned.values()):
                    try:
                        part.engine.on_status(parts[3], parts[4], msg.data)
                    except ValueError as exc:
                        reason = type(exc).__name__
                        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1

            # device status is not partitioned (a sensor knows no patient): every owner
            # hears it and each engine keeps what concerns its own patients
            await nc.subscribe("poise.v1.status.>", cb=on_status)
            for bucket in (layout.KV_LEASES, layout.KV_MEMBERS, layout.KV_CHECKPOINTS):
                self._kv[bucket] = await self._js.key_value(bucket)
            while not stop.is_set():
                await self._rebalance()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.p.renew_every_s)
            for k in list(self.owned):
                await self._release(k)  # a clean stop hands everything over at once
            with contextlib.suppress(Exception):
                await self._kv[layout.KV_MEMBERS].delete(f"member.{self.member}")
        finally:
            for part in self.owned.values():
                part.stop.set()
            await nc.close()

    # --- membership ---
    async def _members(self) -> int:
        members = self._kv[layout.KV_MEMBERS]
        await members.put(f"member.{self.member}", json.dumps({"t": time.time()}).encode())
        try:
            keys = await members.keys()
        except Exception:
            keys = []
        return max(1, len([k for k in keys if k.startswith("member.")]))

    async def _rebalance(self) -> None:
        leases = self._kv[layout.KV_LEASES]
        n_members = await self._members()
        target = math.ceil(self.p.partitions / n_members)
        for k, part in list(self.owned.items()):
            if part.task is not None and part.task.done():
                # the partition's reader ended: fenced off or failed; give it up
                exc = part.task.exception() if not part.task.cancelled() else None
                log.warning("partition %d stopped (%s); giving it up", k, exc)
                self.stats.lost += 1
                del self.owned[k]
                continue
            try:
                part.lease_rev = await leases.update(
                    f"p{k}", self.member.encode(), last=part.lease_rev
                )
            except Exception:
                log.warning("lost the lease of partition %d", k)
                self.stats.lost += 1
                part.stop.set()
                del self.owned[k]
        while len(self.owned) > target:
            await self._release(max(self.owned, key=lambda k: _preference(self.member, k)))
        if len(self.owned) < target:
            order = sorted(range(self.p.partitions), key=lambda k: _preference(self.member, k))
            for k in order:
                if len(self.owned) >= target:
                    break
                if k in self.owned:
                    continue
                rev = await self._try_lease(k)
                if rev is not None:
                    await self._acquire(k, rev)

    async def _try_lease(self, k: int) -> int | None:
        try:
            return int(await self._kv[layout.KV_LEASES].create(f"p{k}", self.member.encode()))
        except Exception:
            return None

    async def _acquire(self, k: int, lease_rev: int) -> None:
        part = _Partition(k, self.make_engine(k, self._publish), lease_rev)
        ckpts = self._kv[layout.KV_CHECKPOINTS]
        try:
            entry = await ckpts.get(f"p{k}")
            doc = json.loads(entry.value)
            part.engine.set_state(doc["state"])
            part.seq = int(doc["seq"])
            part.ckpt_rev = int(entry.revision)
        except Exception:
            part.seq = 0
            part.ckpt_rev = 0
        self.owned[k] = part
        self.stats.acquired += 1
        part.task = asyncio.create_task(self._read(part), name=f"partition-{k}")
        log.info("took partition %d at stream sequence %d", k, part.seq)

    async def _release(self, k: int) -> None:
        part = self.owned.pop(k)
        part.stop.set()
        if part.task is not None:
            with contextlib.suppress(Exception):
                await part.task
        try:
            await self._checkpoint(part)
        except FencedError:
            return
        with contextlib.suppress(Exception):
            await self._kv[layout.KV_LEASES].delete(f"p{k}", last=part.lease_rev)
        self.stats.released += 1
        log.info("released partition %d at stream sequence %d", k, part.seq)

    # --- one partition ---
    async def _checkpoint(self, part: _Partition) -> None:
        await asyncio.to_thread(part.engine.flush)
        ckpts = self._kv[layout.KV_CHECKPOINTS]
        doc = json.dumps(
            {"seq": part.seq, "state": part.engine.get_state(), "member": self.member}
        ).encode()
        try:
            if part.ckpt_rev == 0:
                part.ckpt_rev = await ckpts.create(f"p{part.k}", doc)
            else:
                part.ckpt_rev = await ckpts.update(f"p{part.k}", doc, last=part.ckpt_rev)
        except Exception as exc:
            raise FencedError(f"partition {part.k}: checkpoint written by another worker") from exc
        self.stats.checkpoints += 1

    def _apply(self, part: _Partition, msgs: list[Any]) -> None:
        for m in msgs:
            seq = int(m.metadata.sequence.stream)
            if seq <= part.seq:
                continue  # already applied (the checkpoint is ahead of this copy)
            if part.stop.is_set():
                return  # released or lost meanwhile: the next owner takes it from here
            try:
                routed = layout.parse_subject(m.subject)
                part.engine.handle(routed, m.data)
            except (layout.SubjectError, ValueError) as exc:
                reason = type(exc).__name__
                self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1
            except Exception:
                # one message must not stop a partition (it would stop again at the same
                # message after every takeover): count it and go on
                log.exception("partition %d: failed on %s", part.k, m.subject)
                self.stats.rejected["failed"] = self.stats.rejected.get("failed", 0) + 1
            part.seq = seq
            self.stats.messages += 1

    async def _read(self, part: _Partition) -> None:
        import nats.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=part.seq + 1,
            ack_policy=AckPolicy.ALL,
            max_ack_pending=100_000,
            inactive_threshold=60.0,
        )
        sub = await self._js.pull_subscribe(
            layout.partition_filter(part.k), durable=None, stream=layout.STREAM, config=config
        )
        last_ckpt = last_flush = time.monotonic()
        try:
            while not part.stop.is_set():
                try:
                    msgs = await sub.fetch(self.p.fetch_batch, timeout=self.p.fetch_timeout_s)
                except (TimeoutError, nats.errors.TimeoutError):
                    msgs = []
                if msgs:
                    # the engine's work runs off the event loop, which must stay free to
                    # renew leases on time however heavy a batch is
                    await asyncio.to_thread(self._apply, part, msgs)
                if msgs:
                    await msgs[-1].ack()
                if part.stop.is_set():
                    break  # released (the releaser checkpoints) or lost (the next owner does)
                if time.monotonic() - last_flush >= self.p.flush_every_s:
                    await asyncio.to_thread(part.engine.flush)
                    last_flush = time.monotonic()
                if time.monotonic() - last_ckpt >= self.p.checkpoint_every_s:
                    await self._checkpoint(part)
                    last_ckpt = time.monotonic()
        except FencedError as exc:
            # another worker owns it now and has written its checkpoint: stop quietly, the
            # rebalance gives up the partition
            log.warning("%s; this worker stops reading it", exc)
            part.stop.set()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


def run_forever(owner: PartitionOwner) -> dict[str, Any]:
    import signal

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await owner.run(stop)

    asyncio.run(main())
    return owner.stats.as_dict()
