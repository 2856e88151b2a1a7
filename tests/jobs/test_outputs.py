"""A finished task's images are saved to disk: small ones at once, large ones on the writer
thread, beside the event loop."""

from __future__ import annotations

import io
import os
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

from bot.jobs.job import Job, JobState, Output, Requester
from bot.jobs.outputs import INLINE_WRITE_BYTES, save_outputs
from bot.wiro.download import Download
from bot.wiro.types import Task


def png(size: int) -> bytes:
    buffer = io.BytesIO()
    # Noise does not compress: the file is about size * size * 3 bytes.
    Image.frombytes("RGB", (size, size), os.urandom(size * size * 3)).save(buffer, "PNG")
    return buffer.getvalue()


class Files:
    """The CDN: one image per URL."""

    def __init__(self, images: dict[str, bytes]) -> None:
        self.images = images

    async def download(self, url: str, *, max_bytes: int) -> Download:
        return Download(self.images[url], "image/png", url)


class CountingWriter(Executor):
    """A one-thread writer that counts the work given to it."""

    def __init__(self) -> None:
        self.jobs = 0
        self._thread = ThreadPoolExecutor(1)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.jobs += 1
        return self._thread.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._thread.shutdown(wait)


def contents(path: str | None) -> bytes:
    return Path(path or "").read_bytes()


def job_and_task(urls: list[str]) -> tuple[Job, Task]:
    job = Job(1, "owner/model", "a cat", {}, 5, JobState.RUNNING, Requester(1, 2, 3), 0.0)
    outputs = [
        {"name": f"{n}.png", "contenttype": "image/png", "url": u} for n, u in enumerate(urls)
    ]
    task = Task.model_validate(
        {"id": "9", "status": "task_postprocess_end", "pexit": "0", "outputs": outputs}
    )
    return job, task


async def save(images: dict[str, bytes], folder: Path) -> tuple[list[Output], int]:
    """Save a task's images; what was saved, and how many times the writer thread was used."""
    job, task = job_and_task(list(images))
    writer = CountingWriter()
    try:
        saved = await save_outputs(
            Files(images),  # type: ignore[arg-type]
            task,
            folder,
            job,
            max_bytes=10**8,
            writer=writer,
        )
    finally:
        writer.shutdown()
    return saved, writer.jobs


async def test_small_images_are_written_at_once(tmp_path: Path) -> None:
    images = {"https://cdn/a.png": png(16), "https://cdn/b.png": png(16)}
    saved, thread_jobs = await save(images, tmp_path)
    assert thread_jobs == 0
    assert [contents(o.path) for o in saved] == list(images.values())
    assert [(o.width, o.height) for o in saved] == [(16, 16), (16, 16)]


async def test_large_images_are_written_beside_the_event_loop(tmp_path: Path) -> None:
    big = png(400)
    assert len(big) > INLINE_WRITE_BYTES
    saved, thread_jobs = await save({"https://cdn/big.png": big}, tmp_path)
    assert thread_jobs == 1
    assert contents(saved[0].path) == big
    assert (saved[0].width, saved[0].height) == (400, 400)
