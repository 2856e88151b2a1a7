"""WiroClient's error mapping and retries, against the stand-in's injected faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web

from bot.wiro import (
    AuthError,
    ConcurrencyLimit,
    Credentials,
    InsufficientBalance,
    InvalidResponse,
    NonceSource,
    RateLimited,
    RetryPolicy,
    ServerError,
    ValidationFailed,
    WiroClient,
    WiroConnectionError,
    WiroError,
    parse_retry_after,
)
from tests.wiro.helpers import RecordingSleep, closed_port
from tests.wiro_standin import (
    AUTH_NEEDS_SIGNATURE,
    AUTH_NOT_FOUND,
    AUTH_NOT_VALID,
    WiroStandIn,
)

KEY = "KEY-sekrit-0123456789"
SECRET = "SECRET-sekrit-9876543210"

ClientFactory = Callable[..., WiroClient]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def server() -> AsyncIterator[WiroStandIn]:
    async with WiroStandIn(api_key=KEY, api_secret=SECRET) as s:
        yield s


@pytest.fixture
def sleeper() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def make_client(
    session: aiohttp.ClientSession, server: WiroStandIn, sleeper: RecordingSleep
) -> ClientFactory:
    def make(
        key: str = KEY,
        secret: str | None = SECRET,
        *,
        base_url: str | None = None,
        nonces: NonceSource | None = None,
        request_timeout: float = 5.0,
    ) -> WiroClient:
        return WiroClient(
            session,
            Credentials(key, secret, nonces=nonces),
            base_url=base_url or server.base_url,
            retry=RetryPolicy(base_delay=0.001, max_delay=0.01),
            request_timeout=request_timeout,
            sleep=sleeper,
        )

    return make


@pytest.fixture
def client(make_client: ClientFactory) -> WiroClient:
    return make_client()


def assert_no_secrets(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), str(exc.args)):
        assert "sekrit" not in text
        assert KEY not in text and SECRET not in text


# -- server trouble -------------------------------------------------------------------------


async def test_500_is_retried_then_succeeds(
    server: WiroStandIn, client: WiroClient, sleeper: RecordingSleep
) -> None:
    run = await client.run("a/b", {"prompt": "x"})
    server.fail_next("detail", "http500")
    task = await client.task_detail(task_id=run.taskid)
    assert task.id == run.taskid
    assert server.calls["detail"] == 2
    assert len(sleeper.waits) == 1 and 0 <= sleeper.waits[0] <= 0.001


async def test_502_retried_then_ok(server: WiroStandIn, client: WiroClient) -> None:
    run = await client.run("a/b", {"prompt": "x"})
    server.fail_next("detail", "http502", times=3)
    task = await client.task_detail(task_id=run.taskid)
    assert task.id == run.taskid
    assert server.calls["detail"] == 4


async def test_502_gives_up_after_the_attempts(
    server: WiroStandIn, client: WiroClient, sleeper: RecordingSleep
) -> None:
    server.fail_next("detail", "http502", times=10)
    with pytest.raises(ServerError) as caught:
        await client.task_detail(task_id="1")
    assert str(caught.value) == "Wiro is having trouble (HTTP 502); try again in a minute."
    assert caught.value.status == 502
    assert server.calls["detail"] == 4
    assert len(sleeper.waits) == 3
    assert_no_secrets(caught.value)


async def test_backoff_grows_with_full_jitter(
    server: WiroStandIn, make_client: ClientFactory, session: aiohttp.ClientSession
) -> None:
    waits = RecordingSleep()
    client = WiroClient(
        session,
        Credentials(KEY, SECRET),
        base_url=server.base_url,
        retry=RetryPolicy(attempts=6, base_delay=1.0, max_delay=4.0),
        sleep=waits,
    )
    server.fail_next("tool_detail", "http500", times=10)
    with pytest.raises(ServerError):
        await client.tool_detail("a/b")
    assert len(waits.waits) == 5
    for attempt, wait in enumerate(waits.waits, start=1):
        assert 0 <= wait <= min(4.0, 1.0 * 2 ** (attempt - 1))


async def test_run_is_not_retried_after_a_5xx(server: WiroStandIn, client: WiroClient) -> None:
    server.fail_next("run", "http502")
    with pytest.raises(ServerError):
        await client.run("a/b", {"prompt": "x"})
    assert server.calls["run"] == 1


async def test_garbage_is_an_invalid_response(server: WiroStandIn, client: WiroClient) -> None:
    run = await client.run("a/b", {"prompt": "x"})
    server.fail_next("detail", "garbage")
    assert (await client.task_detail(task_id=run.taskid)).id == run.taskid  # retried

    server.fail_next("detail", "garbage", times=4)
    with pytest.raises(InvalidResponse, match="cannot read"):
        await client.task_detail(task_id=run.taskid)

    server.fail_next("run", "garbage")
    with pytest.raises(InvalidResponse):
        await client.run("a/b", {"prompt": "x"})
    assert server.calls["run"] == 2  # the garbage Run was not sent again


# -- rate limits ------------------------------------------------------------------------------


async def test_429_waits_for_retry_after(
    server: WiroStandIn, session: aiohttp.ClientSession, sleeper: RecordingSleep
) -> None:
    client = WiroClient(
        session,
        Credentials(KEY, SECRET),
        base_url=server.base_url,
        retry=RetryPolicy(),
        sleep=sleeper,
    )
    server.fail_next("tool_detail", "http429", retry_after=2)
    detail = await client.tool_detail("a/b")
    assert detail.slug == "a/b"
    assert sleeper.waits == [2.0]  # not the shorter backoff (at most 0.5 s here)
    assert server.calls["tool_detail"] == 2


async def test_run_is_retried_after_429(
    server: WiroStandIn, client: WiroClient, sleeper: RecordingSleep
) -> None:
    server.fail_next("run", "http429", retry_after=0.02)
    result = await client.run("a/b", {"prompt": "x"})
    assert server.calls["run"] == 2
    assert list(server.tasks) == [result.taskid]
    assert sleeper.waits == [0.02]


async def test_a_long_retry_after_is_raised_not_waited(
    server: WiroStandIn, client: WiroClient, sleeper: RecordingSleep
) -> None:
    server.fail_next("detail", "http429", retry_after=3600)
    with pytest.raises(RateLimited) as caught:
        await client.task_detail(task_id="1")
    assert caught.value.retry_after == 3600
    assert caught.value.retryable
    assert "3600 seconds" in str(caught.value)
    assert sleeper.waits == []


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-3") == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 31
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "secret", "message", "words"),
    [
        ("KEY-sekrit-wrong", SECRET, AUTH_NOT_FOUND, "Wiro does not know this API key"),
        (KEY, None, AUTH_NEEDS_SIGNATURE, "needs signature authentication: set wiro.api_secret"),
        (KEY, "SECRET-sekrit-wrong", AUTH_NOT_VALID, "the API secret does not match the key"),
    ],
)
@pytest.mark.parametrize("always_200", [False, True])
async def test_each_401_message_is_an_auth_error(
    session: aiohttp.ClientSession,
    key: str,
    secret: str | None,
    message: str,
    words: str,
    always_200: bool,
) -> None:
    async with WiroStandIn(api_key=KEY, api_secret=SECRET, always_200=always_200) as server:
        client = WiroClient(
            session,
            Credentials(key, secret),
            base_url=server.base_url,
            retry=RetryPolicy(base_delay=0),
        )
        with pytest.raises(AuthError) as caught:
            await client.task_detail(task_id="1")
        # It says what is actually wrong, and quotes Wiro.
        assert words in str(caught.value)
        assert f"Wiro said: {message.rstrip('.')}" in str(caught.value)
        assert caught.value.status == (200 if always_200 else 401)
        assert server.calls["detail"] == 1  # never retried
        assert server.auth_failures == {message: 1}
        assert_no_secrets(caught.value)
        assert "wrong" not in str(caught.value)


async def test_a_reused_nonce_is_refused(server: WiroStandIn, make_client: ClientFactory) -> None:
    # Two clients whose clocks stand still at the same instant send the same nonce.
    first = make_client(nonces=NonceSource(clock=lambda: 1_800_000_000.0))
    second = make_client(nonces=NonceSource(clock=lambda: 1_800_000_000.0))
    await first.tool_detail("a/b")
    with pytest.raises(AuthError, match="Project authorization is not valid"):
        await second.tool_detail("a/b")
    # An old nonce is refused too.
    stale = make_client(nonces=NonceSource(clock=lambda: 1_700_000_000.0))
    with pytest.raises(AuthError):
        await stale.tool_detail("a/b")


async def test_injected_401(server: WiroStandIn, client: WiroClient) -> None:
    server.fail_next("run", "http401")
    with pytest.raises(AuthError) as caught:
        await client.run("a/b", {"prompt": "x"})
    assert caught.value.status == 401
    assert server.tasks == {}


async def test_code_96_is_a_concurrency_limit_not_retried(
    server: WiroStandIn, client: WiroClient
) -> None:
    server.fail_next("run", "code96")
    with pytest.raises(ConcurrencyLimit) as caught:
        await client.run("a/b", {"prompt": "x"})
    assert caught.value.code == 96
    assert server.calls["run"] == 1
    assert_no_secrets(caught.value)


async def test_the_standin_enforces_its_concurrency_limit(session: aiohttp.ClientSession) -> None:
    async with WiroStandIn(concurrency_limit=1) as server:
        client = WiroClient(
            session,
            Credentials(server.api_key, server.api_secret),
            base_url=server.base_url,
            retry=RetryPolicy(base_delay=0),
        )
        server.hold()
        first = await client.run("a/b", {"prompt": "x"})
        with pytest.raises(ConcurrencyLimit):
            await client.run("a/b", {"prompt": "y"})
        assert [c.error_code for c in server.runs] == [None, 96]
        server.finish(first.taskid)
        second = await client.run("a/b", {"prompt": "y"})
        assert second.taskid != first.taskid


async def test_code_97_is_insufficient_balance(server: WiroStandIn, client: WiroClient) -> None:
    server.fail_next("run", "code97")
    with pytest.raises(InsufficientBalance, match="balance is too low"):
        await client.run("a/b", {"prompt": "x"})
    assert server.calls["run"] == 1


async def test_validation_keeps_wiros_words(server: WiroStandIn, client: WiroClient) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await client.run("a/b", {"prompt": "x", "samples": 5})
    assert "samples must be between 1 and 4" in str(caught.value)
    assert caught.value.code == 0
    assert server.calls["run"] == 1
    assert server.tasks == {}
    assert_no_secrets(caught.value)


# -- lost answers and unreachable servers ----------------------------------------------------


async def test_run_is_not_retried_when_its_answer_is_lost(
    server: WiroStandIn, client: WiroClient
) -> None:
    server.fail_next("run", "drop")
    with pytest.raises(WiroConnectionError) as caught:
        await client.run("a/b", {"prompt": "x"})
    assert caught.value.reached is True
    assert server.calls["run"] == 1
    assert len(server.tasks) == 1  # the task exists at Wiro: sending again would double it
    assert_no_secrets(caught.value)


async def test_a_dropped_detail_is_retried(server: WiroStandIn, client: WiroClient) -> None:
    run = await client.run("a/b", {"prompt": "x"})
    server.fail_next("detail", "drop", times=2)
    assert (await client.task_detail(task_id=run.taskid)).id == run.taskid
    assert server.calls["detail"] == 3


async def test_a_lost_cancel_answer_still_cancelled(
    server: WiroStandIn, client: WiroClient
) -> None:
    server.hold()
    run = await client.run("a/b", {"prompt": "x"})
    server.fail_next("cancel", "drop")
    # The retry finds the task already cancelled, which Wiro refuses.
    with pytest.raises(WiroError):
        await client.cancel_task(run.taskid)
    assert server.tasks[run.taskid].stopped_by == "cancel"
    assert server.calls["cancel"] == 2


async def test_refused_connection_is_not_reached_and_run_retries(
    make_client: ClientFactory, sleeper: RecordingSleep
) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{closed_port()}/v1")
    with pytest.raises(WiroConnectionError) as caught:
        await client.run("a/b", {"prompt": "x"})
    assert caught.value.reached is False
    assert caught.value.retryable
    assert len(sleeper.waits) == 3  # four tries in all
    assert "Could not connect to Wiro" in str(caught.value)
    assert_no_secrets(caught.value)


async def test_run_succeeds_once_the_server_comes_up(session: aiohttp.ClientSession) -> None:
    port = closed_port()
    started: list[WiroStandIn] = []

    async def start_server_while_waiting(seconds: float) -> None:
        if not started:
            server = WiroStandIn(port=port)
            await server.start()
            started.append(server)

    client = WiroClient(
        session,
        Credentials("test-key", "test-secret"),
        base_url=f"http://127.0.0.1:{port}/v1",
        retry=RetryPolicy(base_delay=0),
        sleep=start_server_while_waiting,
    )
    try:
        result = await client.run("a/b", {"prompt": "x"})
        [server] = started
        assert list(server.tasks) == [result.taskid]
        assert server.calls["run"] == 1
    finally:
        for server in started:
            await server.close()


async def test_a_timeout_counts_as_reached(session: aiohttp.ClientSession) -> None:
    hits = 0
    let_go = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        await let_go.wait()
        return web.json_response({"result": True, "taskid": "1", "socketaccesstoken": "t"})

    app = web.Application()
    app.router.add_post("/v1/Run/{owner}/{project}", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        client = WiroClient(
            session,
            Credentials(KEY, SECRET),
            base_url=f"http://127.0.0.1:{runner.addresses[0][1]}/v1",
            retry=RetryPolicy(base_delay=0),
            request_timeout=0.05,
        )
        with pytest.raises(WiroConnectionError) as caught:
            await client.run("a/b", {"prompt": "x"})
        assert caught.value.reached is True
        assert "did not answer within 0.05 seconds" in str(caught.value)
        assert hits == 1
    finally:
        let_go.set()
        await runner.cleanup()


async def test_a_server_echoing_the_key_is_redacted(session: aiohttp.ClientSession) -> None:
    async def leaky(request: web.Request) -> web.Response:
        key = request.headers.get("x-api-key")
        return web.json_response(
            {"result": False, "errors": [{"code": 0, "message": f"key {key} must be valid"}]}
        )

    app = web.Application()
    app.router.add_post("/v1/Task/Detail", leaky)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        client = WiroClient(
            session,
            Credentials(KEY, SECRET),
            base_url=f"http://127.0.0.1:{runner.addresses[0][1]}/v1",
            retry=RetryPolicy(base_delay=0),
        )
        with pytest.raises(WiroError) as caught:
            await client.task_detail(task_id="1")
        assert "***" in str(caught.value)
        assert_no_secrets(caught.value)
    finally:
        await runner.cleanup()
