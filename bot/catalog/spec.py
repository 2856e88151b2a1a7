"""Typed model specs: what a model takes, as the catalog and validation see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class InputKind(StrEnum):
    TEXT = "text"  # free text (prompt, negative prompt)
    INT = "int"  # whole number
    FLOAT = "float"  # decimal number
    SEED = "seed"  # whole number 0..2**32-1; random when absent
    CHOICE = "choice"  # one of `choices`


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One input of a model.

    `name` is Wiro's field name, sent as is (`negativePrompt`); `option` is the snake_case name
    users type in Discord and on the command line (`negative_prompt`).
    """

    name: str
    option: str
    kind: InputKind
    label: str
    description: str = ""
    default: str | int | float | None = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    multiple_of: int | None = None
    max_length: int | None = None
    choices: tuple[Choice, ...] = ()
    #: How the value goes over the wire: "number" (JSON number) or "string" (the seeds send
    #: floats and the seed as strings: "scale": "3.5", "seed": "123456").
    wire: str = "number"


@dataclass(frozen=True, slots=True)
class SizePreset:
    label: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class ModelSpec:
    slug: str  # "owner/project", as in /Run/{owner}/{project}
    display_name: str
    description: str
    base_model: str
    trigger_words: tuple[str, ...] = ()
    nsfw: bool = False
    inputs: tuple[InputSpec, ...] = ()
    size_presets: tuple[SizePreset, ...] = ()
    #: "seed" for the five shipped models, "wiro" for ones read through Tool/Detail.
    source: str = "seed"
    _by_option: dict[str, InputSpec] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_option.update({spec.option: spec for spec in self.inputs})

    def input(self, option: str) -> InputSpec | None:
        """The input users call `option` (snake_case), or None."""
        return self._by_option.get(option)

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(spec.option for spec in self.inputs)
