"""Wiro's request authentication: API key, optionally with an HMAC signature.

Signature mode sends `x-api-key`, `x-nonce` and `x-signature`, where
`x-signature = hex(HMAC_SHA256(key=API_KEY, message=API_SECRET + NONCE))`; key-only mode sends
`x-api-key` alone. Every request gets a fresh nonce: unique and strictly increasing, also for
requests sent in parallel (as Wiro's own mobile SDK does).

Several processes signing with one key must not send the same nonce: each then takes a
*stripe*, and its nonces are the millisecond numbers that leave its stripe as remainder
(`nonce % stripes == stripe`), still strictly increasing and close to the clock (a process
runs ahead of the clock only beyond 1000 / stripes requests a second). Who holds which stripe
is agreed elsewhere (`bot.store.notices`: one per live process).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable


def sign(api_key: str, api_secret: str, nonce: str) -> str:
    """Wiro's signature: hex HMAC-SHA256 keyed with the API key over `secret + nonce`."""
    message = (api_secret + nonce).encode()
    return hmac.new(api_key.encode(), message, hashlib.sha256).hexdigest()


class NonceSource:
    """Unique, strictly increasing millisecond nonces.

    A nonce is the current unix time in milliseconds, or one more than the previous nonce when
    the clock has not moved on (or went backwards); with a stripe, the next number from there
    in the stripe. Safe to share between tasks and threads.
    """

    def __init__(
        self, clock: Callable[[], float] = time.time, *, stripe: int = 0, stripes: int = 1
    ) -> None:
        self._clock = clock
        self._last = 0
        self._lock = threading.Lock()
        self.use_stripe(stripe, stripes)

    def use_stripe(self, stripe: int, stripes: int) -> None:
        """From now on, only nonces with `nonce % stripes == stripe` (processes that hold
        different stripes of the same count never send the same nonce)."""
        if stripes < 1 or not 0 <= stripe < stripes:
            raise ValueError(f"stripe {stripe} of {stripes}")
        with self._lock:
            self._stripe, self._stripes = stripe, stripes

    def next(self) -> str:
        with self._lock:
            now_ms = int(self._clock() * 1000)
            nonce = max(now_ms, self._last + 1)
            nonce += (self._stripe - nonce) % self._stripes
            self._last = nonce
            return str(nonce)


class Credentials:
    """A Wiro project's API key and, in signature mode, its secret.

    An empty or missing secret means key-only mode. Neither value ever shows in `repr`.
    """

    __slots__ = ("_api_key", "_api_secret", "_nonces")

    def __init__(
        self,
        api_key: str,
        api_secret: str | None = None,
        *,
        nonces: NonceSource | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("the Wiro API key is empty")
        self._api_key = api_key
        self._api_secret = api_secret or None
        self._nonces = nonces or NonceSource()

    @property
    def signs(self) -> bool:
        """True in signature mode, False in key-only mode."""
        return self._api_secret is not None

    @property
    def nonces(self) -> NonceSource:
        return self._nonces

    def headers(self) -> dict[str, str]:
        """Fresh authentication headers for one request (a new nonce each call)."""
        if self._api_secret is None:
            return {"x-api-key": self._api_key}
        nonce = self._nonces.next()
        return {
            "x-api-key": self._api_key,
            "x-nonce": nonce,
            "x-signature": sign(self._api_key, self._api_secret, nonce),
        }

    def redact(self, text: str) -> str:
        """`text` with the key and secret blanked out, for messages that quote a server."""
        for secret in (self._api_key, self._api_secret):
            if secret:
                text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        mode = "signature" if self.signs else "key-only"
        return f"Credentials(mode={mode!r})"
