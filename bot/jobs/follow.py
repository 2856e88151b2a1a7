"""Following a task on Wiro's WebSocket first, polling when the socket cannot help.

The socket tells each change as it happens, so a job finishes within milliseconds of Wiro and
costs one Task/Detail (for `pexit`, the outputs and the cost, which the socket does not
carry). Whenever the socket fails (refused, dropped, silent, garbled, or backing off after a
failure) the job is polled instead, at once: the task may have ended while the socket was
failing. The watcher returns one final Task either way, so the engine finishes the job once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.jobs.job import Job
from bot.jobs.watch import OnChange, OnUpdate, PollingWatcher
from bot.wiro.exceptions import WiroError
from bot.wiro.socket import LINE_TYPES, SocketLost, SocketMessage, WiroSocket
from bot.wiro.types import WAITING_STATUSES, Task, TaskProgress, TaskStatus

log = logging.getLogger(__name__)


class SocketWatcher:
    """A `TaskWatcher` on Wiro's socket, with `polling` as the fallback.

    `resumed_after`: a job submitted longer ago than this when its watch begins, and either
    submitted before this watcher existed (resumed after a restart) or watched before (after
    Wiro trouble), may have ended meanwhile; a socket that registers an ended task may say
    nothing, so one Task/Detail comes first. A job whose Run merely answered late (thousands
    submitted at once) goes straight to the socket: a Task/Detail each, within the shared
    cap, would hold thousands of jobs back for minutes.

    `quiet_after`: when the socket has said nothing for this long (or 1.5 times the job's
    predicted duration, if longer), one Task/Detail checks that the task has not ended unseen.
    """

    def __init__(
        self,
        socket: WiroSocket,
        polling: PollingWatcher,
        *,
        resumed_after: float = 15.0,
        quiet_after: float = 10.0,
        on_follow: Callable[[str], None] | None = None,
    ) -> None:
        self._socket = socket
        self._polling = polling
        #: Told "socket" or "polling" each time a job is followed one way (for the metrics).
        self._on_follow = on_follow or _ignore
        self._resumed_after = resumed_after
        self._started = time.time()
        #: Jobs whose watch began and has not yet returned their task's end.
        self._watching: set[int] = set()
        self._quiet_after = quiet_after

    async def watch(self, job: Job, on_update: OnUpdate, on_change: OnChange | None = None) -> Task:
        assert job.task_id is not None
        if not job.task_token or not self._socket.available:
            self._watching.discard(job.id)
            self._on_follow("polling")
            return await self._polling.watch(job, on_update)
        submitted = job.submitted_at or time.time()
        again = job.id in self._watching or submitted < self._started
        self._watching.add(job.id)
        try:
            task = await self._follow(job, on_update, on_change, submitted, again)
        except WiroError:
            raise  # the job is watched again after a pause: it stays marked
        except BaseException:
            self._watching.discard(job.id)
            raise
        self._watching.discard(job.id)
        return task

    async def _follow(
        self,
        job: Job,
        on_update: OnUpdate,
        on_change: OnChange | None,
        submitted: float,
        again: bool,
    ) -> Task:
        assert job.task_id is not None and job.task_token is not None
        if again and time.time() - submitted > self._resumed_after:
            task = await self._polling.detail(job)
            await on_update(task)
            if task.is_terminal:
                return task
        predicted = self._polling.predict(job)
        view = _SocketView(job.task_id, job.task_token, on_update, on_change)
        looked: list[Task] = []

        async def quiet() -> bool:
            # Nothing heard for a while: the task may have ended before it was registered.
            task = await self._polling.detail(job)
            looked.append(task)
            return task.is_terminal

        self._on_follow("socket")
        try:
            end = await self._socket.follow(
                job.task_token,
                view.on_message,
                on_arrival=view.take_at_once,
                on_quiet=quiet,
                quiet_after=max(self._quiet_after, 1.5 * (predicted or 0.0)),
            )
        except SocketLost as exc:
            log.info("job %s: following task %s by polling: %s", job.id, job.task_id, exc)
            self._on_follow("polling")
            return await self._polling.watch(job, on_update, look_now=True)
        if end is None:
            await on_update(looked[-1])
            return looked[-1]
        if view.ended_ok:
            self._polling.learn(job, time.time() - submitted, predicted)
        try:
            # Not held back by the polling cap: it is the one call this job needs, and when a
            # thousand jobs end together a queue behind the cap would delay every result.
            task = await self._polling.detail(job, capped=False)
        except WiroError as exc:
            if not exc.retryable:
                raise
            log.info("job %s: Task/Detail after the socket's end failed: %s", job.id, exc)
            return await self._polling.watch(job, on_update)
        if task.is_terminal:
            await on_update(task)
            return task
        # The socket said it ended but Task/Detail does not agree yet: Detail decides.
        return await self._polling.watch(job, on_update, look_now=True)


class _SocketView:
    """Turns socket messages into the changes the engine reads: status and progress.

    Most messages are handled as they arrive (`take_at_once`): a task prints a line per
    step and passes a dozen statuses, and for nearly all of them the engine has only to
    note the change (`on_change`). Those it cannot note without waiting (the job's first
    running status is stored first) come to `on_message`, which tells them as a Task."""

    def __init__(
        self, task_id: str, token: str, on_update: OnUpdate, on_change: OnChange | None
    ) -> None:
        self._on_update = on_update
        self._on_change = on_change
        self._status = TaskStatus.QUEUE
        self._progress: TaskProgress | None = None
        self._told: tuple[TaskStatus, TaskProgress | None] | None = None
        self._template = Task(id=task_id, socketaccesstoken=token, status=TaskStatus.QUEUE)
        self.ended_ok = False

    def _read(self, message: SocketMessage) -> tuple[TaskStatus, TaskProgress | None]:
        """The status and progress after `message` (not an ending one)."""
        status = message.status
        if status is None:
            status = self._status
            if message.type in LINE_TYPES and status in WAITING_STATUSES:
                # A stderr line: the model is running, whatever the last status said.
                status = TaskStatus.START
        progress = message.progress
        return status, progress or self._progress

    def take_at_once(self, message: SocketMessage) -> bool:
        """True when `message` is handled here, as it arrives; False: `on_message` next."""
        if self._on_change is None or message.ends:
            return False
        state = self._read(message)
        if state == self._told:
            return True
        if not self._on_change(*state):
            return False
        self._status, self._progress = state
        self._told = state
        return True

    async def on_message(self, message: SocketMessage) -> None:
        if message.ends:
            # The final Task comes from Task/Detail; the socket's end only says when.
            self.ended_ok = message.type == TaskStatus.POSTPROCESS_END.value
            return
        state = self._read(message)
        self._status, self._progress = state
        if state == self._told:
            return
        self._told = state
        # A copy of one validated Task: cheaper than validating a new one.
        await self._on_update(
            self._template.model_copy(update={"status": state[0], "reported_progress": state[1]})
        )


class PollingOnly:
    """A `TaskWatcher` that polls (the socket is off), telling `on_follow` so."""

    def __init__(self, polling: PollingWatcher, on_follow: Callable[[str], None]) -> None:
        self._polling = polling
        self._on_follow = on_follow

    async def watch(self, job: Job, on_update: OnUpdate, on_change: OnChange | None = None) -> Task:
        self._on_follow("polling")
        return await self._polling.watch(job, on_update)


def _ignore(mode: str) -> None:
    pass
