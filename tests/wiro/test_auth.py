"""Signing, nonces and credentials."""

from __future__ import annotations

import asyncio
import threading

import aiohttp

from bot.wiro import Credentials, NonceSource, WiroClient, sign
from bot.wiro.auth import sign as sign_direct
from tests.wiro_standin import WiroStandIn

# echo -n "wiro-secret-XYZ1734513807123" | openssl dgst -sha256 -hmac "wiro-key-abc"
VECTOR = "659f4e78e439f291ad4742c57f5bd91abc38f249f6dcbea9cee27afa94b28315"


def test_sign_matches_openssl_vector() -> None:
    assert sign("wiro-key-abc", "wiro-secret-XYZ", "1734513807123") == VECTOR
    assert sign_direct is sign


def test_nonces_strictly_increase_when_the_clock_stands_still_or_goes_back() -> None:
    times = iter([1000.0, 1000.0, 1000.0, 999.0, 1000.5])
    source = NonceSource(clock=lambda: next(times))
    assert [source.next() for _ in range(5)] == [
        "1000000",
        "1000001",
        "1000002",
        "1000003",
        "1000500",
    ]


def test_nonces_unique_across_threads() -> None:
    source = NonceSource()
    seen: list[list[int]] = []

    def work() -> None:
        mine = [int(source.next()) for _ in range(500)]
        seen.append(mine)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [n for mine in seen for n in mine]
    assert len(set(everything)) == 8 * 500
    for mine in seen:  # each thread saw them increase
        assert mine == sorted(mine)


def test_signature_headers() -> None:
    creds = Credentials("wiro-key-abc", "wiro-secret-XYZ")
    first, second = creds.headers(), creds.headers()
    assert set(first) == {"x-api-key", "x-nonce", "x-signature"}
    assert first["x-api-key"] == "wiro-key-abc"
    assert first["x-signature"] == sign("wiro-key-abc", "wiro-secret-XYZ", first["x-nonce"])
    assert int(second["x-nonce"]) > int(first["x-nonce"])
    assert creds.signs


def test_key_only_headers() -> None:
    for secret in (None, ""):
        creds = Credentials("just-a-key", secret)
        assert creds.headers() == {"x-api-key": "just-a-key"}
        assert not creds.signs


def test_repr_and_redact_hide_credentials() -> None:
    creds = Credentials("KEY-sekrit-1", "SECRET-sekrit-2")
    assert "sekrit" not in repr(creds)
    assert "sekrit" not in str(creds)
    assert creds.redact("key KEY-sekrit-1 and SECRET-sekrit-2") == "key *** and ***"


async def test_200_parallel_requests_all_authenticate(
    wiro: WiroStandIn, wiro_client: WiroClient
) -> None:
    result = await wiro_client.run("a/b", {"prompt": "x"})
    before = len(wiro.nonces)
    tasks = await asyncio.gather(
        *(wiro_client.task_detail(task_id=result.taskid) for _ in range(200))
    )
    assert all(t.id == result.taskid for t in tasks)
    assert not wiro.auth_failures
    nonces = wiro.nonces[before:]
    assert len(nonces) == 200
    assert len(set(nonces)) == 200
    assert min(nonces) > wiro.nonces[before - 1]


async def test_key_only_mode_against_key_only_project() -> None:
    async with WiroStandIn(api_secret=None) as server:
        async with aiohttp.ClientSession() as session:
            client = WiroClient(session, Credentials(server.api_key), base_url=server.base_url)
            result = await client.run("a/b", {"prompt": "x"})
        assert result.taskid in server.tasks
        assert server.nonces == []


def test_processes_on_one_key_with_their_own_stripes_never_send_the_same_nonce() -> None:
    # Three processes whose clocks read the same millisecond at every request: plain
    # millisecond nonces would all be equal; striped, none repeats and each still increases.
    stripes = 3
    sources = [
        NonceSource(clock=lambda: 1_734_513_807.123, stripe=n, stripes=stripes)
        for n in range(stripes)
    ]
    sent = [[int(source.next()) for _ in range(200)] for source in sources]
    everything = [nonce for mine in sent for nonce in mine]
    assert len(set(everything)) == len(everything)
    for n, mine in enumerate(sent):
        assert mine == sorted(set(mine))
        assert {nonce % stripes for nonce in mine} == {n}
        # Close to the clock: 200 requests in one millisecond run ahead by 200 stripes.
        assert 1_734_513_807_123 <= mine[0] < 1_734_513_807_123 + stripes
    unstriped = [NonceSource(clock=lambda: 1_734_513_807.123) for _ in range(2)]
    assert unstriped[0].next() == unstriped[1].next()  # what the stripes are for


def test_a_stripe_is_one_of_its_count() -> None:
    for stripe, stripes in ((0, 0), (3, 3), (-1, 4)):
        try:
            NonceSource(stripe=stripe, stripes=stripes)
        except ValueError:
            continue
        raise AssertionError(f"stripe {stripe} of {stripes} was taken")
