"""The client reads Wiro as it answers, not only as it documents: Task/List, categories as a
JSON string, the `numeric` input type, each 401 in its own words, and Retry-After for every
call."""

from __future__ import annotations

import aiohttp
import pytest

from bot.catalog import InputKind, spec_from_tool_detail
from bot.wiro import AuthError, Credentials, RateLimited, RetryPolicy, WiroClient
from tests.wiro.helpers import RecordingSleep
from tests.wiro_standin import WiroStandIn, default_tool_items


async def test_task_list_shows_the_projects_tasks_newest_first_with_their_inputs(
    wiro: WiroStandIn, wiro_client: WiroClient
) -> None:
    first = await wiro_client.run("a/b", {"prompt": "one", "seed": "1"})
    await wiro_client.run("c/d", {"prompt": "other model", "seed": "2"})
    second = await wiro_client.run("a/b", {"prompt": "two", "seed": "3"})
    tasks = await wiro_client.list_tasks(model="a/b")
    assert [task.id for task in tasks] == [second.taskid, first.taskid]
    assert tasks[0].parameters == {"prompt": "two", "seed": "3"}
    assert len(await wiro_client.list_tasks()) == 3


async def test_categories_as_a_json_string_and_numeric_inputs_are_understood(
    wiro: WiroStandIn, wiro_client: WiroClient
) -> None:
    items = default_tool_items()
    for item in items:
        if item["id"] == "steps":
            item["type"] = "numeric"
    wiro.add_tool("paintbox/Numeric", items, categories='["model", "text-to-image", "lora-flux"]')
    detail = await wiro_client.tool_detail("paintbox/Numeric")
    assert detail.categories == ["model", "text-to-image", "lora-flux"]
    model = spec_from_tool_detail(detail)
    steps = model.input("steps")
    assert steps is not None and steps.kind is InputKind.INT
    assert model.base_model == "Flux LoRA"


async def test_an_ip_wiro_does_not_allow_is_named_as_the_problem(
    wiro: WiroStandIn, wiro_client: WiroClient
) -> None:
    wiro.fail_next("detail", "http401ip")
    with pytest.raises(AuthError) as caught:
        await wiro_client.task_detail(task_id="1")
    assert str(caught.value).startswith("Wiro does not accept calls from this machine's IP address")


async def test_retry_after_holds_for_every_call_not_just_the_one_told(wiro: WiroStandIn) -> None:
    sleeper = RecordingSleep()
    async with aiohttp.ClientSession() as session:
        client = WiroClient(
            session,
            Credentials(wiro.api_key, wiro.api_secret),
            base_url=wiro.base_url,
            retry=RetryPolicy(attempts=1),
            sleep=sleeper,
        )
        wiro.fail_next("detail", "http429", retry_after=5)
        with pytest.raises(RateLimited):
            await client.task_detail(task_id="1")
        assert sleeper.waits == []
        await client.tool_detail("a/b")  # another call: it waits out the same pause first
    assert len(sleeper.waits) == 1 and 4.5 < sleeper.waits[0] <= 5
