"""Build model specs: the five seed models from models.json, others from Wiro's Tool/Detail.

Both roads share one table (models.json "options"): Wiro's field name -> the bot's fixed
snake_case option name, label, description and bounds. A model input may override any of them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from bot.catalog.spec import Choice, InputKind, InputSpec, ModelSpec, SizePreset
from bot.catalog.validation import InvalidInput, coerce
from bot.wiro.types import ToolDetail, ToolInput

#: The seed pages' input types (and Tool/Detail's) -> kinds. "text" named seed is a seed.
_SEED_TYPES = {
    "number": InputKind.INT,
    "float": InputKind.FLOAT,
    "text": InputKind.TEXT,
    "textarea": InputKind.TEXT,
    "select": InputKind.CHOICE,
}
#: Tool/Detail types the bot can fill in from a slash command.
_TEXT_TYPES = frozenset({"text", "textarea", "string"})
_NUMBER_TYPES = frozenset({"number", "numeric", "range", "slider", "integer", "float"})
_CHOICE_TYPES = frozenset({"select", "radio", "dropdown"})
#: Categories that name a base model, most specific first.
_BASES = (
    ("lora-flux", "Flux LoRA"),
    ("lora-sdxl", "SDXL LoRA"),
    ("lora-sd", "Stable Diffusion LoRA"),
    ("flux", "Flux"),
    ("sdxl", "SDXL"),
    ("sd", "Stable Diffusion"),
)
_NSFW_WORDS = ("nsfw", "adult", "explicit")
_OPTION_NAME_LIMIT = 32  # Discord's limit for an option's name
_DESCRIPTION_LIMIT = 100  # Discord's limit for an autocomplete choice or option description


class UnsupportedModel(ValueError):
    """A Tool/Detail the bot cannot run (no prompt, or a required input it cannot provide)."""


@dataclass(frozen=True)
class ToolConversion:
    """A spec read from Tool/Detail and, as sentences, the inputs it leaves out."""

    spec: ModelSpec
    skipped: tuple[str, ...] = ()


def load_seed_models() -> list[ModelSpec]:
    """The five seed models, from the package's models.json, in its order."""
    data = _data()
    return [_seed_model(entry, data) for entry in data["models"]]


def spec_from_tool_detail(detail: ToolDetail) -> ModelSpec:
    """A spec (source "wiro") for a model read through Tool/Detail; see `convert_tool_detail`."""
    return convert_tool_detail(detail).spec


def convert_tool_detail(detail: ToolDetail) -> ToolConversion:
    """Convert Tool/Detail into a spec, noting the inputs the bot cannot provide.

    Raises UnsupportedModel when the model has no prompt, or requires an input the bot cannot
    provide (an image upload, a checkbox...).
    """
    slug = detail.slug.strip()
    if not is_slug(slug):
        raise UnsupportedModel(f"'{slug}' is not an owner/project slug.")
    known = _data()["options"]
    known_by_option = {entry["option"]: entry for entry in known.values()}

    inputs: list[InputSpec] = []
    skipped: list[str] = []
    taken: set[str] = set()
    for item in detail.inputs:
        kind = _tool_kind(item)
        if kind is None:
            if item.required:
                raise UnsupportedModel(
                    f"{slug} requires '{item.id}' ({item.type}), which the bot cannot provide."
                )
            skipped.append(
                f"input '{item.id}' ({item.type}) is left out: the bot cannot provide it."
            )
            continue
        entry = known.get(item.id)
        option = entry["option"] if entry else _option_name(item.id)
        if option in taken:
            option = _option_name(item.id)
        if option in taken or not option:
            skipped.append(f"input '{item.id}' is left out: its option name clashes with another.")
            continue
        entry = entry or known_by_option.get(option, {})
        try:
            input_spec = _tool_input(item, option, kind, entry)
        except ValueError as exc:
            if item.required:
                raise UnsupportedModel(f"{slug}: input '{item.id}': {exc}") from exc
            skipped.append(f"input '{item.id}' is left out: {exc}")
            continue
        taken.add(option)
        inputs.append(input_spec)

    prompt = next((spec for spec in inputs if spec.option == "prompt"), None)
    if prompt is None or prompt.kind is not InputKind.TEXT:
        raise UnsupportedModel(f"{slug} has no text prompt input.")

    base = _base_model(detail.categories)
    project = slug.rsplit("/", 1)[-1]
    name = detail.name.strip() or project
    spec = ModelSpec(
        slug=slug,
        display_name=name,
        description=_one_line(detail.description, name),
        base_model=base,
        trigger_words=(),
        nsfw=_looks_nsfw(detail),
        inputs=tuple(inputs),
        size_presets=_presets_for(base, inputs),
        source="wiro",
    )
    return ToolConversion(spec=spec, skipped=tuple(skipped))


