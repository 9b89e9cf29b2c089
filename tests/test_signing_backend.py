"""The live extra signs with coincurve: the Signer calls it directly, and ``eth_keys`` (under
``eth_account`` and the Hyperliquid SDK) picks it when it is importable, ~30x faster than its
pure-Python backend (docs/benchmarks.md, "Paper exchange: order round trip"). Signatures are
the same either way."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_live_extra_requires_coincurve_and_the_constraints_pin_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    live = project["optional-dependencies"]["live"]
    assert any(r.split(">")[0].split("=")[0].strip() == "coincurve" for r in live), live
    pins = [
        line for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line.startswith("coincurve==")
    ]  # fmt: skip
    assert len(pins) == 1, pins


def test_eth_keys_signs_with_coincurve(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip(
        "coincurve", reason="coincurve is not installed: install the live extra (make install)"
    )
    eth_keys = pytest.importorskip("eth_keys", reason="the live extra is not installed")
    from eth_keys.backends import CoinCurveECCBackend

    monkeypatch.delenv("ECC_BACKEND_CLASS", raising=False)  # eth_keys' override
    assert isinstance(eth_keys.KeyAPI().backend, CoinCurveECCBackend)
    key = eth_keys.keys.PrivateKey(bytes.fromhex("4c" * 32))
    assert isinstance(key.backend, CoinCurveECCBackend)


def test_the_signer_equals_the_sdk_signing_with_the_pure_python_curve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Signer signs with libsecp256k1 (coincurve) directly; the SDK's ``sign_l1_action`` with
    eth_keys' pure-Python backend is an independent implementation of the same curve."""
    pytest.importorskip(
        "coincurve", reason="coincurve is not installed: install the live extra (make install)"
    )
    eth_keys = pytest.importorskip("eth_keys", reason="the live extra is not installed")
    import eth_account
    from hyperliquid.utils.signing import sign_l1_action

    from agents.live.venues.keys import Signer

    key = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
    monkeypatch.setenv("ECC_BACKEND_CLASS", "eth_keys.backends.NativeECCBackend")
    assert type(eth_keys.KeyAPI().backend).__name__ == "NativeECCBackend"
    account = eth_account.Account.from_key(key)
    signer = Signer(key)
    for nonce in range(1_764_867_590_000, 1_764_867_590_008):
        action = {"type": "cancel", "cancels": [{"a": nonce % 3, "o": nonce}]}
        expected = sign_l1_action(account, action, None, nonce, None, False)
        assert signer.sign_l1(action, nonce, is_mainnet=False) == expected
