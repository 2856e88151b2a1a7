"""Downloading a finished task's images to disk (Wiro keeps its URLs only for a while)."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bot.jobs.file_writer import FileWriter
from bot.jobs.job import Job, Output
from bot.wiro.client import WiroClient
from bot.wiro.exceptions import DownloadError
from bot.wiro.types import Task

_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


async def save_outputs(
    client: WiroClient, task: Task, folder: Path, job: Job, *, max_bytes: int, writer: FileWriter
) -> list[Output]:
    """Download every output of `task` into `folder`, named by `output_file_name`; fail if
    none can be had. One flat folder: a folder per job would double the file system calls.

    The files are written by `writer` (see `bot.jobs.file_writer`: the running bot's writes
    go through a helper process, off the event loop) and are on disk when this returns.
    """
    if not task.outputs:
        raise DownloadError("Wiro reported success but listed no images.")
    downloads = await asyncio.gather(
        *(client.download(output.url, max_bytes=max_bytes) for output in task.outputs)
    )
    saved: list[Output] = []
    files: list[tuple[Path, bytes]] = []
    for position, (output, download) in enumerate(zip(task.outputs, downloads, strict=True)):
        width, height = _dimensions(download.content)
        extension = _EXTENSIONS.get(download.content_type, Path(output.name).suffix.lower())
        name = output_file_name(job, position + 1, extension)
        path = folder / name
        files.append((path, download.content))
        saved.append(
            Output(
                position=position,
                name=name,
                content_type=download.content_type,
                size=len(download.content),
                url=output.url,
                path=str(path),
                width=width,
                height=height,
            )
        )
    await writer.write(files)
    return saved


def output_file_name(job: Job, index: int, suffix: str) -> str:
    """`12-portraitplus-seed1234-1.png`: the job, the model, the seed, which image (from 1),
    so a person can tell files apart wherever they end up."""
    model = _UNSAFE.sub("_", job.model.rsplit("/", 1)[-1]) or "model"
    return f"{job.id}-{model}-seed{job.seed}-{index}{suffix or '.png'}"


def _dimensions(content: bytes) -> tuple[int | None, int | None]:
    try:
        with Image.open(io.BytesIO(content)) as image:  # reads the header only
            return image.width, image.height
    except (UnidentifiedImageError, OSError):
        return None, None
