"""Fitting a job's images into one Discord message under the channel's upload limit.

Tiers, tried in order until the files fit: the originals; each image re-encoded as WEBP;
smaller and lower-quality WEBPs; and finally no files at all, only links to Wiro's copies.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from pathlib import Path

import discord
from PIL import Image, UnidentifiedImageError

from bot.jobs.job import Output

#: Room left for the JSON payload and multipart overhead of the message (at most a tenth).
_HEADROOM = 64 * 1024
#: (scale, quality) of the re-encoding tiers.
_REENCODE = ((1.0, 90), (1.0, 70), (0.75, 70), (0.5, 60))
#: Number of tiers: originals, the re-encodings, links only.
TIERS = 1 + len(_REENCODE) + 1


@dataclass
class Upload:
    """What one message carries: files, and links to images that are not attached."""

    files: list[discord.File] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    tier: int = 0

    @property
    def size(self) -> int:
        return sum(_length(f) for f in self.files)


async def fit(outputs: list[Output], limit: int, *, spoiler: bool, start: int = 0) -> Upload:
    """The first tier, from `start`, whose files fit in `limit` bytes."""
    budget = max(limit - min(_HEADROOM, limit // 10), 0)
    for tier in range(start, TIERS):
        upload = await asyncio.to_thread(_build, outputs, tier, spoiler)
        if upload.size <= budget:
            return upload
        for file in upload.files:
            file.close()
    return _links_only(outputs)


def _build(outputs: list[Output], tier: int, spoiler: bool) -> Upload:
    if tier >= TIERS - 1:
        return _links_only(outputs)
    upload = Upload(tier=tier)
    for index, output in enumerate(outputs, 1):
        data = _read(output)
        if data is None:
            upload.links.append(output.url)
            continue
        name = Path(output.name).name or f"image-{index}.png"
        if tier > 0:
            scale, quality = _REENCODE[tier - 1]
            encoded = _reencode(data, scale, quality)
            if encoded is None:
                upload.links.append(output.url)
                continue
            data, name = encoded, f"{Path(name).stem}.webp"
        upload.files.append(discord.File(io.BytesIO(data), filename=name, spoiler=spoiler))
    return upload


def _links_only(outputs: list[Output]) -> Upload:
    return Upload(links=[o.url for o in outputs], tier=TIERS - 1)


def _read(output: Output) -> bytes | None:
    if not output.path:
        return None
    try:
        return Path(output.path).read_bytes()
    except OSError:
        return None


def _reencode(data: bytes, scale: float, quality: int) -> bytes | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            picture = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            if scale < 1.0:
                size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
                picture = picture.resize(size, Image.Resampling.LANCZOS)
            out = io.BytesIO()
            picture.save(out, format="WEBP", quality=quality, method=4)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _length(file: discord.File) -> int:
    fp = file.fp
    if isinstance(fp, io.BytesIO):
        return len(fp.getbuffer())
    return 0
