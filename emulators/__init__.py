"""CRM emulators for tests, the demo and benchmarks: real HTTP servers seeded with one synthetic shop.

Kept apart from the adapters they test (`connector/`), on one shared kit (`emulators.kit`).
"""
