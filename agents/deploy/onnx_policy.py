"""An exported network behind :class:`agents.policy.Policy`: numpy and ONNX Runtime only.

The graph (written by :mod:`agents.deploy.export`) maps raw float32 observations
``(batch, obs_dim)`` to float32 actions ``(batch, action_dim)``: it holds the training
normalisation and the deterministic action with its clipping, so nothing else runs around it.

The session is configured for one small network deciding one batch at a time on a machine
that does other work (the market-data and order loops), not for throughput:

- ``intra_op_num_threads = 1`` and ``inter_op_num_threads = 1``: a 64x64 MLP at batch 1 costs
  microseconds, less than waking and joining pool threads; onnxruntime's default (one thread
  per core) would compete with the live loop for the cores and add tail latency.
- ``execution_mode = ORT_SEQUENTIAL``: the graph is a chain, there is nothing to run in
  parallel.
- ``session.intra_op.allow_spinning = 0`` and ``session.inter_op.allow_spinning = 0``: no pool
  thread busy-waits for work between decisions (spinning burns a core to shave wake-up time).
- ``CPUExecutionProvider`` only, with every graph optimisation.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

SESSION_CONFIG: dict[str, str] = {
    "session.intra_op.allow_spinning": "0",
    "session.inter_op.allow_spinning": "0",
}
"""Session config entries set on every session (see the module docstring)."""


def session_options() -> ort.SessionOptions:
    """The session options every bundle's network runs with (see the module docstring)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    for key, value in SESSION_CONFIG.items():
        options.add_session_config_entry(key, value)
    return options


class OnnxPolicy:
    """Deterministic actions of an exported network for a batch of raw observations.

    ``model`` is the ONNX file's bytes. The graph must have one float32 input of shape
    ``(batch, obs_dim)`` and one float32 output of shape ``(batch, action_dim)``; anything
    else is refused here (ValueError), before the first decision.
    """

    def __init__(self, model: bytes, obs_dim: int, action_dim: int) -> None:
        self.session = ort.InferenceSession(
            model, sess_options=session_options(), providers=["CPUExecutionProvider"]
        )
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(
                f"the graph has {len(inputs)} inputs and {len(outputs)} outputs, expected 1 and 1"
            )
        _check_io("input", inputs[0], obs_dim)
        _check_io("output", outputs[0], action_dim)
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self.obs_dim = obs_dim
        self.action_dim = action_dim

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Actions ``(batch, action_dim)`` for observations ``(batch, obs_dim)``."""
        x = np.ascontiguousarray(obs, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.obs_dim:
            raise ValueError(
                f"observations must have shape (batch, {self.obs_dim}), got {np.shape(obs)}"
            )
        out = self.session.run([self.output_name], {self.input_name: x})[0]
        return np.asarray(out, dtype=np.float32)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """A feed-forward network keeps no state."""


def _check_io(role: str, node: ort.NodeArg, dim: int) -> None:
    shape = node.shape
    if node.type != "tensor(float)" or len(shape) != 2 or shape[1] != dim:
        raise ValueError(
            f"the graph's {role} {node.name!r} is {node.type} of shape {shape}, "
            f"expected tensor(float) of shape (batch, {dim})"
        )
