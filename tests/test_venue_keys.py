"""The signing key: from an environment variable or an owner-only key file, never shown in a
repr, an error, a log record or a pickle; signatures the SDK recovers to the signer."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import pytest
from hyperliquid.utils.signing import recover_agent_or_user_from_l1_action

from agents.live.venues.keys import (
    KEY_ENV,
    KEY_FILE_ENV,
    KeyLoadError,
    RedactingFilter,
    Signer,
    load_signer,
)

KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"  # eth_account's documented key/address


def _secret_forms() -> list[str]:
    bare = KEY[2:]
    return [bare, bare.upper(), bare[:32], bare[32:]]


def assert_no_key(text: str) -> None:
    for form in _secret_forms():
        assert form.lower() not in text.lower(), "the private key leaked"


def test_key_from_the_environment() -> None:
    signer = load_signer(environ={KEY_ENV: KEY})
    assert signer.address == ADDRESS
    assert load_signer("OTHER", environ={"OTHER": KEY[2:]}).address == ADDRESS


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_key_file_only_its_owner_may_access(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "key"
    path.write_text(KEY + "\n")
    path.chmod(mode)
    assert load_signer(key_file=path, environ={}).address == ADDRESS
    assert load_signer(environ={KEY_FILE_ENV: str(path)}).address == ADDRESS


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_a_key_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "key"
    path.write_text(KEY)
    path.chmod(mode)
    with pytest.raises(KeyLoadError, match=f"mode {mode:04o}.*chmod 600") as err:
        load_signer(key_file=path, environ={})
    assert_no_key(str(err.value))


def test_missing_and_malformed_keys_are_refused_without_quoting_them(tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError, match=f"set \\${KEY_ENV}"):
        load_signer(environ={})
    with pytest.raises(KeyLoadError, match="does not exist"):
        load_signer(key_file=tmp_path / "nope", environ={})
    for bad in (KEY[:-2], KEY[:-1] + "z", KEY + "00"):
        with pytest.raises(KeyLoadError) as err:
            Signer(bad)
        assert_no_key(str(err.value))
        assert bad[2:40] not in str(err.value)
    with pytest.raises(KeyLoadError, match="not a valid secp256k1") as err:
        Signer("0x" + "f" * 64)  # above the curve order
    assert "f" * 40 not in str(err.value)


def test_the_signer_never_shows_its_key() -> None:
    signer = Signer(KEY)
    for text in (repr(signer), str(signer), f"{signer}", repr([signer])):
        assert_no_key(text)
        assert ADDRESS in text
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(signer)
    assert not hasattr(signer, "__dict__")


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    signer = Signer(KEY)
    log = logging.getLogger("test_venue_keys.redaction")
    log.addFilter(RedactingFilter(signer))
    with caplog.at_level(logging.INFO, logger=log.name):
        log.info("payload %s", {"k": KEY})
        log.info("upper " + KEY[2:].upper())
        try:
            raise RuntimeError(f"boom {KEY}")
        except RuntimeError:
            log.exception("failed")
    assert caplog.records and "<redacted>" in caplog.text
    assert_no_key(caplog.text)


@pytest.mark.parametrize("is_mainnet", [False, True])
def test_signatures_recover_to_the_signer(is_mainnet: bool) -> None:
    signer = Signer(KEY)
    action = {"type": "scheduleCancel", "time": 1_764_867_600_000}
    signature = signer.sign_l1(action, 1_764_867_590_000, is_mainnet=is_mainnet)
    recovered = recover_agent_or_user_from_l1_action(
        action, signature, None, 1_764_867_590_000, None, is_mainnet
    )
    assert recovered == ADDRESS
    other_domain = recover_agent_or_user_from_l1_action(
        action, signature, None, 1_764_867_590_000, None, not is_mainnet
    )
    assert other_domain != ADDRESS


def test_the_environment_is_left_alone() -> None:
    before = dict(os.environ)
    load_signer(environ={KEY_ENV: KEY})
    assert dict(os.environ) == before


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_key_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(KEY)
    path.chmod(0o600)
    os.chown(path, 4242, -1)
    with pytest.raises(KeyLoadError, match="belongs to another user") as err:
        load_signer(key_file=path, environ={})
    assert_no_key(str(err.value))


def test_signatures_equal_the_sdks() -> None:
    """Signer signs the digest of the SDK's typed data directly: the same r, s and v as the
    SDK's sign_l1_action, on mainnet and elsewhere, with and without vault and expiry."""
    import random

    import eth_account
    from hyperliquid.utils.signing import sign_l1_action

    key = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"[:64]
    signer = Signer(key)
    account = eth_account.Account.from_key(key)
    rng = random.Random(7)
    for i in range(60):
        order = {
            "a": rng.randint(0, 5),
            "b": rng.random() < 0.5,
            "p": str(round(rng.uniform(1.0, 1e5), 2)),
            "s": str(round(rng.uniform(0.001, 10.0), 3)),
            "r": False,
            "t": {"limit": {"tif": "Alo"}},
            "c": f"0x{rng.getrandbits(128):032x}",
        }
        action = {"type": "order", "orders": [order], "grouping": "na"}
        nonce = 1_700_000_000_000 + i
        vault = None if i % 3 else "0x" + "12" * 20
        expires = None if i % 2 else nonce + 5_000
        mainnet = i % 4 == 0
        ours = signer.sign_l1(
            action, nonce, is_mainnet=mainnet, vault_address=vault, expires_after=expires
        )
        assert ours == sign_l1_action(account, action, vault, nonce, expires, mainnet)
