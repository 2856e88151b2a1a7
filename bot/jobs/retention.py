"""Retention: how long downloaded images are kept.

Downloaded images are removed from disk once their job is older than `keep_days`, and the
oldest go while all of them take more than `max_bytes` (each 0: no limit). A job loses all
its images at once, and is marked expired before its files go, so history never shows a
half-removed job or a broken image; a crash in between leaves files behind, never a gap.

(Interaction tokens are dropped by the Discord layer, on Discord's clock: see
`StatusUpdater`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.store import Store, StoredFile

log = logging.getLogger(__name__)

_BATCH = 500


@dataclass(frozen=True, slots=True)
class Pruned:
    files: int = 0
    bytes: int = 0


class Retention:
    def __init__(
        self,
        store: Store,
        outputs_dir: Path,
        *,
        keep_days: float = 0,
        max_bytes: int = 0,
        interval: float = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.outputs_dir = outputs_dir.resolve()
        self.keep_seconds = keep_days * 86400
        self.max_bytes = max_bytes
        self.interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        #: Set after each background round.
        self.round_done = asyncio.Event()

    def start(self) -> None:
        """Prune now, then every `interval` seconds, in the background."""
        self._task = asyncio.create_task(self._loop(), name="wirobot-retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                pruned = await self.prune()
                if pruned.files:
                    log.info(
                        "retention removed %d image(s), %.1f MB",
                        pruned.files,
                        pruned.bytes / 2**20,
                    )
            except Exception:
                # Retention must never stop the bot; the next round tries again.
                log.exception("retention failed; trying again in %.0f s", self.interval)
            self.round_done.set()
            await asyncio.sleep(self.interval)

    async def prune(self) -> Pruned:
        """One round: remove the images past the age or size limit."""
        if not self.keep_seconds and not self.max_bytes:
            return Pruned()
        now = self._clock()
        cutoff = now - self.keep_seconds if self.keep_seconds else None
        over = await self.store.jobs.bytes_on_disk() - self.max_bytes if self.max_bytes else 0
        files = removed = 0
        job_going: int | None = None  # a job being removed goes whole, across batches
        while True:
            batch = await self.store.jobs.oldest_files(_BATCH)
            chosen: list[StoredFile] = []
            for stored in batch:
                too_old = cutoff is not None and stored.created_at < cutoff
                if stored.job_id != job_going and not too_old and over <= 0:
                    break
                job_going = stored.job_id
                over -= stored.size
                chosen.append(stored)
            if not chosen:
                break
            await self.store.jobs.expire_files(chosen, at=now)
            await asyncio.to_thread(self._delete, chosen)
            files += len(chosen)
            removed += sum(f.size for f in chosen)
            if len(chosen) < len(batch):
                break
        return Pruned(files=files, bytes=removed)

    def _delete(self, files: list[StoredFile]) -> None:
        for stored in files:
            path = Path(stored.path).resolve()
            if not path.is_relative_to(self.outputs_dir):
                # Not in the outputs folder (it was moved since): not ours to delete.
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
