"""WiroClient against the Wiro stand-in: happy paths."""

from __future__ import annotations

import aiohttp
import pytest

from bot.wiro import Credentials, NotFound, RetryPolicy, TaskStatus, WiroAPIError, WiroClient
from tests.wiro.helpers import wait_until_terminal
from tests.wiro_standin import WiroStandIn


async def test_run_sends_json_and_returns_the_task(
    wiro: WiroStandIn, wiro_client: WiroClient
) -> None:
    inputs = {"prompt": "a lighthouse", "negativePrompt": "blurry", "samples": 2, "seed": "42"}
    result = await wiro_client.run("wavymulder/portraitplus", inputs)

    assert result.taskid in wiro.tasks
    assert result.socketaccesstoken == wiro.tasks[result.taskid].token
    [call] = wiro.runs
    assert call.slug == "wavymulder/portraitplus"
    assert call.body == inputs
    assert call.encoding == "json"
    assert call.task_id == result.taskid


async def test_task_walks_to_success_with_outputs(
    wiro: WiroStandIn, wiro_client: WiroClient
) -> None:
    result = await wiro_client.run("Adel_AI/Comics-Factory-v1", {"prompt": "x", "samples": 3})
    task = await wait_until_terminal(wiro_client, result.taskid)

    assert task.status is TaskStatus.POSTPROCESS_END
    assert task.succeeded and not task.failed
    assert task.pexit == "0"
    assert [o.name for o in task.outputs] == ["0.png", "1.png", "2.png"]
    assert all(o.contenttype == "image/png" and o.size > 0 for o in task.outputs)
    assert task.totalcost == pytest.approx(0.009)
    assert task.createtime > 1_700_000_000
    assert wiro.tasks[result.taskid].finished_at is not None
    assert wiro.detail_calls[result.taskid] >= 1


