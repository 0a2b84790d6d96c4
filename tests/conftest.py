"""Test-wide settings.

Hypothesis' per-example deadline is a wall-clock assertion: on a shared 2-core machine a busy
neighbour makes any example slow, and the test fails for a reason that has nothing to do with
the property it checks. Speed is measured in bench/, so no test here asserts it; the other
health checks stay on.
"""

from hypothesis import HealthCheck, settings

settings.register_profile("evmonitor", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("evmonitor")
