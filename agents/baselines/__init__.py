"""Closed-form and heuristic baseline policies."""