async def test_held_task_moves_only_by_hand(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    wiro.hold()
    result = await wiro_client.run("a/b", {"prompt": "x"})
    first = await wiro_client.task_detail(task_id=result.taskid)
    assert first.status is TaskStatus.QUEUE and first.outputs == []

    wiro.advance(result.taskid, TaskStatus.START)
    running = await wiro_client.task_detail(task_token=result.socketaccesstoken)
    assert running.status is TaskStatus.START
    assert running.id == result.taskid

    wiro.finish(result.taskid)
    done = await wiro_client.task_detail(task_id=result.taskid)
    assert done.succeeded and len(done.outputs) == 1
    assert wiro.detail_calls[result.taskid] == 3


async def test_failed_task_carries_the_traceback(
    wiro: WiroStandIn, wiro_client: WiroClient
) -> None:
    wiro.next_outcome("failed")
    result = await wiro_client.run("a/b", {"prompt": "x"})
    task = await wait_until_terminal(wiro_client, result.taskid)

    assert task.status is TaskStatus.POSTPROCESS_END
    assert task.failed and not task.succeeded
    assert task.pexit == "1"
    assert task.outputs == []
    assert task.totalcost == 0
    assert task.failure_reason.endswith("RuntimeError: CUDA out of memory")


async def test_task_error_is_final(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    wiro.next_outcome("task_error")
    result = await wiro_client.run("a/b", {"prompt": "x"})
    task = await wait_until_terminal(wiro_client, result.taskid)
    assert task.status is TaskStatus.ERROR
    assert task.failed and task.failure_reason


async def test_cancel_while_queued(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    wiro.hold()
    result = await wiro_client.run("a/b", {"prompt": "x"})
    task = await wiro_client.cancel_task(result.taskid)
    assert task.status is TaskStatus.CANCEL
    assert wiro.tasks[result.taskid].stopped_by == "cancel"
    assert wiro.tasks[result.taskid].finished_at is not None


async def test_cancel_refused_once_running(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    wiro.hold()
    result = await wiro_client.run("a/b", {"prompt": "x"})
    wiro.advance(result.taskid, TaskStatus.ASSIGN)
    with pytest.raises(WiroAPIError) as caught:
        await wiro_client.cancel_task(result.taskid)
    assert "can not be cancelled" in str(caught.value)
    assert wiro.calls["cancel"] == 1  # a refusal is not retried
    assert wiro.tasks[result.taskid].status is TaskStatus.ASSIGN


async def test_kill_while_running(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    wiro.hold()
    result = await wiro_client.run("a/b", {"prompt": "x"})
    wiro.advance(result.taskid, TaskStatus.OUTPUT)
    task = await wiro_client.kill_task(result.taskid)
    assert task.status is TaskStatus.CANCEL
    assert wiro.tasks[result.taskid].stopped_by == "kill"


async def test_kill_refused_while_queued(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    wiro.hold()
    result = await wiro_client.run("a/b", {"prompt": "x"})
    with pytest.raises(WiroAPIError, match="can not be killed"):
        await wiro_client.kill_task(result.taskid)
    assert wiro.tasks[result.taskid].stopped_by is None


async def test_unknown_task_is_not_found(wiro_client: WiroClient) -> None:
    with pytest.raises(NotFound, match="task 999999"):
        await wiro_client.task_detail(task_id="999999")


async def test_task_detail_wants_exactly_one_key(wiro_client: WiroClient) -> None:
    with pytest.raises(ValueError):
        await wiro_client.task_detail()
    with pytest.raises(ValueError):
        await wiro_client.task_detail(task_id="1", task_token="t")


async def test_tool_detail_flattens_the_inputs(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    detail = await wiro_client.tool_detail("geelong_hillbilly/Facechain")
    assert detail.slug == "geelong_hillbilly/Facechain"
    assert detail.name == "Facechain"
    assert "text-to-image" in detail.categories
    by_id = {i.id: i for i in detail.inputs}
    assert by_id["prompt"].required and by_id["prompt"].type == "textarea"
    assert (by_id["samples"].min, by_id["samples"].max) == (1, 4)
    assert [o.value for o in by_id["width"].options] == ["512", "1024"]
    assert wiro.calls["tool_detail"] == 1


async def test_tool_detail_of_a_registered_tool(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    wiro.add_tool(
        "Hevok/Studio-Trigger",
        [
            {"id": "prompt", "type": "textarea", "required": "true"},
            {"name": "scheduler", "type": "select", "options": ["DDIMScheduler", "PNDMScheduler"]},
            {"type": "text"},  # no id: skipped
        ],
        title="Studio Trigger",
        description="Studio Trigger",
    )
    detail = await wiro_client.tool_detail("Hevok/Studio-Trigger")
    assert detail.name == "Studio Trigger"
    assert [i.id for i in detail.inputs] == ["prompt", "scheduler"]
    assert detail.inputs[0].required
    assert [o.value for o in detail.inputs[1].options] == ["DDIMScheduler", "PNDMScheduler"]


async def test_unknown_model() -> None:
    async with WiroStandIn(models={"a/b"}) as server, aiohttp.ClientSession() as session:
        client = WiroClient(
            session,
            Credentials(server.api_key, server.api_secret),
            base_url=server.base_url,
            retry=RetryPolicy(base_delay=0),
        )
        with pytest.raises(NotFound, match="the model x/y"):
            await client.run("x/y", {"prompt": "p"})
        with pytest.raises(NotFound, match="the model x/y"):
            await client.tool_detail("x/y")
        assert (await client.tool_detail("a/b")).slug == "a/b"
        assert server.tasks == {}


@pytest.mark.parametrize("slug", ["", "owner", "a/b/c", "/b", "a/"])
async def test_bad_slug_is_a_value_error(wiro_client: WiroClient, slug: str) -> None:
    with pytest.raises(ValueError):
        await wiro_client.run(slug, {"prompt": "x"})


@pytest.mark.parametrize("multipart", [True, False])
async def test_form_bodies_are_accepted_by_the_standin(wiro: WiroStandIn, multipart: bool) -> None:
    creds = Credentials(wiro.api_key, wiro.api_secret)
    form = aiohttp.FormData({"prompt": "a cat", "samples": "2"}, default_to_multipart=multipart)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{wiro.base_url}/Run/a/b", data=form, headers=creds.headers()) as resp,
    ):
        answer = await resp.json()
    assert answer["result"] is True
    assert wiro.runs[-1].body == {"prompt": "a cat", "samples": "2"}
    assert wiro.runs[-1].encoding == ("multipart" if multipart else "form")
    assert wiro.tasks[answer["taskid"]].images == 2
