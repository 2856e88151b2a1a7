"""Helpers for the Wiro client tests."""

from __future__ import annotations

import asyncio
import socket

from bot.wiro import Task, WiroClient


class RecordingSleep:
    """An injectable `sleep` that records the waits and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


async def wait_until_terminal(client: WiroClient, task_id: str, deadline: float = 2.0) -> Task:
    async with asyncio.timeout(deadline):
        while True:
            task = await client.task_detail(task_id=task_id)
            if task.is_terminal:
                return task
            await asyncio.sleep(0.005)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (just freed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
