"""The operator's client of a live session's controls (``mmgym-ops``; docs/operations.md).

    mmgym-ops status [--url http://127.0.0.1:PORT]
    mmgym-ops halt|reduce|flatten --operator NAME --reason TEXT [--url ...]
    mmgym-ops resume --operator NAME --reason TEXT [--yes] [--url ...]

The token comes from ``$MMGYM_OPS_TOKEN`` or a 0600 file named by ``$MMGYM_OPS_TOKEN_FILE``, as
the runner's; the URL from ``--url``, else ``$MMGYM_OPS_URL``, else ``http://127.0.0.1:8790``,
and must be on this host (127.0.0.1, ::1 or localhost: the token never crosses a network in
clear; reach a remote runner through an SSH tunnel). ``resume`` without ``--yes`` changes
nothing: it shows what tripped and what resuming would do.

Prints the runner's answer (JSON). Exit codes: 0 done; 1 the runner refused or nothing changed
(the answer says why), or it could not be reached; 2 bad input or a refused token, with one line
on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from agents.ops.control import ACTIONS, COMMANDS, MAX_OPERATOR, MAX_REASON, TokenError, load_token

URL_ENV = "MMGYM_OPS_URL"
DEFAULT_URL = "http://127.0.0.1:8790"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mmgym-ops", description="The operator's controls of a live session.")
    p.add_argument("command", choices=COMMANDS)
    p.add_argument("--operator", help="who commands (required except for status)")
    p.add_argument("--reason", help="why (required except for status)")
    p.add_argument("--url", help=f"the runner's controls (default ${URL_ENV} or {DEFAULT_URL})")
    p.add_argument("--yes", action="store_true", help="confirm a resume")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the answer")
    return p


def check_url(url: str) -> str:
    """``url`` without its trailing slash; ValueError unless http:// on this host."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK:
        raise ValueError(f"--url must be http:// on this host ({', '.join(LOOPBACK)}), got {url!r}")
    return url.rstrip("/")


def request(url: str, token: str, body: dict[str, Any] | None, timeout: float) -> Any:
    """GET (``body`` None) or POST ``body`` to ``url`` with the token, never through a proxy;
    the open response (urllib raises HTTPError for a status >= 400)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    return opener.open(request, timeout=timeout)


def main(argv: list[str]) -> int:
    """Send one command; return the exit code."""
    try:
        args = _parser().parse_args(argv)
        url = check_url(args.url or os.environ.get(URL_ENV) or DEFAULT_URL)
        body: dict[str, Any] | None = None
        if args.command in ACTIONS:
            for name, limit in (("operator", MAX_OPERATOR), ("reason", MAX_REASON)):
                value = getattr(args, name)
                if not value or not value.strip():
                    raise ValueError(f"{args.command} needs --{name}")
                if len(value.strip()) > limit or not value.strip().isprintable():
                    raise ValueError(f"--{name} must be printable, at most {limit} characters")
            body = {"operator": args.operator, "reason": args.reason, "confirm": bool(args.yes)}
        if not args.timeout > 0:
            raise ValueError("--timeout must be > 0")
        token = load_token()
        assert token is not None
    except (ValueError, TokenError) as err:
        print(f"mmgym-ops: {err}", file=sys.stderr)
        return 2
    path = "/v1/status" if body is None else f"/v1/{args.command}"
    try:
        with request(url + path, token, body, args.timeout) as response:
            code, text = response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        code, text = err.code, err.read().decode(errors="replace")
    except (OSError, urllib.error.URLError) as err:
        print(f"mmgym-ops: {url} cannot be reached: {err}", file=sys.stderr)
        return 1
    if code == 401:
        print("mmgym-ops: the runner refused the token", file=sys.stderr)
        return 2
    try:
        answer = json.loads(text)
    except ValueError:
        answer = {"ok": False, "message": text[:500]}
    print(json.dumps(answer, indent=2, sort_keys=True))
    if code == 400:
        print(f"mmgym-ops: {answer.get('message', 'bad input')}", file=sys.stderr)
        return 2
    if code not in (200, 202):
        print(f"mmgym-ops: {answer.get('message', f'HTTP {code}')}", file=sys.stderr)
        return 1
    return 0


def fetch_status(url: str, token: str, timeout: float = 1.0) -> dict[str, Any]:
    """The runner's ``GET /v1/status`` answer's ``status`` object. OSError (or a subclass:
    unreachable, refused, HTTP error) or ValueError (not the runner's answer) when there is
    none."""
    with request(check_url(url) + "/v1/status", token, None, timeout) as response:
        answer = json.loads(response.read().decode())
    status = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(status, dict):
        raise ValueError(f"{url}/v1/status did not answer with a status")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
