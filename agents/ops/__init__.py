"""Operating a live policy: what an operator runs around a live session (docs/operations.md).

Importing this package, or :mod:`agents.ops.report`, pulls in no torch, stable-baselines3 or
Ray; the report's plots import matplotlib when they are drawn.
"""
