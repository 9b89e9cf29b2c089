"""Who signed an exchange action, and whether its nonce may be used.

Every ``POST /exchange`` body carries an L1 action signed as Hyperliquid's SDK signs it
(``hyperliquid.utils.signing.sign_l1_action``). The paper exchange recovers the signer with the
SDK's own ``recover_agent_or_user_from_l1_action`` in the testnet domain (the paper exchange is
never mainnet) and accepts only the configured agent address. Nonces follow Hyperliquid's rule:
unique per signer, larger than the smallest of the signer's 100 highest nonces, and within
(now - 2 days, now + 1 day) of the host's wall clock.
"""

from __future__ import annotations

import heapq
from typing import Any

from mmgym.extras import extra_needed

NONCE_WINDOW = 100
"""Highest nonces kept per signer."""
NONCE_PAST_MS = 2 * 24 * 3600 * 1000
NONCE_FUTURE_MS = 24 * 3600 * 1000


class SignatureError(ValueError):
    """The action's signature could not be checked (malformed signature or action)."""


def recover_signer(
    action: Any, signature: Any, vault_address: str | None, nonce: int, expires_after: int | None
) -> str:
    """The address that signed ``action`` (lower case), in the testnet domain.

    Needs the ``live`` extra (hyperliquid-python-sdk); SignatureError for a malformed
    signature."""
    with extra_needed("mmgym.exchange.auth"):
        from hyperliquid.utils.signing import recover_agent_or_user_from_l1_action

    if not isinstance(signature, dict) or not {"r", "s", "v"} <= set(signature):
        raise SignatureError("signature must be an object with r, s and v")
    try:
        address = recover_agent_or_user_from_l1_action(
            action, signature, vault_address, nonce, expires_after, False
        )
    except Exception as err:  # eth_account raises several types for bad signatures
        raise SignatureError(f"signature could not be verified: {err}") from err
    return str(address).lower()


class NonceBook:
    """The nonces each signer has used, by Hyperliquid's rule."""

    def __init__(self) -> None:
        self._highest: dict[str, list[int]] = {}
        self._seen: dict[str, set[int]] = {}

    def check(self, signer: str, nonce: object, now_ms: int) -> str | None:
        """Why ``nonce`` is refused for ``signer`` at wall time ``now_ms``, or None if it may be
        used (then call :meth:`use`)."""
        if not isinstance(nonce, int) or isinstance(nonce, bool) or nonce < 0:
            return "Invalid nonce: must be a non-negative integer (milliseconds)"
        if not now_ms - NONCE_PAST_MS < nonce < now_ms + NONCE_FUTURE_MS:
            return (
                f"Invalid nonce: {nonce} is outside (now - 2 days, now + 1 day) of the "
                f"exchange's clock ({now_ms} ms)"
            )
        if nonce in self._seen.get(signer, ()):
            return f"Invalid nonce: {nonce} was already used by this signer"
        highest = self._highest.get(signer, [])
        if len(highest) >= NONCE_WINDOW and nonce <= highest[0]:
            return (
                f"Invalid nonce: {nonce} is not above the smallest of this signer's "
                f"{NONCE_WINDOW} highest nonces ({highest[0]})"
            )
        return None

    def use(self, signer: str, nonce: int) -> None:
        """Record ``nonce`` as used by ``signer`` (after :meth:`check` allowed it)."""
        highest = self._highest.setdefault(signer, [])
        seen = self._seen.setdefault(signer, set())
        seen.add(nonce)
        if len(highest) < NONCE_WINDOW:
            heapq.heappush(highest, nonce)
        else:
            dropped = heapq.heappushpop(highest, nonce)
            seen.discard(dropped)
