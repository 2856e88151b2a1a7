"""Check a request against a model's spec and turn it into a Run body.

Values arrive as users type them (the command line and Discord give "7.5", "512", "yes") or
already typed (int, float). `coerce` checks one value; `resolve_inputs` fills a whole request
(user value, then the server's default, then the model's default); `to_wire` writes it with
Wiro's field names and the types the seeds' Run examples use.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from bot.catalog.spec import InputKind, InputSpec, ModelSpec

#: Seeds are unsigned 32-bit integers unless a model says otherwise.
SEED_MIN = 0
SEED_MAX = 2**32 - 1

#: Longer is no value any model takes, and int() refuses past 4,300 digits anyway.
_INT_TEXT = re.compile(r"[+-]?\d{1,40}")
_FLOAT_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NUMERIC_KINDS = frozenset({InputKind.INT, InputKind.FLOAT, InputKind.SEED})

_system_random = random.SystemRandom()


class InvalidInput(ValueError):
    """A value a person gave (or left out) that the model cannot take.

    `option` is the snake_case option name (or "model"); `message` is a full sentence meant for
    that person; `allowed` describes what would have been accepted, when that is one thing.
    """

    def __init__(self, option: str, message: str, allowed: str = "") -> None:
        super().__init__(message)
        self.option = option
        self.message = message
        self.allowed = allowed


@dataclass(frozen=True)
class InputCaps:
    """Per-server limits that tighten a model's bounds (None: the model's own bound)."""

    max_samples: int | None = None
    max_steps: int | None = None


def format_number(value: float) -> str:
    """A number as people (and the seeds' Run examples) write it: 4 -> "4", 3.5 -> "3.5"."""
    if isinstance(value, int):
        return str(int(value))
    if math.isfinite(value) and value.is_integer():
        return str(int(value))
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def describe_allowed(spec: InputSpec) -> str:
    """What `spec` accepts, as words: "a whole number from 1 to 150", "one of: A, B"."""
    if spec.kind is InputKind.CHOICE:
        return "one of: " + ", ".join(_choice_name(c.value, c.label) for c in spec.choices)
    if spec.kind is InputKind.TEXT:
        return f"text of at most {spec.max_length} characters" if spec.max_length else "text"
    if spec.kind is InputKind.FLOAT:
        noun = "a number"
    elif spec.multiple_of and spec.multiple_of > 1:
        noun = f"a multiple of {spec.multiple_of}"
    else:
        noun = "a whole number"
    low, high = _bounds(spec)
    if low is not None and high is not None:
        return f"{noun} from {format_number(low)} to {format_number(high)}"
    if low is not None:
        return f"{noun} of at least {format_number(low)}"
    if high is not None:
        return f"{noun} of at most {format_number(high)}"
    return noun


def coerce(spec: InputSpec, value: object) -> str | int | float:
    """`value` as `spec` takes it: parsed, checked and canonical; InvalidInput otherwise."""
    return _coerce(spec, value)


def resolve_inputs(
    model: ModelSpec,
    given: Mapping[str, object],
    *,
    defaults: Mapping[str, object] | None = None,
    caps: InputCaps | None = None,
    rng: random.Random | None = None,
) -> dict[str, str | int | float]:
    """Every input of `model` for one request, keyed by option name.

    Precedence: the user's value (`given`; None means not given), then this server's default
    (`defaults`), then the model's default. The prompt is always the user's. The seed is always
    in the result, random when nobody chose one, so the job can be run again. An input with no
    value anywhere (only possible for models read through Tool/Detail) is left out, and Wiro
    uses its own default. Server defaults for options the model does not take are ignored.
    """
    chosen = {option: value for option, value in given.items() if value is not None}
    unknown = [option for option in chosen if model.input(option) is None]
    if unknown:
        takes = ", ".join(model.options)
        raise InvalidInput(
            unknown[0],
            f"{_short_name(model)} does not take {', '.join(unknown)}; it takes: {takes}.",
            allowed=takes,
        )
    server = {
        option: value
        for option, value in (defaults or {}).items()
        if value is not None and model.input(option) is not None and option != "prompt"
    }

    resolved: dict[str, str | int | float] = {}
    for spec in model.inputs:
        capped, where = _capped(spec, caps)
        if spec.option in chosen:
            resolved[spec.option] = _coerce(capped, chosen[spec.option], where)
        elif spec.required:
            raise InvalidInput(spec.option, _required_message(spec), describe_allowed(spec))
        elif spec.option in server:
            try:
                value = _coerce(spec, server[spec.option])
            except InvalidInput as exc:
                raise InvalidInput(
                    exc.option, f"This server's default is not valid: {exc.message}", exc.allowed
                ) from None
            resolved[spec.option] = _clamp(capped, value)
        elif spec.kind is InputKind.SEED:
            low, high = _bounds(spec)
            resolved[spec.option] = (rng or _system_random).randint(int(low or 0), int(high or 0))
        elif spec.default is not None:
            resolved[spec.option] = _clamp(capped, _coerce(spec, spec.default))
    return resolved


def to_wire(model: ModelSpec, resolved: Mapping[str, object]) -> dict[str, Any]:
    """The Run body for `resolved` (as `resolve_inputs` makes it): Wiro's field names, every
    input, floats and the seed as strings ("3.5", "123456"), whole numbers as JSON numbers."""
    unknown = [option for option in resolved if model.input(option) is None]
    if unknown:
        raise InvalidInput(
            unknown[0],
            f"{_short_name(model)} does not take {', '.join(unknown)}; "
            f"it takes: {', '.join(model.options)}.",
        )
    body: dict[str, Any] = {}
    for spec in model.inputs:
        value = resolved.get(spec.option)
        if value is None:
            if spec.required or spec.kind is InputKind.SEED or spec.default is not None:
                raise InvalidInput(spec.option, f"{spec.option} is missing from the request.")
            continue
        body[spec.name] = _wire_value(spec, _coerce(spec, value))
    return body


# -- one value ---------------------------------------------------------------------------------


def _coerce(spec: InputSpec, value: object, where: str = "") -> str | int | float:
    if spec.kind is InputKind.TEXT:
        return _coerce_text(spec, value)
    if spec.kind is InputKind.CHOICE:
        return _coerce_choice(spec, value)

    number = _parse_float(value) if spec.kind is InputKind.FLOAT else _parse_int(value)
    if number is None:
        raise _out_of_bounds(spec, value, where)
    low, high = _bounds(spec)
    if (low is not None and number < low) or (high is not None and number > high):
        raise _out_of_bounds(spec, number, where)
    if spec.kind is not InputKind.FLOAT and spec.multiple_of and number % spec.multiple_of:
        raise _out_of_bounds(spec, number, where)
    return number


def _coerce_text(spec: InputSpec, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(
            spec.option,
            f"{spec.option} must be {describe_allowed(spec)} (got {_shown(value)}).",
            describe_allowed(spec),
        )
    text = value.strip()
    if spec.required and not text:
        raise InvalidInput(spec.option, _required_message(spec), describe_allowed(spec))
    if spec.max_length is not None and len(text) > spec.max_length:
        raise InvalidInput(
            spec.option,
            f"{spec.option} must be at most {spec.max_length} characters (got {len(text)}).",
            describe_allowed(spec),
        )
    return text


def _coerce_choice(spec: InputSpec, value: object) -> str:
    allowed = describe_allowed(spec)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        text = None
    elif isinstance(value, str):
        text = value.strip()
    else:
        text = format_number(value)
    if text is not None:
        wanted = text.casefold()
        for choice in spec.choices:
            if choice.value.casefold() == wanted:
                return choice.value
        for choice in spec.choices:
            if choice.label and choice.label.casefold() == wanted:
                return choice.value
    raise InvalidInput(
        spec.option, f"{spec.option} must be {allowed} (got {_shown(value)}).", allowed
    )


def _parse_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _parse_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        number = float(value.strip())
    else:
        return None
    return number if math.isfinite(number) else None


def _wire_value(spec: InputSpec, value: str | int | float) -> str | int | float:
    if isinstance(value, str):
        return value
    if spec.wire == "string":
        return format_number(value)
    if spec.kind is InputKind.FLOAT:
        return float(value)
    return int(value)


# -- bounds and caps ---------------------------------------------------------------------------


def _bounds(spec: InputSpec) -> tuple[float | None, float | None]:
    if spec.kind is InputKind.SEED:
        low = SEED_MIN if spec.minimum is None else spec.minimum
        high = SEED_MAX if spec.maximum is None else spec.maximum
        return low, high
    return spec.minimum, spec.maximum


def _capped(spec: InputSpec, caps: InputCaps | None) -> tuple[InputSpec, str]:
    """`spec` with this server's cap applied, and words saying so for messages."""
    if caps is None:
        return spec, ""
    cap = {"samples": caps.max_samples, "steps": caps.max_steps}.get(spec.option)
    if cap is None or (spec.maximum is not None and cap >= spec.maximum):
        return spec, ""
    if spec.minimum is not None:
        cap = max(cap, int(spec.minimum))
    return replace(spec, maximum=cap), " on this server"


def _clamp(spec: InputSpec, value: str | int | float) -> str | int | float:
    """A default (server's or model's) brought within a server cap instead of refused."""
    if spec.kind not in _NUMERIC_KINDS or spec.maximum is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return min(value, int(spec.maximum))
    return min(value, spec.maximum)


# -- words -------------------------------------------------------------------------------------


def _out_of_bounds(spec: InputSpec, got: object, where: str) -> InvalidInput:
    allowed = describe_allowed(spec)
    return InvalidInput(
        spec.option, f"{spec.option} must be {allowed}{where} (got {_shown(got)}).", allowed
    )


def _required_message(spec: InputSpec) -> str:
    if spec.option == "prompt":
        return "prompt is required: describe the image you want."
    return f"{spec.option} is required."


def _shown(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return format_number(value)
    if isinstance(value, int) and abs(value) >= 10**40:
        return "a number of more than 40 digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _choice_name(value: str, label: str) -> str:
    return label or value or "''"


def _short_name(model: ModelSpec) -> str:
    return model.slug.rsplit("/", 1)[-1]
