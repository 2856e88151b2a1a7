"""Typed payloads of the Wiro API (see shared/wiro-api.md)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.money import ZERO, parse_usd

log = logging.getLogger(__name__)


class TaskStatus(StrEnum):
    QUEUE = "task_queue"
    ACCEPT = "task_accept"
    PREPROCESS_START = "task_preprocess_start"
    PREPROCESS_END = "task_preprocess_end"
    ASSIGN = "task_assign"
    START = "task_start"
    OUTPUT = "task_output"
    OUTPUT_FULL = "task_output_full"
    END = "task_end"
    POSTPROCESS_START = "task_postprocess_start"
    POSTPROCESS_END = "task_postprocess_end"
    CANCEL = "task_cancel"
    ERROR = "task_error"
    #: A status this client does not know yet; treated as still running.
    UNKNOWN = "unknown"

    @classmethod
    def _missing_(cls, value: object) -> TaskStatus:
        return cls.UNKNOWN


#: Statuses that can end a task. task_postprocess_end and task_cancel always do; task_error
#: only once the task has ended (see `Task.is_terminal`): Wiro's SDKs read it as not final.
TERMINAL_STATUSES = frozenset({TaskStatus.POSTPROCESS_END, TaskStatus.CANCEL, TaskStatus.ERROR})

#: Statuses in which a task has not reached a worker: Task/Cancel applies, not Task/Kill.
WAITING_STATUSES = frozenset(
    {
        TaskStatus.QUEUE,
        TaskStatus.ACCEPT,
        TaskStatus.PREPROCESS_START,
        TaskStatus.PREPROCESS_END,
    }
)


#: A tqdm-style progress bar as diffusion pipelines print it: " 45%|████▌     | 9/20".
_PROGRESS = re.compile(r"(\d{1,3})%\|[^|\n]*\|\s*(\d+)/(\d+)|(\d{1,3})%\|")
#: A step counter as some models print it: "Step 12/30".
_STEP = re.compile(r"\bstep\s*:?\s*(\d+)\s*(?:/|of)\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TaskProgress:
    """How far a running task is, as far as Wiro tells it."""

    fraction: float  # 0..1
    step: int | None = None
    total_steps: int | None = None
    remaining_seconds: float | None = None


def progress_in_text(text: str) -> TaskProgress | None:
    """The last progress a model printed: a tqdm bar ("45%|####  | 9/20") or a step counter
    ("Step 12/30"), whichever comes last; None if there is none."""
    tail = text[-2000:]
    # Most lines have neither: looking for the marks first is cheaper than the patterns.
    bars = list(_PROGRESS.finditer(tail)) if "%|" in tail else []
    steps = (
        [m for m in _STEP.finditer(tail) if int(m[2]) > 0 and int(m[1]) <= int(m[2])]
        if "step" in tail.lower()
        else []
    )
    bar = bars[-1] if bars else None
    step = steps[-1] if steps else None
    if step is not None and (bar is None or step.start() > bar.start()):
        done, total = int(step[1]), int(step[2])
        return TaskProgress(done / total, done, total)
    if bar is None:
        return None
    percent, done_text, total_text, bare = bar.groups()
    fraction = min(int(percent or bare), 100) / 100
    if done_text and total_text:
        return TaskProgress(fraction, int(done_text), int(total_text))
    return TaskProgress(fraction)


def _number(value: Any) -> float:
    """Wiro sends numbers as strings ("6.0000"); empty or missing means 0."""
    if value is None or value == "":
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TaskOutput(_Payload):
    name: str = ""
    contenttype: str = ""
    size: int = 0
    url: str

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> int:
        return int(_number(v))


class Task(_Payload):
    id: str
    socketaccesstoken: str = ""
    status: TaskStatus
    pexit: str = ""
    debugerror: str = ""
    debugoutput: str = ""
    elapsedseconds: float = 0.0
    #: What Wiro charged, exact (it sends a string with 12 decimals).
    totalcost: Decimal = ZERO
    outputs: list[TaskOutput] = Field(default_factory=list)
    #: The inputs the task was run with, as Wiro echoes them (Task/List, Task/Detail).
    parameters: dict[str, Any] = Field(default_factory=dict)
    createtime: float = 0.0
    starttime: float = 0.0
    endtime: float = 0.0
    postprocessendtime: float = 0.0
    #: Progress told by other means than `debugoutput` (Wiro's socket); preferred when set.
    reported_progress: TaskProgress | None = None

    @field_validator("id", "pexit", mode="before")
    @classmethod
    def _text(cls, v: Any) -> str:
        return "" if v is None else str(v)

    @field_validator("debugerror", "debugoutput", "socketaccesstoken", mode="before")
    @classmethod
    def _maybe_text(cls, v: Any) -> str:
        return "" if v is None else str(v)

    @field_validator(
        "elapsedseconds",
        "createtime",
        "starttime",
        "endtime",
        "postprocessendtime",
        mode="before",
    )
    @classmethod
    def _num(cls, v: Any) -> float:
        return _number(v)

    @model_validator(mode="before")
    @classmethod
    def _output_key(cls, data: Any) -> Any:
        # Some answers name the list `output`.
        if isinstance(data, dict) and not data.get("outputs") and data.get("output"):
            return {**data, "outputs": data["output"]}
        return data

    @field_validator("totalcost", mode="before")
    @classmethod
    def _cost(cls, v: Any) -> Decimal:
        return parse_usd(v) or ZERO

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs(cls, v: Any) -> Any:
        if v is None or v == "":
            return []
        if isinstance(v, dict):
            v = [v]
        if not isinstance(v, list):
            return []
        kept = []
        for item in v:
            if isinstance(item, dict) and item.get("url"):
                kept.append(item)
            else:
                log.warning("skipping a task output without a url: %r", item)
        return kept

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameters(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                return {}
        return v if isinstance(v, dict) else {}

    @property
    def progress(self) -> TaskProgress | None:
        """As the socket reported it, else from the last progress bar in the model's output
        ("45%|####"), if any."""
        return self.reported_progress or progress_in_text(self.debugoutput)

    @property
    def finished_unix(self) -> float | None:
        """When Wiro says the task ended (unix seconds, whole), if it says."""
        return self.postprocessendtime or self.endtime or None

    @property
    def has_ended(self) -> bool:
        """Wiro shows an end: an end time, or a non-zero exit code."""
        return bool(self.finished_unix) or self.pexit.strip() not in ("", "0")

    @property
    def is_terminal(self) -> bool:
        """The task will not change again. task_error counts only once the task has ended:
        before that it may be a passing state (Wiro's docs and SDKs), and the task may still
        be running, and billing."""
        if self.status is TaskStatus.ERROR:
            return self.has_ended
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        """Ended normally with exit code 0. Only meaningful once terminal."""
        return self.status is TaskStatus.POSTPROCESS_END and self.pexit.strip() in ("0", "")

    @property
    def failed(self) -> bool:
        if self.status is TaskStatus.ERROR:
            return self.has_ended
        return self.status is TaskStatus.POSTPROCESS_END and not self.succeeded

    @property
    def failure_reason(self) -> str:
        text = self.debugerror.strip() or self.debugoutput.strip()
        if not text and self.pexit.strip() not in ("", "0"):
            text = f"exit code {self.pexit.strip()}"
        # Keep the last lines: tracebacks end with the useful part.
        lines = [line for line in text.splitlines() if line.strip()]
        return "\n".join(lines[-3:])[:500]


class RunResult(_Payload):
    taskid: str
    socketaccesstoken: str

    @field_validator("taskid", mode="before")
    @classmethod
    def _id(cls, v: Any) -> str:
        return str(v)


class ToolOption(_Payload):
    value: Any = None
    label: str = ""


class ToolInput(_Payload):
    """One item of Tool/Detail's `tool[0].parameters[].items[]`."""

    id: str
    type: str = "text"
    label: str = ""
    required: bool = False
    default: Any = None
    options: list[ToolOption] = Field(default_factory=list)
    min: float | None = None
    max: float | None = None
    step: float | None = None
    note: str = ""

    @field_validator("options", mode="before")
    @classmethod
    def _opts(cls, v: Any) -> Any:
        return [] if v is None else v

    @field_validator("min", "max", "step", mode="before")
    @classmethod
    def _bound(cls, v: Any) -> float | None:
        if v is None or v == "":
            return None
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    @field_validator("required", mode="before")
    @classmethod
    def _required(cls, v: Any) -> bool:
        if isinstance(v, str):
            return v.strip().lower() in ("1", "true", "yes")
        return bool(v)

    @field_validator("note", "label", mode="before")
    @classmethod
    def _str(cls, v: Any) -> str:
        return "" if v is None else str(v)


class PriceRule(_Payload):
    """One entry of Tool/Detail's `dynamicprice`: a price for runs whose inputs match.

    `inputs` empty is a flat price for every configuration. `method` is Wiro's `priceMethod`
    ("cpr" per request, "cps" per second, "cpo" per output, "cp-pixel" per 1024x1024 tier,
    "cpt" per token, ...); `extra` is `priceExtra` (each further pixel tier)."""

    inputs: dict[str, Any] = Field(default_factory=dict)
    price: Decimal
    method: str = Field("cpr", alias="priceMethod")
    extra: Decimal | None = Field(None, alias="priceExtra")
    price_input: Any = Field(None, alias="priceInput")

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = _json_or_none(v)
        return v if isinstance(v, dict) else {}

    @field_validator("price", mode="before")
    @classmethod
    def _price(cls, v: Any) -> Decimal:
        amount = parse_usd(v)
        if amount is None:
            raise ValueError(f"not a price: {v!r}")
        return amount

    @field_validator("extra", mode="before")
    @classmethod
    def _extra(cls, v: Any) -> Decimal | None:
        return parse_usd(v)

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, v: Any) -> str:
        return str(v or "cpr").strip().lower()


