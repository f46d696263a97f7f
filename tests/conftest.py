"""Shared test configuration: Hypothesis profiles and paths."""

from __future__ import annotations

import os
import pathlib

from hypothesis import HealthCheck, settings

# The fake_agent fixture, enabled by name as docs/testing.rst tells users to.
pytest_plugins = ["trio_mesos.testing.pytest_plugin"]

TESTS = pathlib.Path(__file__).resolve().parent
#: Byte-exact captures from a real Mesos 1.11 agent (a copy of ../shared/vectors).
VECTORS = TESTS / "data" / "vectors"

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci",
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
