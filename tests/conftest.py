"""Test settings: a hypothesis profile sized for a shared 2-core CI machine, and the
headless Chromium the browser tests share.

HYPOTHESIS_PROFILE=thorough runs ten times the examples for a local soak."""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", parent=settings.get_profile("default"),
                          max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium (Debian's) per browser test module."""
    from playwright.sync_api import sync_playwright

    from browser_helpers import launch
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
