"""Helpers for the report tests: a State filled from the synthetic shop, with replayed syncs."""
