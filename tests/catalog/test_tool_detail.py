"""Models added by slug: Wiro's Tool/Detail turned into the same kind of spec as the seeds."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bot.catalog import (
    InputKind,
    InvalidInput,
    UnsupportedModel,
    convert_tool_detail,
    resolve_inputs,
    spec_from_tool_detail,
    to_wire,
)
from bot.wiro.types import ToolDetail

#: Tool/Detail for a Flux LoRA, flattened from tool[0].parameters[].items[] the way Wiro
#: writes it: numbers as strings, i18n keys as labels, an upload and a checkbox among the inputs.
WATERCOLOR: dict[str, Any] = {
    "slug": "paintbox/Watercolor-Flux",
    "name": "Watercolor Flux",
    "description": "Soft watercolour washes on cold-press paper.\nTrained on 40 paintings.",
    "categories": ["model", "text-to-image", "checkpoint-file", "lora-flux", "bf16"],
    "inputs": [
        {
            "id": "prompt",
            "type": "textarea",
            "label": "prompt",
            "required": "true",
            "default": "WTRCLR, a fox asleep in the snow",
            "note": "prompt-help",
        },
        {"id": "inputImage", "type": "fileinput", "label": "inputimage", "required": False},
        {
            "id": "negativePrompt",
            "type": "textarea",
            "label": "negativeprompt",
            "default": "blurry",
        },
        {"id": "samples", "type": "number", "label": "numberofoutputs", "default": "1"},
        {
            "id": "steps",
            "type": "range",
            "label": "inferencesteps",
            "default": "28",
            "min": "1",
            "max": "50",
            "step": "1",
        },
        {
            "id": "scale",
            "type": "float",
            "label": "guidancescale",
            "default": "3.5",
            "min": "0",
            "max": "20",
            "step": "0.1",
        },
        {"id": "seed", "type": "text", "label": "seed", "default": "1234"},
        {
            "id": "width",
            "type": "range",
            "label": "width",
            "default": "1024",
            "min": "256",
            "max": "1280",
            "step": "64",
        },
        {"id": "height", "type": "number", "label": "height", "default": "1024"},
        {
            "id": "loraStrength",
            "type": "range",
            "label": "lora-strength",
            "default": "1",
            "min": "0",
            "max": "2",
            "step": "0.05",
            "note": "How strongly the LoRA applies",
        },
        {
            "id": "outputFormat",
            "type": "select",
            "label": "output-format",
            "default": "png",
            "options": [{"value": "png", "label": "PNG"}, {"value": "jpg", "label": "JPEG"}],
        },
        {"id": "safetyChecker", "type": "checkbox", "label": "safety-checker", "default": "1"},
    ],
}


def detail(**changes: Any) -> ToolDetail:
    payload = copy.deepcopy(WATERCOLOR)
    payload.update(changes)
    return ToolDetail.model_validate(payload)


def test_tool_detail_becomes_a_wiro_spec_with_the_bots_option_names() -> None:
    model = spec_from_tool_detail(detail())
    assert model.slug == "paintbox/Watercolor-Flux"
    assert model.source == "wiro"
    assert model.display_name == "Watercolor Flux"
    assert model.description == "Soft watercolour washes on cold-press paper."
    assert model.base_model == "Flux LoRA"
    assert model.nsfw is False
    assert model.options == (
        "prompt",
        "negative_prompt",
        "samples",
        "steps",
        "guidance",
        "seed",
        "width",
        "height",
        "lora_strength",
        "output_format",
    )
    assert [spec.name for spec in model.inputs][4] == "scale"


def test_inputs_the_bot_cannot_provide_are_left_out_and_noted() -> None:
    converted = convert_tool_detail(detail())
    assert converted.spec.input("input_image") is None
    assert converted.spec.input("safety_checker") is None
    assert converted.skipped == (
        "input 'inputImage' (fileinput) is left out: the bot cannot provide it.",
        "input 'safetyChecker' (checkbox) is left out: the bot cannot provide it.",
    )


def test_wiro_bounds_win_and_known_names_fall_back_to_the_usual_ones() -> None:
    model = spec_from_tool_detail(detail())

    def spec(option: str) -> Any:
        found = model.input(option)
        assert found is not None
        return found

    steps = spec("steps")
    assert (steps.kind, steps.minimum, steps.maximum, steps.default) == (InputKind.INT, 1, 50, 28)
    guidance = spec("guidance")
    assert (guidance.kind, guidance.minimum, guidance.maximum) == (InputKind.FLOAT, 0, 20)
    assert guidance.default == 3.5 and guidance.wire == "string"
    width = spec("width")
    assert (width.minimum, width.maximum, width.multiple_of) == (256, 1280, 64)
    height = spec("height")  # Wiro gives no bounds: the usual ones
    assert (height.minimum, height.maximum, height.multiple_of) == (256, 2048, 8)
    samples = spec("samples")
    assert (samples.minimum, samples.maximum, samples.default) == (1, 4, 1)
    strength = spec("lora_strength")
    assert (strength.kind, strength.minimum, strength.maximum) == (InputKind.FLOAT, 0, 2)
    assert strength.default == 1.0
    assert strength.description == "How strongly the LoRA applies"
    fmt = spec("output_format")
    assert fmt.kind is InputKind.CHOICE and fmt.default == "png"
    assert [(c.value, c.label) for c in fmt.choices] == [("png", "PNG"), ("jpg", "JPEG")]


def test_tool_detail_prompt_is_required_and_its_sample_is_never_used() -> None:
    model = spec_from_tool_detail(detail())
    prompt = model.input("prompt")
    assert prompt is not None
    assert prompt.required and prompt.default is None and prompt.max_length == 2000
    with pytest.raises(InvalidInput) as caught:
        resolve_inputs(model, {})
    assert caught.value.option == "prompt"


def test_tool_detail_model_validates_and_goes_out_with_wiro_names() -> None:
    model = spec_from_tool_detail(detail())
    with pytest.raises(InvalidInput) as caught:
        resolve_inputs(model, {"prompt": "a heron", "steps": 51})
    assert caught.value.message == "steps must be a whole number from 1 to 50 (got 51)."
    with pytest.raises(InvalidInput) as caught:
        resolve_inputs(model, {"prompt": "a heron", "width": 1000})
    assert caught.value.message == "width must be a multiple of 64 from 256 to 1280 (got 1000)."

    resolved = resolve_inputs(model, {"prompt": "a heron", "output_format": "jpeg", "seed": 8})
    assert to_wire(model, resolved) == {
        "prompt": "a heron",
        "negativePrompt": "blurry",
        "samples": 1,
        "steps": 28,
        "scale": "3.5",
        "seed": "8",
        "width": 1024,
        "height": 1024,
        "loraStrength": "1",
        "outputFormat": "jpg",
    }


def test_tool_detail_seed_is_random_not_wiros_example() -> None:
    model = spec_from_tool_detail(detail())
    seeds = {resolve_inputs(model, {"prompt": "a heron"})["seed"] for _ in range(10)}
    assert len(seeds) > 1


def test_size_presets_for_a_flux_model_fit_its_bounds() -> None:
    model = spec_from_tool_detail(detail())
    labels = [preset.label for preset in model.size_presets]
    assert labels[0] == "Square 1024×1024"
    assert "Wide 1344×768" not in labels  # wider than this model's 1280
    assert all(p.width % 64 == 0 and p.width <= 1280 for p in model.size_presets)


def test_sd_model_gets_512_presets() -> None:
    model = spec_from_tool_detail(detail(categories=["model", "sd", "text-to-image"]))
    assert model.base_model == "Stable Diffusion"
    assert model.size_presets[0].label == "Square 512×512"


def test_nsfw_category_marks_the_model_nsfw() -> None:
    model = spec_from_tool_detail(detail(categories=["model", "lora-sdxl", "nsfw"]))
    assert model.nsfw is True
    assert model.base_model == "SDXL LoRA"


def test_a_model_that_requires_an_upload_cannot_be_used() -> None:
    inputs = copy.deepcopy(WATERCOLOR["inputs"])
    inputs[1]["required"] = True
    with pytest.raises(UnsupportedModel) as caught:
        spec_from_tool_detail(detail(inputs=inputs))
    assert "requires 'inputImage' (fileinput)" in str(caught.value)


def test_a_model_without_a_prompt_cannot_be_used() -> None:
    inputs = [item for item in WATERCOLOR["inputs"] if item["id"] != "prompt"]
    with pytest.raises(UnsupportedModel) as caught:
        spec_from_tool_detail(detail(inputs=inputs))
    assert "no text prompt" in str(caught.value)


def test_a_default_outside_wiros_own_bounds_is_left_to_wiro() -> None:
    inputs = copy.deepcopy(WATERCOLOR["inputs"])
    inputs[4]["default"] = "80"  # steps 1..50
    model = spec_from_tool_detail(detail(inputs=inputs))
    steps = model.input("steps")
    assert steps is not None and steps.default is None
    assert "steps" not in resolve_inputs(model, {"prompt": "a heron"})
