"""What a process loads at start-up: the bridge starts in a backlog drain's clock (issue 15)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY_FOR_THE_BRIDGE = ("elasticsearch", "elastic_transport", "fastapi", "matplotlib", "evmonitor.storage.search")


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_the_bridge_does_not_load_drivers_it_never_uses():
    """Importing the CLI and the bridge's wiring loads no Elasticsearch client, API or chart library."""
    loaded = loaded_after("import evmonitor.cli, evmonitor.bridge.wiring")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY_FOR_THE_BRIDGE or m in HEAVY_FOR_THE_BRIDGE}


def test_storage_names_still_import_from_the_package():
    """`from evmonitor.storage import X` gives the same objects as the modules that define them."""
    from evmonitor import storage
    from evmonitor.storage import kafka, postgres, search, sink

    for name in storage.__all__:
        module = {"sink": sink, "kafka": kafka, "postgres": postgres, "search": search}[storage._LAZY[name]]
        assert getattr(storage, name) is getattr(module, name)


def test_the_celery_app_does_not_load_matplotlib():
    """Every worker loads the app, and the app beat's report jobs: the charts load matplotlib when
    they draw, not when a persist or index worker starts."""
    loaded = loaded_after("import evmonitor.app, workers.tasks, beat.runner")
    assert "matplotlib" not in loaded
    assert "matplotlib" in loaded_after("from evmonitor.reports.charts import _figure\n_figure(1.0)")



def test_the_bridge_starts_its_group_join_before_loading_sqlalchemy_celery_or_the_models():
    """`evmonitor bridge` sends its JoinGroup (a ~3 s wait at the broker) first and imports the
    rest during that wait (evmonitor.bridge.joining): what that needs loads none of them."""
    loaded = loaded_after("import evmonitor.cli, evmonitor.bridge.joining")
    heavy = {"sqlalchemy", "celery", "kombu", "psycopg2", "evmonitor.bridge.wiring", "evmonitor.storage.postgres"}
    assert not {m for m in loaded if m.split(".")[0] in heavy or m in heavy}


def test_bridge_names_still_import_from_the_package():
    from evmonitor import bridge
    from evmonitor.bridge import batching, offsets, wiring
    from evmonitor.bridge import bridge as loop

    modules = {"batching": batching, "bridge": loop, "offsets": offsets, "wiring": wiring}
    for name in bridge.__all__:
        assert getattr(bridge, name) is getattr(modules[bridge._LAZY[name]], name)