# -- models.json -------------------------------------------------------------------------------


@functools.cache
def _data() -> dict[str, Any]:
    text = resources.files("bot.catalog").joinpath("models.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _seed_model(entry: Mapping[str, Any], data: Mapping[str, Any]) -> ModelSpec:
    slug = entry["slug"]
    inputs = tuple(_seed_input(slug, item, data["options"]) for item in entry["inputs"])
    preset_set = entry.get("size_presets", [])
    if isinstance(preset_set, str):
        preset_set = data["size_preset_sets"][preset_set]
    return ModelSpec(
        slug=slug,
        display_name=entry["display_name"],
        description=entry["description"],
        base_model=entry["base_model"],
        trigger_words=tuple(entry.get("trigger_words", ())),
        nsfw=bool(entry.get("nsfw", False)),
        inputs=inputs,
        size_presets=tuple(SizePreset(p["label"], p["width"], p["height"]) for p in preset_set),
        source="seed",
    )


def _seed_input(slug: str, item: Mapping[str, Any], known: Mapping[str, Any]) -> InputSpec:
    name = item["name"]
    where = f"models.json: {slug}: input {name}"
    if item["type"] not in _SEED_TYPES:
        raise ValueError(f"{where}: unknown type {item['type']!r}")
    entry = {**known.get(name, {}), **item}
    option = entry.get("option") or _option_name(name)
    kind = _SEED_TYPES[item["type"]]
    if kind is InputKind.TEXT and option == "seed":
        kind = InputKind.SEED
    spec = InputSpec(
        name=name,
        option=option,
        kind=kind,
        label=entry.get("label") or _label(option),
        description=entry.get("description", ""),
        # The prompt is always the user's; a missing seed is random.
        default=None if kind is InputKind.SEED else _typed(kind, item.get("default")),
        required=bool(entry.get("required", False)),
        minimum=entry.get("min"),
        maximum=entry.get("max"),
        multiple_of=entry.get("multiple_of"),
        max_length=entry.get("max_length"),
        choices=_choices((o["value"], o["label"]) for o in item.get("options", ())),
        wire=item.get("wire", "number"),
    )
    if spec.default is not None:
        try:
            coerce(spec, spec.default)
        except InvalidInput as exc:
            raise ValueError(f"{where}: the default does not pass its own rules: {exc}") from exc
    return spec


# -- Tool/Detail -------------------------------------------------------------------------------


def _tool_kind(item: ToolInput) -> InputKind | None:
    kind = item.type.strip().lower()
    if item.id == "seed" and kind in _TEXT_TYPES | _NUMBER_TYPES:
        return InputKind.SEED
    if kind in _TEXT_TYPES:
        return InputKind.TEXT
    if kind in _CHOICE_TYPES:
        return InputKind.CHOICE if item.options else None
    if kind == "float":
        return InputKind.FLOAT
    if kind in _NUMBER_TYPES:
        numbers = [item.min, item.max, item.step, _float_or_none(item.default)]
        whole = all(n is None or float(n).is_integer() for n in numbers)
        return InputKind.INT if whole else InputKind.FLOAT
    return None


def _tool_input(
    item: ToolInput, option: str, kind: InputKind, entry: Mapping[str, Any]
) -> InputSpec:
    minimum = item.min if item.min is not None else entry.get("min")
    maximum = item.max if item.max is not None else entry.get("max")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ValueError(f"its minimum {minimum} is above its maximum {maximum}")
    multiple_of = entry.get("multiple_of")
    step = item.step
    stepped = kind is InputKind.INT and step is not None and step.is_integer() and step > 1
    if stepped and step is not None and (minimum is None or minimum % step == 0):
        multiple_of = int(step)
    required = option == "prompt" or item.required
    default: str | int | float | None = None
    if option != "prompt" and kind is not InputKind.SEED:
        default = _typed(kind, item.default, strict=False)
    choices = _choices((str(o.value) if o.value is not None else "", o.label) for o in item.options)
    if kind is InputKind.CHOICE and all(c.value != default for c in choices):
        default = None
    spec = InputSpec(
        name=item.id,
        option=option,
        kind=kind,
        label=entry.get("label") or _label(option),
        description=entry.get("description") or _one_line(item.note, ""),
        default=default,
        required=required,
        minimum=minimum,
        maximum=maximum,
        multiple_of=multiple_of,
        max_length=entry.get("max_length"),
        choices=choices,
        wire="number" if kind is InputKind.INT else "string",
    )
    if spec.default is not None:
        try:
            coerce(spec, spec.default)
        except InvalidInput:
            # Wiro's own default breaks its own bounds: leave it to Wiro.
            spec = replace(spec, default=None)
    return spec


def _base_model(categories: list[str]) -> str:
    wanted = {c.strip().lower() for c in categories}
    return next((name for category, name in _BASES if category in wanted), "")


def _looks_nsfw(detail: ToolDetail) -> bool:
    words = " ".join([*detail.categories, detail.name, detail.slug]).lower()
    return any(word in words for word in _NSFW_WORDS)


def _presets_for(base: str, inputs: list[InputSpec]) -> tuple[SizePreset, ...]:
    by_option = {spec.option: spec for spec in inputs}
    width, height = by_option.get("width"), by_option.get("height")
    if width is None or height is None:
        return ()
    if width.kind is not InputKind.INT or height.kind is not InputKind.INT:
        return ()
    if base:
        name = "sd15" if base.startswith("Stable Diffusion") else "1024"
    else:
        usual = width.default if isinstance(width.default, int) else 1024
        name = "sd15" if usual <= 768 else "1024"
    presets = [
        SizePreset(p["label"], p["width"], p["height"]) for p in _data()["size_preset_sets"][name]
    ]
    return tuple(p for p in presets if _fits(width, p.width) and _fits(height, p.height))


def _fits(spec: InputSpec, value: int) -> bool:
    try:
        coerce(spec, value)
    except InvalidInput:
        return False
    return True


# -- small helpers -----------------------------------------------------------------------------


def _choices(pairs: Any) -> tuple[Choice, ...]:
    """Choices in order, each value once (the seeds list EulerDiscreteScheduler twice)."""
    seen: set[str] = set()
    result: list[Choice] = []
    for value, label in pairs:
        value = "" if value is None else str(value)
        if value in seen:
            continue
        seen.add(value)
        result.append(Choice(value=value, label=str(label or value)))
    return tuple(result)


def _typed(kind: InputKind, raw: Any, *, strict: bool = True) -> str | int | float | None:
    """A default as its kind's Python type; None when absent (or unreadable, unless strict)."""
    if raw is None or (raw == "" and kind in (InputKind.INT, InputKind.FLOAT)):
        return None
    try:
        if kind is InputKind.INT:
            number = float(raw)
            if not number.is_integer():
                raise ValueError(f"{raw!r} is not a whole number")
            return int(number)
        if kind is InputKind.FLOAT:
            return float(raw)
    except (TypeError, ValueError):
        if strict:
            raise
        return None
    return str(raw)


def _float_or_none(raw: Any) -> float | None:
    if raw is None or raw == "" or isinstance(raw, bool):
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def _option_name(wiro_name: str) -> str:
    """camelCase (or anything) -> a snake_case option name Discord accepts."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", wiro_name.strip())
    name = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    return re.sub(r"_+", "_", name)[:_OPTION_NAME_LIMIT]


def _label(option: str) -> str:
    return option.replace("_", " ").capitalize()


def _one_line(text: str, fallback: str) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "") or fallback
    if len(line) > _DESCRIPTION_LIMIT:
        line = line[: _DESCRIPTION_LIMIT - 1].rstrip() + "…"
    return line


def is_slug(slug: str) -> bool:
    """Whether `slug` looks like Wiro's owner/project."""
    return re.fullmatch(r"[\w.-]+/[\w.-]+", slug) is not None
