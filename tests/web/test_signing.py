"""Gallery links: genuine ones verify until they expire; any change to one is refused."""

from __future__ import annotations

import pytest

from bot.web.signing import BadLink, LinkClaims, link_url, sign, verify

KEY = b"k" * 32
CLAIMS = LinkClaims(grant_id=7, guild_id=111, user_id=222, expires_at=2_000)


def test_a_genuine_link_carries_who_and_where_until_it_expires() -> None:
    token = sign(KEY, CLAIMS)
    assert verify(KEY, token, now=1_999) == CLAIMS
    with pytest.raises(BadLink, match="expired"):
        verify(KEY, token, now=2_000)


def test_every_single_character_changed_is_refused() -> None:
    token = sign(KEY, CLAIMS)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, c in enumerate(token):
        if c == ".":
            continue
        for other in alphabet:
            if other != c:
                forged = token[:i] + other + token[i + 1 :]
                with pytest.raises(BadLink):
                    verify(KEY, forged, now=0)


def test_another_key_or_a_malformed_token_is_refused() -> None:
    token = sign(KEY, CLAIMS)
    with pytest.raises(BadLink, match="altered"):
        verify(b"x" * 32, token, now=0)
    for junk in ("", ".", "a.b.c", "é.x", token + "=", "x" * 300):
        with pytest.raises(BadLink):
            verify(KEY, junk, now=0)


def test_a_link_is_the_public_address_and_the_token() -> None:
    url = link_url("https://art.example.org/", KEY, CLAIMS)
    assert url == f"https://art.example.org/g/{sign(KEY, CLAIMS)}/"
