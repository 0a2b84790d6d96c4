"""Test-wide settings.

Hypothesis' per-example deadline is a wall-clock assertion: on a shared 2-core machine a busy
neighbour makes any example slow, and the test fails for a reason that has nothing to do with
the property it checks. Speed is measured in bench/, so no test here asserts it; the other
health checks stay on.
"""

import os

from hypothesis import HealthCheck, settings

# pytest-xdist's workers export COLUMNS=80 and LINES=24; rich reads COLUMNS once, when a Console
# is made (at import of the CLI), so every CLI table in a test would be cut at 80 columns whatever
# width the test asks for. A test that wants a width sets COLUMNS itself.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

settings.register_profile("evmonitor", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("evmonitor")
