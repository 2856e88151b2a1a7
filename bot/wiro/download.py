"""Fetching a task's output image from Wiro's CDN.

Output URLs are public and short-lived, so what must be kept is downloaded. No credentials are
sent to the CDN. The body is streamed and abandoned as soon as it exceeds the size cap, and only
images are accepted (`application/octet-stream` only when the bytes are a known image format).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from bot.wiro.exceptions import DownloadError

#: Read the body in pieces of this size.
_CHUNK = 64 * 1024

#: Leading bytes of the image formats Wiro's models produce.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


class DownloadUnavailable(DownloadError):
    """The CDN could not be reached or had trouble (5xx, timeout): worth another try."""

    retryable = True


@dataclass(frozen=True)
class Download:
    """A fetched image."""

    content: bytes = field(repr=False)
    content_type: str
    url: str

    @property
    def size(self) -> int:
        return len(self.content)


def sniff_image_type(data: bytes) -> str | None:
    """The image type told by `data`'s magic number, or None if it is no known image."""
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


async def fetch_image(
    session: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int,
    request_timeout: float,
) -> Download:
    """One attempt at downloading the image at `url`.

    Raises `DownloadError` for an answer that will not change (not http(s), 4xx, too big, not
    an image) and `DownloadUnavailable` (a retryable `DownloadError`) for 5xx, timeouts and
    connection trouble.
    """
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        raise DownloadError("The image address is not a valid URL.") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DownloadError("The image address is not an http(s) URL.")

    try:
        async with session.get(
            parsed, timeout=aiohttp.ClientTimeout(total=request_timeout), allow_redirects=True
        ) as resp:
            if resp.status >= 500:
                raise DownloadUnavailable(
                    f"The image server is having trouble (HTTP {resp.status})."
                )
            if resp.status == 404 or resp.status == 410:
                raise DownloadError(
                    f"The image is gone from Wiro's server (HTTP {resp.status}); "
                    "output links only last a limited time."
                )
            if resp.status >= 400:
                raise DownloadError(f"The image server refused the download (HTTP {resp.status}).")
            if resp.status != 200:
                raise DownloadError(f"The image server answered HTTP {resp.status}, not an image.")

            declared = resp.content_type.lower()
            if not (declared.startswith("image/") or declared == "application/octet-stream"):
                raise DownloadError(f"The file is not an image ({declared}).")
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise DownloadError(
                    f"The image is too big ({_megabytes(resp.content_length)}; "
                    f"the limit is {_megabytes(max_bytes)})."
                )

            chunks: list[bytes] = []
            total = 0
            async for chunk in resp.content.iter_chunked(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise DownloadError(
                        f"The image is too big (over {_megabytes(max_bytes)}, the limit)."
                    )
                chunks.append(chunk)
            content = b"".join(chunks)
    except DownloadError:
        raise
    except aiohttp.InvalidURL:
        raise DownloadError("The image address is not a valid URL.") from None
    except TimeoutError as exc:
        raise DownloadUnavailable("The image download timed out.") from exc
    except aiohttp.ClientError as exc:
        raise DownloadUnavailable(
            f"The image server could not be reached ({type(exc).__name__})."
        ) from exc

    if not content:
        raise DownloadError("The image file is empty.")
    sniffed = sniff_image_type(content)
    if declared == "application/octet-stream":
        if sniffed is None:
            raise DownloadError("The file is not an image (application/octet-stream).")
        declared = sniffed
    return Download(content=content, content_type=declared, url=url)
