"""Shared test settings."""

import os

from hypothesis import HealthCheck, settings

# Deterministic in CI; PyTorch's first calls are slow, so no per-example deadline.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
