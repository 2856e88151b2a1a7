"""Model specs: the five seed models and ones read through Tool/Detail, and request checks."""

from bot.catalog.catalog import Catalog, CatalogCache, ToolDetailSource
from bot.catalog.loader import (
    ToolConversion,
    UnsupportedModel,
    convert_tool_detail,
    load_seed_models,
    spec_from_tool_detail,
)
from bot.catalog.spec import Choice, InputKind, InputSpec, ModelSpec, SizePreset
from bot.catalog.validation import (
    SEED_MAX,
    SEED_MIN,
    InputCaps,
    InvalidInput,
    coerce,
    describe_allowed,
    format_number,
    resolve_inputs,
    to_wire,
)

__all__ = [
    "SEED_MAX",
    "SEED_MIN",
    "Catalog",
    "CatalogCache",
    "Choice",
    "InputCaps",
    "InputKind",
    "InputSpec",
    "InvalidInput",
    "ModelSpec",
    "SizePreset",
    "ToolConversion",
    "ToolDetailSource",
    "UnsupportedModel",
    "coerce",
    "convert_tool_detail",
    "describe_allowed",
    "format_number",
    "load_seed_models",
    "resolve_inputs",
    "spec_from_tool_detail",
    "to_wire",
]
