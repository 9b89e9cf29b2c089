"""Reading a training run's TensorBoard event files back, as TensorBoard does (its
EventAccumulator), to check the evaluation overlay: each evaluated policy in its own run under
``tensorboard/eval/<policy>/``, all logging the same tags at the same steps."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def read_run(directory: Path) -> EventAccumulator:
    """The event files of one TensorBoard run, loaded."""
    events = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    events.Reload()
    return events


def eval_runs(run_dir: Path) -> dict[str, EventAccumulator]:
    """The evaluated policies' TensorBoard runs of a training run, by policy name."""
    root = run_dir / "tensorboard" / "eval"
    return {p.name: read_run(p) for p in sorted(root.iterdir()) if p.is_dir()}


def assert_overlay(
    run_dir: Path, policies: set[str], steps: list[int], tags: set[str]
) -> dict[str, EventAccumulator]:
    """Each of ``policies`` is its own run logging every one of ``tags`` at exactly ``steps``,
    so TensorBoard draws them in one chart per tag; returns the runs."""
    runs = eval_runs(run_dir)
    assert set(runs) == policies
    for policy, events in runs.items():
        assert tags <= set(events.Tags()["scalars"]), (policy, tags - set(events.Tags()["scalars"]))
        for tag in tags:
            assert [e.step for e in events.Scalars(tag)] == steps, (policy, tag)
    return runs
