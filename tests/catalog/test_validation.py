"""What a user is told when a request does not fit a model, and what a valid one becomes."""

from __future__ import annotations

import math
import random

import pytest

from bot.catalog import (
    InputCaps,
    InputKind,
    InputSpec,
    InvalidInput,
    ModelSpec,
    coerce,
    describe_allowed,
    format_number,
    resolve_inputs,
)
from tests.catalog.helpers import (
    ARS_NIJI,
    FACECHAIN,
    MODELS,
    PORTRAITPLUS,
    STUDIO_TRIGGER,
    case_id,
    inputs_of,
    sample_prompt,
    short,
)

NUMERIC = inputs_of(InputKind.INT, InputKind.FLOAT, InputKind.SEED)
CHOICES = inputs_of(InputKind.CHOICE)
TEXTS = inputs_of(InputKind.TEXT)
WITH_DEFAULT = [(m, s) for m in MODELS for s in m.inputs if s.default is not None]


def refused(model: ModelSpec, **given: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        resolve_inputs(model, {"prompt": "a lighthouse at dusk", **given})
    return caught.value


def below(spec: InputSpec) -> float:
    assert spec.minimum is not None
    return spec.minimum - (0.5 if spec.kind is InputKind.FLOAT else 1)


def above(spec: InputSpec) -> float:
    assert spec.maximum is not None
    return spec.maximum + (0.5 if spec.kind is InputKind.FLOAT else 1)


def range_words(spec: InputSpec) -> str:
    assert spec.minimum is not None and spec.maximum is not None
    return f"from {format_number(spec.minimum)} to {format_number(spec.maximum)}"


# -- every input of every seed model -----------------------------------------------------------


@pytest.mark.parametrize(("model", "spec"), WITH_DEFAULT, ids=map(case_id, WITH_DEFAULT))
def test_model_default_is_used_when_nobody_chose_a_value(model: ModelSpec, spec: InputSpec) -> None:
    resolved = resolve_inputs(model, {"prompt": "a lighthouse at dusk"})
    assert resolved[spec.option] == spec.default


@pytest.mark.parametrize(("model", "spec"), NUMERIC, ids=map(case_id, NUMERIC))
def test_number_below_its_range_is_refused_naming_the_option_and_range(
    model: ModelSpec, spec: InputSpec
) -> None:
    value = below(spec)
    error = refused(model, **{spec.option: value})
    assert error.option == spec.option
    assert error.message == (
        f"{spec.option} must be {describe_allowed(spec)} (got {format_number(value)})."
    )
    assert range_words(spec) in error.message


@pytest.mark.parametrize(("model", "spec"), NUMERIC, ids=map(case_id, NUMERIC))
def test_number_above_its_range_is_refused_naming_the_option_and_range(
    model: ModelSpec, spec: InputSpec
) -> None:
    value = above(spec)
    error = refused(model, **{spec.option: format_number(value)})  # typed, as on the CLI
    assert error.option == spec.option
    assert error.message.startswith(f"{spec.option} must be ")
    assert range_words(spec) in error.message
    assert f"(got {format_number(value)})" in error.message


@pytest.mark.parametrize("wrong", ["lots", "", True, [4], {"n": 4}, "1,5", "nan", "inf"])
@pytest.mark.parametrize(("model", "spec"), NUMERIC, ids=map(case_id, NUMERIC))
def test_number_of_the_wrong_type_is_refused_naming_the_option_and_range(
    model: ModelSpec, spec: InputSpec, wrong: object
) -> None:
    error = refused(model, **{spec.option: wrong})
    assert error.option == spec.option
    assert error.message.startswith(f"{spec.option} must be ")
    assert range_words(spec) in error.message
    assert error.allowed == describe_allowed(spec)


WHOLE = inputs_of(InputKind.INT, InputKind.SEED)


@pytest.mark.parametrize(("model", "spec"), WHOLE, ids=map(case_id, WHOLE))
def test_whole_number_inputs_refuse_fractions(model: ModelSpec, spec: InputSpec) -> None:
    for fraction in ("2.5", 2.5):
        error = refused(model, **{spec.option: fraction})
        assert error.option == spec.option
        assert "whole number" in error.message or "multiple of" in error.message


@pytest.mark.parametrize(("model", "spec"), NUMERIC, ids=map(case_id, NUMERIC))
def test_numbers_typed_as_text_are_accepted_at_both_ends_of_the_range(
    model: ModelSpec, spec: InputSpec
) -> None:
    assert spec.minimum is not None and spec.maximum is not None
    for edge in (spec.minimum, spec.maximum):
        resolved = resolve_inputs(model, {"prompt": "a cat", spec.option: format_number(edge)})
        assert resolved[spec.option] == edge
        assert type(resolved[spec.option]) is (float if spec.kind is InputKind.FLOAT else int)


@pytest.mark.parametrize(("model", "spec"), CHOICES, ids=map(case_id, CHOICES))
def test_unknown_choice_is_refused_listing_every_allowed_one(
    model: ModelSpec, spec: InputSpec
) -> None:
    error = refused(model, **{spec.option: "Foo"})
    assert error.option == spec.option
    assert error.message.startswith(f"{spec.option} must be one of: ")
    assert error.message.endswith("(got 'Foo').")
    for choice in spec.choices:
        assert (choice.label or choice.value) in error.message


@pytest.mark.parametrize(("model", "spec"), CHOICES, ids=map(case_id, CHOICES))
def test_every_allowed_choice_is_accepted_by_value_or_label_in_any_case(
    model: ModelSpec, spec: InputSpec
) -> None:
    for choice in spec.choices:
        for typed in {choice.value, choice.value.lower(), choice.label, choice.label.upper()}:
            resolved = resolve_inputs(model, {"prompt": "a cat", spec.option: typed})
            assert resolved[spec.option] == choice.value


@pytest.mark.parametrize(("model", "spec"), TEXTS, ids=map(case_id, TEXTS))
def test_text_longer_than_its_limit_is_refused(model: ModelSpec, spec: InputSpec) -> None:
    assert spec.max_length is not None
    error = refused(model, **{spec.option: "x" * (spec.max_length + 1)})
    assert error.option == spec.option
    assert error.message == (
        f"{spec.option} must be at most {spec.max_length} characters (got {spec.max_length + 1})."
    )
    resolved = resolve_inputs(model, {"prompt": "x", spec.option: "y" * spec.max_length})
    assert resolved[spec.option] == "y" * spec.max_length


@pytest.mark.parametrize(("model", "spec"), TEXTS, ids=map(case_id, TEXTS))
def test_text_inputs_refuse_numbers_and_other_non_text(model: ModelSpec, spec: InputSpec) -> None:
    for wrong in (42, ["a cat"]):
        error = refused(model, **{spec.option: wrong})
        assert error.option == spec.option
        assert error.message.startswith(f"{spec.option} must be text")


# -- the messages users read -------------------------------------------------------------------


def test_portraitplus_rejects_unknown_scheduler_naming_the_allowed_ones() -> None:
    error = refused(PORTRAITPLUS, scheduler="Foo")
    assert error.message == (
        "scheduler must be one of: EulerDiscreteScheduler, DDIMScheduler, LMSDiscreteScheduler, "
        "DPMSolverMultistepScheduler, PNDMScheduler, DDPMScheduler, "
        "EulerAncestralDiscreteScheduler (got 'Foo')."
    )


def test_steps_over_150_are_refused_with_the_range() -> None:
    error = refused(PORTRAITPLUS, steps=500)
    assert error.option == "steps"
    assert error.message == "steps must be a whole number from 1 to 150 (got 500)."


def test_width_that_is_not_a_multiple_of_8_is_refused() -> None:
    error = refused(FACECHAIN, width="1000.5")
    assert error.message == "width must be a multiple of 8 from 256 to 2048 (got '1000.5')."
    error = refused(FACECHAIN, height=1001)
    assert error.message == "height must be a multiple of 8 from 256 to 2048 (got 1001)."


def test_guidance_accepts_decimals_typed_as_text() -> None:
    resolved = resolve_inputs(PORTRAITPLUS, {"prompt": "a cat", "guidance": " 7.25 "})
    assert resolved["guidance"] == 7.25


@pytest.mark.parametrize("wrong", [math.nan, math.inf, -math.inf, "1e999", "NaN", "Infinity"])
def test_guidance_refuses_nan_and_infinity(wrong: object) -> None:
    error = refused(FACECHAIN, guidance=wrong)
    assert error.option == "guidance"
    assert "a number from 0 to 30" in error.message


def test_a_bool_is_not_a_number() -> None:
    error = refused(FACECHAIN, samples=True)
    assert error.message == "samples must be a whole number from 1 to 4 (got True)."


def test_facechain_rejects_scheduler_and_lists_what_it_takes() -> None:
    error = refused(FACECHAIN, scheduler="DDIMScheduler")
    assert error.option == "scheduler"
    assert error.message == (
        "Facechain does not take scheduler; it takes: "
        "prompt, samples, steps, guidance, seed, width, height."
    )


def test_portraitplus_rejects_refiner_and_lists_what_it_takes() -> None:
    error = refused(PORTRAITPLUS, refiner="YES", high_noise_frac=0.5)
    assert error.option == "refiner"
    assert error.message == (
        "portraitplus does not take refiner, high_noise_frac; it takes: prompt, negative_prompt, "
        "samples, steps, guidance, seed, clip_skip, width, height, scheduler."
    )


def test_wiro_field_names_are_not_options() -> None:
    error = refused(PORTRAITPLUS, negativePrompt="blurry")
    assert error.option == "negativePrompt"
    assert "does not take negativePrompt" in error.message


def test_options_given_as_none_count_as_not_given() -> None:
    resolved = resolve_inputs(
        PORTRAITPLUS, {"prompt": "a cat", "steps": None, "scheduler": None, "refiner": None}
    )
    assert resolved["steps"] == 30
    assert resolved["scheduler"] == "EulerDiscreteScheduler"


def test_describe_allowed_words_each_kind() -> None:
    def spec(model: ModelSpec, option: str) -> InputSpec:
        found = model.input(option)
        assert found is not None
        return found

    assert describe_allowed(spec(PORTRAITPLUS, "steps")) == "a whole number from 1 to 150"
    assert describe_allowed(spec(PORTRAITPLUS, "guidance")) == "a number from 0 to 30"
    assert describe_allowed(spec(PORTRAITPLUS, "width")) == "a multiple of 8 from 256 to 2048"
    assert describe_allowed(spec(PORTRAITPLUS, "seed")) == "a whole number from 0 to 4294967295"
    assert describe_allowed(spec(STUDIO_TRIGGER, "high_noise_frac")) == "a number from 0 to 1"
    assert describe_allowed(spec(STUDIO_TRIGGER, "refiner")) == "one of: NO, YES"
    assert describe_allowed(spec(PORTRAITPLUS, "prompt")) == "text of at most 2000 characters"


# -- prompt ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=short)
def test_prompt_is_required(model: ModelSpec) -> None:
    for given in ({}, {"prompt": None}, {"prompt": ""}, {"prompt": "   \n"}):
        with pytest.raises(InvalidInput) as caught:
            resolve_inputs(model, given)
        assert caught.value.option == "prompt"
        assert caught.value.message == "prompt is required: describe the image you want."


@pytest.mark.parametrize("model", MODELS, ids=short)
def test_sample_prompt_is_never_used_not_even_as_a_server_default(model: ModelSpec) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_inputs(model, {}, defaults={"prompt": sample_prompt(model)})
    assert caught.value.option == "prompt"
    resolved = resolve_inputs(model, {"prompt": "a red kite"}, defaults={"prompt": "other"})
    assert resolved["prompt"] == "a red kite"
    assert sample_prompt(model) not in resolved.values()


def test_prompt_is_trimmed() -> None:
    resolved = resolve_inputs(ARS_NIJI, {"prompt": "  ArsNijiStyle, a fox  \n"})
    assert resolved["prompt"] == "ArsNijiStyle, a fox"


# -- seed --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=short)
def test_seed_is_random_when_absent_and_always_in_the_result(model: ModelSpec) -> None:
    seeds = {resolve_inputs(model, {"prompt": "a cat"})["seed"] for _ in range(20)}
    assert len(seeds) > 1
    for seed in seeds:
        assert isinstance(seed, int)
        assert 0 <= seed <= 2**32 - 1


def test_seed_comes_from_the_given_random_generator() -> None:
    first = resolve_inputs(FACECHAIN, {"prompt": "a cat"}, rng=random.Random(7))["seed"]
    again = resolve_inputs(FACECHAIN, {"prompt": "a cat"}, rng=random.Random(7))["seed"]
    assert first == again == random.Random(7).randint(0, 2**32 - 1)


def test_given_seed_is_kept_as_a_whole_number() -> None:
    assert resolve_inputs(FACECHAIN, {"prompt": "a cat", "seed": "123456"})["seed"] == 123456
    assert resolve_inputs(FACECHAIN, {"prompt": "a cat", "seed": 0})["seed"] == 0
    top = resolve_inputs(FACECHAIN, {"prompt": "a cat", "seed": "4294967295"})["seed"]
    assert top == 4294967295


def test_seed_outside_32_bits_is_refused() -> None:
    error = refused(FACECHAIN, seed="4294967296")
    assert error.message == ("seed must be a whole number from 0 to 4294967295 (got 4294967296).")
    assert refused(FACECHAIN, seed=-1).option == "seed"


# -- server defaults and caps ------------------------------------------------------------------


def test_user_value_beats_server_default_which_beats_model_default() -> None:
    defaults = {"steps": 40, "guidance": "6", "scheduler": "ddimscheduler", "seed": 42}
    server_only = resolve_inputs(PORTRAITPLUS, {"prompt": "a cat"}, defaults=defaults)
    assert server_only["steps"] == 40
    assert server_only["guidance"] == 6.0
    assert server_only["scheduler"] == "DDIMScheduler"
    assert server_only["seed"] == 42
    assert server_only["clip_skip"] == 4  # no server default: the model's

    user = resolve_inputs(
        PORTRAITPLUS, {"prompt": "a cat", "steps": 12, "seed": 7}, defaults=defaults
    )
    assert user["steps"] == 12
    assert user["seed"] == 7


def test_server_defaults_for_options_a_model_does_not_take_are_ignored() -> None:
    resolved = resolve_inputs(FACECHAIN, {"prompt": "a cat"}, defaults={"scheduler": "X"})
    assert "scheduler" not in resolved


def test_a_broken_server_default_is_reported_as_the_servers() -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_inputs(PORTRAITPLUS, {"prompt": "a cat"}, defaults={"steps": 900})
    assert caught.value.option == "steps"
    assert caught.value.message == (
        "This server's default is not valid: steps must be a whole number from 1 to 150 (got 900)."
    )


def test_caps_refuse_user_values_over_the_server_limit() -> None:
    caps = InputCaps(max_samples=2, max_steps=40)
    error = refused_with_caps(PORTRAITPLUS, caps, samples=3)
    assert error.message == "samples must be a whole number from 1 to 2 on this server (got 3)."
    error = refused_with_caps(PORTRAITPLUS, caps, steps="41")
    assert error.message == "steps must be a whole number from 1 to 40 on this server (got 41)."
    ok = resolve_inputs(PORTRAITPLUS, {"prompt": "a cat", "samples": 2, "steps": 40}, caps=caps)
    assert (ok["samples"], ok["steps"]) == (2, 40)


def test_caps_bring_model_and_server_defaults_down_instead_of_refusing() -> None:
    caps = InputCaps(max_samples=2, max_steps=25)
    resolved = resolve_inputs(STUDIO_TRIGGER, {"prompt": "a cat"}, caps=caps)
    assert resolved["samples"] == 2  # model default 4
    assert resolved["steps"] == 25  # model default 60
    assert resolved["refiner_steps"] == 20  # not a step cap
    server = resolve_inputs(PORTRAITPLUS, {"prompt": "a cat"}, defaults={"steps": 50}, caps=caps)
    assert server["steps"] == 25


def test_caps_looser_than_the_model_change_nothing() -> None:
    caps = InputCaps(max_samples=10, max_steps=1000)
    error = refused_with_caps(PORTRAITPLUS, caps, samples=5)
    assert error.message == "samples must be a whole number from 1 to 4 (got 5)."
    error = refused_with_caps(PORTRAITPLUS, caps, steps=151)
    assert error.message == "steps must be a whole number from 1 to 150 (got 151)."


def refused_with_caps(model: ModelSpec, caps: InputCaps, **given: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        resolve_inputs(model, {"prompt": "a cat", **given}, caps=caps)
    return caught.value


# -- refiner labels ----------------------------------------------------------------------------


def test_studio_trigger_refiner_takes_yes_and_no() -> None:
    spec = STUDIO_TRIGGER.input("refiner")
    assert spec is not None
    assert coerce(spec, "YES") == ""
    assert coerce(spec, "no") == "--only_base_model"
    assert coerce(spec, "--ONLY_BASE_MODEL") == "--only_base_model"
    assert coerce(spec, "") == ""
    resolved = resolve_inputs(STUDIO_TRIGGER, {"prompt": "a cat"})
    assert resolved["refiner"] == ""
    with pytest.raises(InvalidInput) as caught:
        coerce(spec, "maybe")
    assert caught.value.message == "refiner must be one of: NO, YES (got 'maybe')."


def test_resolved_request_has_every_input_of_the_model() -> None:
    for model in MODELS:
        resolved = resolve_inputs(model, {"prompt": "a cat"})
        assert list(resolved) == list(model.options)
