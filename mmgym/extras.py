"""Optional dependencies: which ``pip install 'mmgym[<extra>]'`` provides a missing package.

The core (the market kernel, the envs and the scenarios) needs numpy, numba and gymnasium only.
Modules that need more wrap their imports in :func:`extra_needed`, so a missing package fails
with the extra to install instead of a bare ``No module named ...``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

EXTRA_OF: dict[str, str] = {
    "pandas": "train",
    "pyarrow": "train",
    "matplotlib": "train",
    "torch": "train",
    "stable_baselines3": "train",
    "tensorboard": "train",
    "hydra": "train",
    "omegaconf": "train",
    "tqdm": "train",
    "ray": "ray",
    "onnx": "live",
    "onnxruntime": "live",
    "aiohttp": "live",
    "hyperliquid": "live",
    "eth_account": "live",
    "prometheus_client": "live",
    "rich": "live",
}
"""Top-level import name -> the extra of ``pyproject.toml`` that installs it."""


@contextmanager
def extra_needed(module: str) -> Iterator[None]:
    """Imports in this block that fail for want of an optional package raise a
    ``ModuleNotFoundError`` saying ``"<module> needs <package>: pip install 'mmgym[<extra>]'"``;
    any other import error passes unchanged."""
    try:
        yield
    except ModuleNotFoundError as err:
        package = (err.name or "").partition(".")[0]
        if package not in EXTRA_OF:
            raise
        hint = f"{module} needs {package}: pip install 'mmgym[{EXTRA_OF[package]}]'"
        raise ModuleNotFoundError(hint, name=err.name) from err
