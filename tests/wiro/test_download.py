"""Downloading output images from the stand-in's CDN."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.wiro import DownloadError, WiroClient
from bot.wiro.download import DownloadUnavailable, sniff_image_type
from tests.wiro.helpers import wait_until_terminal
from tests.wiro_standin import WiroStandIn, png_bytes

PNG = png_bytes((10, 20, 30))


async def test_download_an_output(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    run = await wiro_client.run("a/b", {"prompt": "x", "seed": "7"})
    task = await wait_until_terminal(wiro_client, run.taskid)
    [output] = task.outputs

    image = await wiro_client.download(output.url)

    assert image.content_type == "image/png"
    assert image.url == output.url
    assert image.size == output.size
    with Image.open(io.BytesIO(image.content)) as pic:
        assert pic.size == (64, 64)
    assert wiro.cdn_requests_with_credentials == 0
    assert "content=" not in repr(image)


async def test_same_seed_same_image(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    wiro.hold()
    a = await wiro_client.run("a/b", {"prompt": "x", "seed": "7", "samples": 2})
    b = await wiro_client.run("a/b", {"prompt": "y", "seed": "7"})
    wiro.finish(a.taskid)
    wiro.finish(b.taskid)
    ta = await wiro_client.task_detail(task_id=a.taskid)
    tb = await wiro_client.task_detail(task_id=b.taskid)
    first, second = [(await wiro_client.download(o.url)).content for o in ta.outputs]
    assert first != second
    assert (await wiro_client.download(tb.outputs[0].url)).content == first


async def test_expired_output_is_a_download_error(
    wiro: WiroStandIn, wiro_client: WiroClient
) -> None:
    wiro.next_outcome("cdn404")
    run = await wiro_client.run("a/b", {"prompt": "x"})
    task = await wait_until_terminal(wiro_client, run.taskid)
    assert task.succeeded
    with pytest.raises(DownloadError, match="HTTP 404") as caught:
        await wiro_client.download(task.outputs[0].url)
    assert not isinstance(caught.value, DownloadUnavailable)
    assert wiro.calls["cdn"] == 1  # not retried


async def test_5xx_and_drops_are_retried(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    url = wiro.add_file("a.png", PNG, "image/png")
    wiro.fail_next("cdn", "http502")
    wiro.fail_next("cdn", "drop")
    assert (await wiro_client.download(url)).content == PNG
    assert wiro.calls["cdn"] == 3

    wiro.fail_next("cdn", "http500", times=4)
    with pytest.raises(DownloadUnavailable, match="HTTP 500"):
        await wiro_client.download(url)


@pytest.mark.parametrize("chunked", [False, True])
async def test_too_big_is_refused(
    wiro: WiroStandIn, wiro_client: WiroClient, chunked: bool
) -> None:
    big = PNG + b"\0" * 100_000
    url = wiro.add_file("big.png", big, "image/png", chunked=chunked)
    with pytest.raises(DownloadError, match="too big"):
        await wiro_client.download(url, max_bytes=50_000)
    assert wiro.calls["cdn"] == 1
    assert (await wiro_client.download(url, max_bytes=len(big))).size == len(big)


async def test_wrong_content_type(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    url = wiro.add_file("page.html", b"<html>hi</html>", "text/html")
    with pytest.raises(DownloadError, match="not an image"):
        await wiro_client.download(url)
    wiro.fail_next("cdn", "garbage")
    with pytest.raises(DownloadError, match="not an image"):
        await wiro_client.download(wiro.add_file("ok.png", PNG, "image/png"))


async def test_octet_stream_needs_image_bytes(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    good = wiro.add_file("blob", PNG, "application/octet-stream")
    image = await wiro_client.download(good)
    assert image.content_type == "image/png"

    bad = wiro.add_file("blob2", b"MZ\x90\x00 not an image", "application/octet-stream")
    with pytest.raises(DownloadError, match="not an image"):
        await wiro_client.download(bad)


@pytest.mark.parametrize(
    "url",
    ["ftp://cdn.example/0.png", "file:///etc/passwd", "not a url", "", "//cdn.example/0.png"],
)
async def test_only_http_urls(wiro: WiroStandIn, wiro_client: WiroClient, url: str) -> None:
    with pytest.raises(DownloadError, match="http"):
        await wiro_client.download(url)
    assert wiro.calls["cdn"] == 0


def test_sniff_image_type() -> None:
    assert sniff_image_type(PNG) == "image/png"
    assert sniff_image_type(b"\xff\xd8\xff\xe0....") == "image/jpeg"
    assert sniff_image_type(b"GIF89a....") == "image/gif"
    assert sniff_image_type(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image_type(b"<html>") is None
