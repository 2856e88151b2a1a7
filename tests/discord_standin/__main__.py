"""Run the Discord stand-in as its own process: `python -m tests.discord_standin --shards 2`.

Prints one JSON line (the token, `api_base_url`, the control API's address) once listening,
then serves until SIGINT or SIGTERM. See `control.py` for the control API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys

from tests.discord_standin.control import add_control
from tests.discord_standin.server import DiscordStandIn


async def serve(host: str, port: int, shards: int) -> None:
    standin = DiscordStandIn(shards=shards, host=host, port=port)
    add_control(standin)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with standin:
        line = {
            "token": standin.token,
            "api_base_url": standin.api_base_url,
            "control_url": f"{standin.base_url}/_control",
            "shards": shards,
        }
        print(json.dumps(line), flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.discord_standin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--shards", type=int, default=1, help="the shard count it recommends")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(args.host, args.port, args.shards))


if __name__ == "__main__":
    main()
