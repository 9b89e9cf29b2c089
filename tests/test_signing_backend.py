"""The live extra signs with coincurve: ``eth_keys`` (under ``eth_account`` and the Hyperliquid
SDK) picks it when it is importable, and signs ~30x faster than its pure-Python backend
(docs/benchmarks.md, "Paper exchange: order round trip"). Signatures are the same either way."""

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


def test_the_signer_gives_the_same_signature_with_either_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip(
        "coincurve", reason="coincurve is not installed: install the live extra (make install)"
    )
    eth_keys = pytest.importorskip("eth_keys", reason="the live extra is not installed")
    from agents.live.venues.keys import Signer

    key = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
    action = {"type": "cancel", "cancels": [{"a": 0, "o": 123}]}
    signatures = {}
    for backend in ("CoinCurveECCBackend", "NativeECCBackend"):
        monkeypatch.setenv("ECC_BACKEND_CLASS", f"eth_keys.backends.{backend}")
        assert type(eth_keys.KeyAPI().backend).__name__ == backend
        signatures[backend] = Signer(key).sign_l1(action, 1_764_867_590_000, is_mainnet=False)
    assert signatures["CoinCurveECCBackend"] == signatures["NativeECCBackend"]
