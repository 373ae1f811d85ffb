"""Breaker tests reuse the e2e fixtures."""

from tests.e2e.conftest import demo_scenario  # noqa: F401
