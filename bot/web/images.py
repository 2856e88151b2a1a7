"""Image files for the gallery: the bot's own copies, and WebP thumbnails made once and kept.

Paths come from the database, never from the URL, and must lie inside the outputs folder:
a row pointing elsewhere (or a file that is gone) serves nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bot.jobs.job import Output

THUMB_WIDTH = 384
#: Content types served as images; anything else is not served.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})


class Images:
    def __init__(self, outputs_dir: Path) -> None:
        self._root = outputs_dir.resolve()
        self._thumbs = self._root / "thumbs"
        self._making: dict[Path, asyncio.Future[Path | None]] = {}

    def original(self, output: Output) -> Path | None:
        """The output's file, if it is an image inside the outputs folder and exists."""
        if output.path is None or output.content_type not in IMAGE_TYPES:
            return None
        path = Path(output.path)
        if not path.is_absolute():
            path = Path.cwd() / path
        path = path.resolve()
        if not path.is_relative_to(self._root) or path.parent == self._thumbs:
            return None
        return path if path.is_file() else None

    async def thumbnail(self, output: Output) -> Path | None:
        """A WebP thumbnail of the output, made on first request and kept beside it."""
        original = self.original(output)
        if original is None:
            return None
        thumb = self._thumbs / f"{original.stem}-w{THUMB_WIDTH}.webp"
        if thumb.is_file():
            return thumb
        pending = self._making.get(thumb)
        if pending is not None:  # another request is making it: share the result
            return await asyncio.shield(pending)
        future: asyncio.Future[Path | None] = asyncio.get_running_loop().create_future()
        self._making[thumb] = future
        try:
            made = await asyncio.get_running_loop().run_in_executor(
                None, _make_thumbnail, original, thumb
            )
            future.set_result(made)
            return made
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._making[thumb]


def _make_thumbnail(original: Path, thumb: Path) -> Path | None:
    try:
        with Image.open(original) as opened:
            opened.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 4))
            image: Image.Image = opened
            if image.mode not in ("RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            thumb.parent.mkdir(parents=True, exist_ok=True)
            partial = thumb.with_suffix(".part")
            image.save(partial, "WEBP", quality=80, method=4)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError):
        return None  # not an image Pillow can read: no thumbnail (the page shows none)
    partial.replace(thumb)  # whole or absent: a crash mid-write leaves no broken thumbnail
    return thumb
