"""models.json says what the seed pages say, and the specs built from it are what users get."""

from __future__ import annotations

import pytest

from bot.catalog import InputKind, InvalidInput, coerce
from tests.catalog.helpers import (
    BY_SLUG,
    DATA_BY_SLUG,
    MODELS,
    PORTRAITPLUS,
    SEED_PAGES,
    STUDIO_TRIGGER,
)

FIXED_OPTION_NAMES = {
    "prompt": "prompt",
    "negativePrompt": "negative_prompt",
    "samples": "samples",
    "steps": "steps",
    "scale": "guidance",
    "seed": "seed",
    "width": "width",
    "height": "height",
    "scheduler": "scheduler",
    "clipSkip": "clip_skip",
    "refiner": "refiner",
    "highNoiseFrac": "high_noise_frac",
    "stepsRefiner": "refiner_steps",
}
KIND_OF_SEED_TYPE = {
    "number": InputKind.INT,
    "float": InputKind.FLOAT,
    "textarea": InputKind.TEXT,
    "select": InputKind.CHOICE,
    "text": InputKind.SEED,  # the only `text` input on the seed pages is the seed
}


def test_the_five_seed_models_ship_in_the_seed_pages_order() -> None:
    assert [model.slug for model in MODELS] == list(SEED_PAGES)
    assert all(model.source == "seed" for model in MODELS)


@pytest.mark.parametrize("slug", list(SEED_PAGES))
def test_data_keeps_each_seed_input_name_type_default_and_options_in_order(slug: str) -> None:
    page_inputs = SEED_PAGES[slug]["inputs"]
    data_inputs = DATA_BY_SLUG[slug]["inputs"]
    assert [i["name"] for i in data_inputs] == [i["name"] for i in page_inputs]
    for page, data in zip(page_inputs, data_inputs, strict=True):
        assert data["type"] == page["type"], page["name"]
        recorded = data["sample_prompt"] if page["name"] == "prompt" else data["default"]
        assert str(recorded) == page["default"], page["name"]
        assert data.get("options") == page.get("options"), page["name"]


@pytest.mark.parametrize("slug", list(SEED_PAGES))
def test_spec_inputs_follow_the_seed_with_fixed_option_names_and_kinds(slug: str) -> None:
    model = BY_SLUG[slug]
    page_inputs = SEED_PAGES[slug]["inputs"]
    assert [spec.name for spec in model.inputs] == [i["name"] for i in page_inputs]
    for spec, page in zip(model.inputs, page_inputs, strict=True):
        assert spec.option == FIXED_OPTION_NAMES[spec.name]
        assert spec.kind is KIND_OF_SEED_TYPE[page["type"]]
        assert model.input(spec.option) is spec


@pytest.mark.parametrize("slug", list(SEED_PAGES))
def test_number_defaults_are_typed_and_pass_their_own_bounds(slug: str) -> None:
    model = BY_SLUG[slug]
    for spec in model.inputs:
        if spec.kind is InputKind.INT:
            assert type(spec.default) is int, spec.option
        elif spec.kind is InputKind.FLOAT:
            assert type(spec.default) is float, spec.option
        if spec.default is not None:
            assert coerce(spec, spec.default) == spec.default


def test_wire_format_is_string_for_floats_and_the_seed_and_number_for_whole_numbers() -> None:
    for model in MODELS:
        for spec in model.inputs:
            expected = "number" if spec.kind is InputKind.INT else "string"
            assert spec.wire == expected, (model.slug, spec.option)


def test_prompt_is_required_and_has_no_default_even_though_the_seed_pages_give_one() -> None:
    for model in MODELS:
        prompt = model.input("prompt")
        assert prompt is not None
        assert prompt.required
        assert prompt.default is None
        assert prompt.max_length == 2000


def test_seed_has_no_default_so_a_request_without_one_gets_a_random_seed() -> None:
    for model in MODELS:
        seed = model.input("seed")
        assert seed is not None
        assert seed.default is None
        assert (seed.minimum, seed.maximum) == (0, 2**32 - 1)


def test_scheduler_lists_each_scheduler_once_although_the_seed_repeats_one() -> None:
    for model in (PORTRAITPLUS, STUDIO_TRIGGER):
        scheduler = model.input("scheduler")
        assert scheduler is not None
        values = [choice.value for choice in scheduler.choices]
        assert values == [
            "EulerDiscreteScheduler",
            "DDIMScheduler",
            "LMSDiscreteScheduler",
            "DPMSolverMultistepScheduler",
            "PNDMScheduler",
            "DDPMScheduler",
            "EulerAncestralDiscreteScheduler",
        ]
        assert scheduler.default == "EulerDiscreteScheduler"


def test_studio_trigger_refiner_is_yes_by_default_sent_as_an_empty_string() -> None:
    refiner = STUDIO_TRIGGER.input("refiner")
    assert refiner is not None
    assert [(c.value, c.label) for c in refiner.choices] == [
        ("--only_base_model", "NO"),
        ("", "YES"),
    ]
    assert refiner.default == ""


def test_only_studio_trigger_is_marked_nsfw() -> None:
    assert [model.slug for model in MODELS if model.nsfw] == ["Hevok/Studio-Trigger"]


def test_trigger_words_match_the_api_notes() -> None:
    assert BY_SLUG["geelong_hillbilly/Facechain"].trigger_words == ("facechain",)
    assert PORTRAITPLUS.trigger_words == ("portrait+ style",)
    assert BY_SLUG["Adel_AI/Comics-Factory-v1"].trigger_words == ("ComicsFact1 style",)
    assert BY_SLUG["ArsMachina/Ars-Niji-Style-v1"].trigger_words == ("ArsNijiStyle",)
    assert STUDIO_TRIGGER.trigger_words[:2] == ("score_9", "score_8_up")


@pytest.mark.parametrize("slug", list(SEED_PAGES))
def test_size_presets_fit_the_model_and_say_their_size(slug: str) -> None:
    model = BY_SLUG[slug]
    width, height = model.input("width"), model.input("height")
    assert width is not None and height is not None
    assert model.size_presets
    assert model.size_presets[0].label.startswith("Square")
    for preset in model.size_presets:
        coerce(width, preset.width)
        coerce(height, preset.height)
        assert f"{preset.width}×{preset.height}" in preset.label
    default_size = (width.default, height.default)
    assert default_size in {(p.width, p.height) for p in model.size_presets}


def test_sd15_model_gets_512_presets_and_flux_and_sdxl_get_1024_ones() -> None:
    assert {p.width for p in PORTRAITPLUS.size_presets} <= {512, 576, 768}
    for model in MODELS:
        if model is not PORTRAITPLUS:
            assert ("Square 1024×1024", 1024, 1024) in {
                (p.label, p.width, p.height) for p in model.size_presets
            }
            assert any(p.label == "Portrait 832×1216" for p in model.size_presets)


def test_descriptions_are_one_short_line_for_autocomplete() -> None:
    for model in MODELS:
        assert model.description and "\n" not in model.description
        assert len(model.description) <= 100
        assert model.display_name in model.description


def test_every_seed_default_is_accepted_by_its_own_rules() -> None:
    for model in MODELS:
        for spec in model.inputs:
            if spec.default is None:
                continue
            try:
                coerce(spec, spec.default)
            except InvalidInput as exc:  # pragma: no cover - the assertion explains
                pytest.fail(f"{model.slug} {spec.option}: {exc}")
