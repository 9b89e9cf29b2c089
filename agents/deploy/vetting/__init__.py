"""Vetting (docs/deploy.md)."""
