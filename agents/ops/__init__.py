"""Operating a live policy: what an operator runs around a live session (docs/operations.md):
the operator's controls, metrics and session reports.

Importing this package, or :mod:`agents.ops.report`, pulls in no torch, stable-baselines3 or
Ray; the report's plots import matplotlib when they are drawn.
"""
