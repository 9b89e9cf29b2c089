"""RLlib callback logging the ``mm/*`` market scalars from each EnvRunner."""

from __future__ import annotations

from typing import Any

from agents.rllib.env import stats_wrapper
from mmgym.extras import extra_needed

with extra_needed("agents.rllib.callbacks"):
    from ray.rllib.callbacks.callbacks import RLlibCallback

MM_SUMS = "mm_sums"
"""EnvRunner metrics key under which the per-step sums (and ``steps``) arrive each iteration."""


class MarketMetricsCallback(RLlibCallback):
    """At the end of every ``EnvRunner.sample()``, logs the sums of the market scalars over the
    sampled steps (and their number) with ``reduce="sum"``; the algorithm adds them up over
    EnvRunners and samples of an iteration, and :func:`market_means` divides."""

    def on_sample_end(
        self, *, env_runner: Any = None, metrics_logger: Any = None, **kwargs: Any
    ) -> None:
        """Move the wrapper's sums into the EnvRunner's metrics."""
        wrapper = stats_wrapper(getattr(env_runner, "env", None))
        if wrapper is None or metrics_logger is None:
            return
        sums, steps = wrapper.pop_sums()
        if steps == 0:
            return
        for tag, total in sums.items():
            metrics_logger.log_value((MM_SUMS, tag), total, reduce="sum")
        metrics_logger.log_value((MM_SUMS, "steps"), steps, reduce="sum")


def market_means(env_runner_results: dict[str, Any]) -> dict[str, float]:
    """``mm/*`` means per env-step of one iteration, from its ``env_runners`` results."""
    sums = env_runner_results.get(MM_SUMS) or {}
    steps = float(sums.get("steps", 0.0) or 0.0)
    if steps <= 0:
        return {}
    return {tag: float(v) / steps for tag, v in sums.items() if tag != "steps"}
