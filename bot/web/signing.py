"""Signed gallery links: `<payload>.<mac>`, both base64url, the MAC an HMAC-SHA256 over the
payload with a key kept in the database. The payload names the grant (the stored snapshot of
what the member may see), the server, the member and when the link dies."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass

_PAYLOAD = struct.Struct(">QQQQ")  # grant id, guild id, user id, expires (unix seconds)
_MAC_BYTES = 16


class BadLink(Exception):
    """The link is malformed, altered or expired; the page says only that it opens nothing."""


@dataclass(frozen=True, slots=True)
class LinkClaims:
    grant_id: int
    guild_id: int
    user_id: int
    expires_at: int


def sign(key: bytes, claims: LinkClaims) -> str:
    payload = _PAYLOAD.pack(claims.grant_id, claims.guild_id, claims.user_id, claims.expires_at)
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def verify(key: bytes, token: str, *, now: float) -> LinkClaims:
    """The claims of a genuine, unexpired link; BadLink otherwise."""
    if len(token) > 200 or token.count(".") != 1:
        raise BadLink("malformed")
    encoded_payload, encoded_mac = token.split(".")
    payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
    if len(payload) != _PAYLOAD.size or not hmac.compare_digest(mac, _mac(key, payload)):
        raise BadLink("altered")
    claims = LinkClaims(*_PAYLOAD.unpack(payload))
    if claims.expires_at <= now:
        raise BadLink("expired")
    return claims


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, b"gallery-link\0" + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or not all(c.isalnum() or c in "-_" for c in text):
        raise BadLink("malformed")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadLink("malformed") from None
    if _b64(data) != text:  # one spelling per link: unused low bits may not vary
        raise BadLink("malformed")
    return data


def link_url(base_url: str, key: bytes, claims: LinkClaims) -> str:
    """The gallery's address for a link: `<public url>/g/<token>/`."""
    return f"{base_url.rstrip('/')}/g/{sign(key, claims)}/"
