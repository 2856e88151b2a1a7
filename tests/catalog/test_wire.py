"""The Run body sent to Wiro: field names and JSON types exactly as the seed pages' examples."""

from __future__ import annotations

import json
import random

import pytest

from bot.catalog import InvalidInput, ModelSpec, format_number, resolve_inputs, to_wire
from tests.catalog.helpers import (
    FACECHAIN,
    MODELS,
    PORTRAITPLUS,
    SEED_PAGES,
    STUDIO_TRIGGER,
    data_default,
    sample_prompt,
    short,
)


@pytest.mark.parametrize("model", MODELS, ids=short)
def test_wire_of_the_seed_defaults_is_the_seed_pages_run_example(model: ModelSpec) -> None:
    # The sample prompt and seed are only ever sent because a user typed them, as here.
    given = {"prompt": sample_prompt(model), "seed": data_default(model, "seed")}
    body = to_wire(model, resolve_inputs(model, given))
    example = SEED_PAGES[model.slug]["run_example"]
    assert list(body) == list(example)
    assert {k: type(v) for k, v in body.items()} == {k: type(v) for k, v in example.items()}
    assert body == example
    assert json.loads(json.dumps(body)) == example


def test_studio_trigger_sends_scale_4_high_noise_frac_and_an_empty_refiner() -> None:
    body = to_wire(STUDIO_TRIGGER, resolve_inputs(STUDIO_TRIGGER, {"prompt": "a cat", "seed": 5}))
    assert body["scale"] == "4"
    assert body["highNoiseFrac"] == "0.8"
    assert body["stepsRefiner"] == 20
    assert body["refiner"] == ""
    assert body["seed"] == "5"


def test_user_values_go_out_with_wiro_field_names_and_wire_types() -> None:
    resolved = resolve_inputs(
        PORTRAITPLUS,
        {
            "prompt": "portrait+ style a sailor",
            "negative_prompt": "blurry",
            "guidance": "6.25",
            "clip_skip": "2",
            "width": "768",
            "scheduler": "pndmscheduler",
        },
        rng=random.Random(1),
    )
    body = to_wire(PORTRAITPLUS, resolved)
    assert body["negativePrompt"] == "blurry"
    assert body["scale"] == "6.25"
    assert body["clipSkip"] == 2
    assert body["width"] == 768
    assert body["scheduler"] == "PNDMScheduler"
    assert body["seed"] == str(resolved["seed"])


def test_to_wire_accepts_a_resolved_request_read_back_from_storage() -> None:
    resolved = resolve_inputs(FACECHAIN, {"prompt": "a cat", "seed": 99})
    stored = json.loads(json.dumps(resolved))
    assert to_wire(FACECHAIN, stored) == to_wire(FACECHAIN, resolved)


def test_to_wire_refuses_a_request_missing_its_seed() -> None:
    resolved = resolve_inputs(FACECHAIN, {"prompt": "a cat"})
    del resolved["seed"]
    with pytest.raises(InvalidInput) as caught:
        to_wire(FACECHAIN, resolved)
    assert caught.value.option == "seed"


def test_to_wire_refuses_options_the_model_does_not_take() -> None:
    resolved = {**resolve_inputs(FACECHAIN, {"prompt": "a cat"}), "scheduler": "DDIMScheduler"}
    with pytest.raises(InvalidInput) as caught:
        to_wire(FACECHAIN, resolved)
    assert caught.value.option == "scheduler"


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (3.5, "3.5"),
        (4.0, "4"),
        (4, "4"),
        (0.8, "0.8"),
        (7.25, "7.25"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e-7, "0.0000001"),
        (0.0, "0"),
        (30, "30"),
    ],
)
def test_numbers_are_written_without_trailing_junk(number: float, text: str) -> None:
    assert format_number(number) == text
