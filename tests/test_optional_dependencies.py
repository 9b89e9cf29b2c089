"""Without an optional dependency, importing a module that needs it names the extra to install.

Each check runs in a fresh interpreter whose import system refuses the blocked packages, as if
they were not installed (a ``sys.meta_path`` finder that raises ``ModuleNotFoundError``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmgym.extras import EXTRA_OF, extra_needed

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import importlib, json, sys

BLOCKED = set(sys.argv[1].split(","))

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
out = {}
for module in sys.argv[2].split(","):
    try:
        importlib.import_module(module)
        out[module] = None
    except ImportError as err:
        out[module] = f"{type(err).__name__}: {err}"
print(json.dumps(out))
"""

TRAIN = sorted(p for p, extra in EXTRA_OF.items() if extra == "train")
"""The packages of the ``train`` extra."""

NEEDS_TRAIN = {
    "mmgym.analysis": ("mmgym.analysis", "pandas"),
    "agents.evaluation.plots": ("agents.evaluation", "pandas"),
    "agents.sb3.vec_env": ("agents.sb3", "stable_baselines3"),  # the package checks
    "agents.residual": ("agents.residual", "stable_baselines3"),
    "agents.run_logger": ("agents.run_logger", "stable_baselines3"),
    "agents.baseline_run": ("agents.baseline_run", "hydra"),
}
"""Module imported -> the module and the package its message names without the ``train``
extra."""


def _probe(blocked: list[str], modules: list[str]) -> dict[str, str | None]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(blocked), ",".join(modules)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, str | None] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_without_the_train_extra_each_module_names_it() -> None:
    messages = _probe([*TRAIN, "ray"], [*NEEDS_TRAIN, "agents.rllib.callbacks", "mmgym"])
    assert messages["mmgym"] is None  # the core needs no extra
    for module, (named, package) in NEEDS_TRAIN.items():
        expected = f"{named} needs {package}: pip install 'mmgym[train]'"
        assert messages[module] == f"ModuleNotFoundError: {expected}", messages[module]
    assert messages["agents.rllib.callbacks"] == (
        "ModuleNotFoundError: agents.rllib.callbacks needs ray: pip install 'mmgym[ray]'"
    )


@pytest.mark.parametrize("blocked", [["pandas"], ["matplotlib"], ["pandas", "matplotlib"]])
def test_analysis_without_pandas_or_matplotlib(blocked: list[str]) -> None:
    message = _probe(blocked, ["mmgym.analysis"])["mmgym.analysis"]
    if "pandas" in blocked:
        assert message == (
            "ModuleNotFoundError: mmgym.analysis needs pandas: pip install 'mmgym[train]'"
        )
    else:  # the measurements do not draw: matplotlib is for the page builder only
        assert message is None


def test_the_paper_exchange_server_names_the_live_extra() -> None:
    messages = _probe(["aiohttp"], ["mmgym.exchange.server", "mmgym.exchange"])
    assert messages["mmgym.exchange"] is None  # the venue itself needs no extra
    assert messages["mmgym.exchange.server"] == (
        "ModuleNotFoundError: mmgym.exchange.server needs aiohttp: pip install 'mmgym[live]'"
    )


def test_other_import_errors_pass_unchanged() -> None:
    with (
        pytest.raises(ModuleNotFoundError, match="No module named 'not_a_package'") as err,
        extra_needed("mmgym.analysis"),
    ):
        import not_a_package  # type: ignore[import-not-found]  # noqa: F401
    assert err.value.name == "not_a_package"


@pytest.mark.parametrize("package", ["aiohttp", "hyperliquid", "eth_account"])
def test_without_the_live_extra_the_venue_adapter_names_it(package: str) -> None:
    message = _probe([package], ["agents.live", "agents.live.venues"])
    assert message["agents.live"] is None  # the package itself needs nothing
    assert message["agents.live.venues"] == (
        f"ModuleNotFoundError: agents.live.venues needs {package}: pip install 'mmgym[live]'"
    )
