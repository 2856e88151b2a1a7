"""A finished task's images are saved to disk. In-process (`ThreadFileWriter`): small ones at
once, large ones on the writer thread, beside the event loop; the running bot's writer puts
them through a helper process (tests/jobs/test_file_writer.py)."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import ClassVar

from PIL import Image

from bot.jobs.file_writer import INLINE_WRITE_BYTES, FileWriter, ProcessFileWriter, ThreadFileWriter
from bot.jobs.job import Job, JobState, Output, Requester
from bot.jobs.outputs import save_outputs
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


class NotedPath(type(Path())):  # type: ignore[misc]
    """A path that notes which thread writes it (its children are NotedPaths too)."""

    writers: ClassVar[list[str]] = []

    def write_bytes(self, data: bytes) -> int:  # type: ignore[override]
        self.writers.append(threading.current_thread().name)
        return super().write_bytes(data)


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


async def save(
    images: dict[str, bytes], folder: Path, writer: FileWriter | None = None
) -> tuple[list[Output], list[str]]:
    """Save a task's images; what was saved, and which threads wrote the files (none seen
    when another process wrote them)."""
    job, task = job_and_task(list(images))
    writer = writer or ThreadFileWriter()
    NotedPath.writers = []
    try:
        saved = await save_outputs(
            Files(images),  # type: ignore[arg-type]
            task,
            NotedPath(folder),
            job,
            max_bytes=10**8,
            writer=writer,
        )
    finally:
        await writer.close()
    return saved, NotedPath.writers


async def test_small_images_are_written_at_once_on_the_event_loop(tmp_path: Path) -> None:
    images = {"https://cdn/a.png": png(16), "https://cdn/b.png": png(16)}
    saved, writers = await save(images, tmp_path)
    assert writers == [threading.current_thread().name] * 2
    assert [contents(o.path) for o in saved] == list(images.values())
    assert [(o.width, o.height) for o in saved] == [(16, 16), (16, 16)]


async def test_large_images_are_written_beside_the_event_loop(tmp_path: Path) -> None:
    big = png(400)
    assert len(big) > INLINE_WRITE_BYTES
    saved, writers = await save({"https://cdn/big.png": big}, tmp_path)
    assert len(writers) == 1 and writers[0].startswith("wirobot-files")
    assert contents(saved[0].path) == big
    assert (saved[0].width, saved[0].height) == (400, 400)


async def test_the_bots_writer_saves_images_through_its_helper_process(tmp_path: Path) -> None:
    images = {"https://cdn/a.png": png(16), "https://cdn/big.png": png(400)}
    writer = ProcessFileWriter()
    saved, writers = await save(images, tmp_path, writer)
    assert writers == []  # no thread of this process wrote them
    assert [contents(o.path) for o in saved] == list(images.values())
    assert [o.name for o in saved] == ["1-model-seed5-1.png", "1-model-seed5-2.png"]
