"""Query parameters of the gallery pages, validated: anything else is a 400 naming it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_SEARCH = 200
_SLUG = re.compile(r"^[A-Za-z0-9_.-]{1,64}/[A-Za-z0-9_.-]{1,64}$")
_ID = re.compile(r"^[0-9]{1,20}$")


class BadQuery(Exception):
    """A query parameter is not allowed; the message names it and what is."""


@dataclass(frozen=True, slots=True)
class Filters:
    model: str | None = None
    member: int | None = None
    search: str | None = None
    before: int | None = None
    #: Only the tiles, for endless scroll.
    partial: bool = False

    def query(self, **changes: object) -> dict[str, str]:
        """These filters as query parameters (for links), with some changed."""
        values: dict[str, object] = {
            "model": self.model,
            "member": self.member,
            "q": self.search,
            "before": None,
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v is not None and v != ""}


def parse_filters(query: Mapping[str, str], *, allowed: frozenset[str]) -> Filters:
    for name in query:
        if name not in allowed:
            raise BadQuery(f"'{name}' is not a parameter of this page")
    if len(query.keys()) != len(set(query.keys())):
        raise BadQuery("a parameter is given twice")
    model = query.get("model") or None
    if model is not None and not _SLUG.match(model):
        raise BadQuery("model must be a model name like owner/project")
    member = _optional_id(query, "member")
    before = _optional_id(query, "before")
    search = query.get("q", "").strip() or None
    if search is not None:
        if len(search) > MAX_SEARCH:
            raise BadQuery(f"q (prompt text) must be at most {MAX_SEARCH} characters")
        if any(ord(c) < 32 for c in search):
            raise BadQuery("q (prompt text) must not contain control characters")
    partial = query.get("partial")
    if partial not in (None, "1"):
        raise BadQuery("partial must be 1")
    return Filters(model=model, member=member, search=search, before=before, partial=bool(partial))


def _optional_id(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name) or None
    if value is None:
        return None
    if not _ID.match(value) or int(value) >= 2**63:
        raise BadQuery(f"{name} must be a whole number")
    return int(value)
