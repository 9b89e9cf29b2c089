"""The signing key: loaded from an environment variable or a key file readable by its owner
only, never from config, and never shown.

:class:`Signer` holds the key and signs L1 actions as the SDK's ``sign_l1_action`` does
(libsecp256k1 through coincurve, over the EIP-712 digest computed here). Its repr
shows the signer's address only, it refuses to be pickled, and the errors of loading a key
never quote it. :class:`RedactingFilter` scrubs the key from log records as a last line of
defence.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Any, NoReturn

from mmgym.extras import extra_needed

with extra_needed("agents.live.venues"):
    import coincurve
    import eth_account
    from eth_utils import keccak
    from hyperliquid.utils.signing import action_hash

KEY_ENV = "MMGYM_HL_PRIVATE_KEY"
"""The default environment variable holding the hex private key."""
KEY_FILE_ENV = "MMGYM_HL_KEY_FILE"
"""The default environment variable holding the path of a key file."""
REDACTED = "<redacted>"
_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def _l1_domain_separator() -> bytes:
    """EIP-712 domain of Hyperliquid's L1 actions (the SDK's ``l1_payload``): name "Exchange",
    version "1", chainId 1337, the zero verifying contract."""
    domain_type = (
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    return keccak(
        keccak(domain_type)
        + keccak(b"Exchange")
        + keccak(b"1")
        + (1337).to_bytes(32, "big")
        + bytes(32)
    )


_L1_DOMAIN = _l1_domain_separator()
_AGENT_TYPE = keccak(b"Agent(string source,bytes32 connectionId)")
_SOURCE = {True: keccak(b"a"), False: keccak(b"b")}
"""The phantom agent's source: "a" on mainnet, "b" elsewhere (the SDK's
``construct_phantom_agent``)."""


def l1_digest(
    action: dict[str, Any],
    nonce: int,
    *,
    is_mainnet: bool,
    vault_address: str | None = None,
    expires_after: int | None = None,
) -> bytes:
    """The EIP-712 digest the SDK's ``sign_l1_action`` signs (``encode_typed_data`` of its
    ``l1_payload``), computed from the fixed domain and type hashes: the same 32 bytes,
    without building the typed-data structure at every order."""
    connection_id = action_hash(action, vault_address, nonce, expires_after)
    struct = keccak(_AGENT_TYPE + _SOURCE[is_mainnet] + connection_id)
    return keccak(b"\x19\x01" + _L1_DOMAIN + struct)


class KeyLoadError(ValueError):
    """The private key could not be loaded (the message never contains the key)."""


class Signer:
    """Signs Hyperliquid L1 actions with a private key it never shows.

    ``address`` is the signer's address: the account itself, or an API wallet (agent) the
    account approved, which signs for the account without holding its funds.
    """

    __slots__ = ("_account", "_key", "_secret", "address")

    def __init__(self, private_key: str) -> None:
        key = private_key.strip()
        if not _KEY.match(key):
            raise KeyLoadError("the private key is not 64 hex digits (with or without 0x)")
        try:
            account = eth_account.Account.from_key(key)
        except Exception:  # eth_account's errors may quote the key
            raise KeyLoadError("the private key is not a valid secp256k1 key") from None
        self._account = account
        self._secret = key.lower().removeprefix("0x")
        self._key = coincurve.PrivateKey(bytes.fromhex(self._secret))
        self.address: str = account.address

    def sign_l1(
        self,
        action: dict[str, Any],
        nonce: int,
        *,
        is_mainnet: bool,
        vault_address: str | None = None,
        expires_after: int | None = None,
    ) -> dict[str, Any]:
        """The SDK's ``sign_l1_action`` signature (``{"r", "s", "v"}``) of ``action``: the same
        values, signed over :func:`l1_digest` (a test checks them against the SDK's)."""
        digest = l1_digest(
            action,
            nonce,
            is_mainnet=is_mainnet,
            vault_address=vault_address,
            expires_after=expires_after,
        )
        signature = self._key.sign_recoverable(digest, hasher=None)  # r, s (low), recovery id
        return {
            "r": hex(int.from_bytes(signature[:32], "big")),
            "s": hex(int.from_bytes(signature[32:64], "big")),
            "v": signature[64] + 27,
        }

    def redact(self, text: str) -> str:
        """``text`` with the key (in any case, with or without 0x) replaced by ``<redacted>``."""
        return re.sub(f"(0x)?{self._secret}", REDACTED, text, flags=re.IGNORECASE)

    def __repr__(self) -> str:
        return f"Signer(address={self.address}, key={REDACTED})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Signer is not picklable: the key must not be written anywhere")


class RedactingFilter(logging.Filter):
    """Replaces the signer's key in every log record that passes the handler or logger it is
    attached to (message, arguments and exception text)."""

    def __init__(self, signer: Signer) -> None:
        super().__init__()
        self._signer = signer

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._signer.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if self._signer.redact(text) != text:
                record.exc_info, record.exc_text = None, self._signer.redact(text)
        return True


def load_signer(
    env_var: str = KEY_ENV,
    key_file: Path | None = None,
    environ: dict[str, str] | None = None,
) -> Signer:
    """The signer from ``key_file`` (or the file named by ``$MMGYM_HL_KEY_FILE``) if given,
    else from the environment variable ``env_var``.

    A key file must be a regular file of this user that only its owner may access (mode 0600,
    or the stricter 0400): a file group or others may access is refused, as ssh refuses such
    keys.
    """
    env = os.environ if environ is None else environ
    if key_file is None and env.get(KEY_FILE_ENV):
        key_file = Path(env[KEY_FILE_ENV])
    if key_file is not None:
        return Signer(_read_key_file(Path(key_file)))
    key = env.get(env_var)
    if not key:
        raise KeyLoadError(
            f"no private key: set ${env_var} or ${KEY_FILE_ENV} (a file of mode 0600); "
            "keys are never read from config"
        )
    return Signer(key)


def _read_key_file(path: Path) -> str:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyLoadError(f"key file {path} does not exist") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyLoadError(f"key file {path} is not a regular file")
    if info.st_uid != os.getuid():
        raise KeyLoadError(f"key file {path} belongs to another user (uid {info.st_uid})")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeyLoadError(
            f"key file {path} has mode {mode:04o}: group or others may access it; "
            f"run `chmod 600 {path}`"
        )
    return path.read_text()
