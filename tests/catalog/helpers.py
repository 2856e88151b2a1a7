"""Shared test data: the seed pages, the shipped models.json, and the specs built from them."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from bot.catalog import InputKind, InputSpec, ModelSpec, load_seed_models

#: Each seed page's Tool Inputs and Run example body, copied from shared/seeds/*.txt.
SEED_PAGES: dict[str, Any] = {
    slug: page
    for slug, page in json.loads(
        (Path(__file__).parent / "seed_pages.json").read_text(encoding="utf-8")
    ).items()
    if not slug.startswith("_")
}

#: The shipped data file, read raw.
DATA: dict[str, Any] = json.loads(
    resources.files("bot.catalog").joinpath("models.json").read_text(encoding="utf-8")
)
DATA_BY_SLUG: dict[str, Any] = {entry["slug"]: entry for entry in DATA["models"]}

MODELS: list[ModelSpec] = load_seed_models()
BY_SLUG: dict[str, ModelSpec] = {model.slug: model for model in MODELS}

FACECHAIN = BY_SLUG["geelong_hillbilly/Facechain"]
PORTRAITPLUS = BY_SLUG["wavymulder/portraitplus"]
COMICS = BY_SLUG["Adel_AI/Comics-Factory-v1"]
ARS_NIJI = BY_SLUG["ArsMachina/Ars-Niji-Style-v1"]
STUDIO_TRIGGER = BY_SLUG["Hevok/Studio-Trigger"]


def short(model: ModelSpec) -> str:
    return model.slug.rsplit("/", 1)[-1]


def inputs_of(*kinds: InputKind) -> list[tuple[ModelSpec, InputSpec]]:
    return [(model, spec) for model in MODELS for spec in model.inputs if spec.kind in kinds]


def case_id(pair: tuple[ModelSpec, InputSpec]) -> str:
    model, spec = pair
    return f"{short(model)}-{spec.option}"


def sample_prompt(model: ModelSpec) -> str:
    prompt = next(i for i in DATA_BY_SLUG[model.slug]["inputs"] if i["name"] == "prompt")
    text: str = prompt["sample_prompt"]
    return text


def data_default(model: ModelSpec, wiro_name: str) -> Any:
    item = next(i for i in DATA_BY_SLUG[model.slug]["inputs"] if i["name"] == wiro_name)
    return item.get("default")
