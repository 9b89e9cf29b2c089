"""Operating a live session: the operator's controls, metrics and reports (docs/operations.md)."""