def price_rules(value: Any) -> list[PriceRule]:
    """`dynamicprice` as Wiro sends it (a JSON array, or that array as a string); entries
    this bot cannot read are skipped, not fatal: the price then falls back."""
    if isinstance(value, str):
        value = _json_or_none(value)
    if not isinstance(value, list):
        return []
    rules: list[PriceRule] = []
    for entry in value:
        if isinstance(entry, dict):
            try:
                rules.append(PriceRule.model_validate(entry))
            except ValueError:
                continue
    return rules


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


class ToolDetail(_Payload):
    """A model as Tool/Detail describes it."""

    slug: str
    name: str = ""
    description: str = ""
    categories: list[str] = Field(default_factory=list)
    inputs: list[ToolInput] = Field(default_factory=list)
    #: Prices before a run (Wiro's `dynamicprice`), and its estimate when there are none.
    dynamicprice: list[PriceRule] = Field(default_factory=list)
    approximatelycost: Decimal | None = None

    @field_validator("dynamicprice", mode="before")
    @classmethod
    def _rules(cls, v: Any) -> Any:
        if v is None or isinstance(v, str):
            return price_rules(v)
        return v

    @field_validator("approximatelycost", mode="before")
    @classmethod
    def _approx(cls, v: Any) -> Decimal | None:
        amount = parse_usd(v)
        return amount if amount else None
