"""Kibana saved objects in kibana/: they parse, their references resolve, their fields exist.

Pure file checks; no Kibana needed. Field checks read the mappings the panels query: the index
templates `evmonitor init` installs (evmonitor/storage/index_template.json for the events,
alerts_template.json, deadletters_template.json, stations_template.json). A field renamed on either
side, or used in a way its type does not allow (terms on text, a date histogram on a keyword, a sum
of a keyword), fails here.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
KIBANA = REPO / "kibana"
# Elasticsearch index templates, by the indices they shape
STORAGE = REPO / "evmonitor" / "storage"
TEMPLATES = [
    STORAGE / "index_template.json",
    STORAGE / "alerts_template.json",
    STORAGE / "deadletters_template.json",
    STORAGE / "stations_template.json",
]
# the one-word statuses beat writes to charging-stations (beat.stations.network_status), worst first
STATION_STATUSES = ["Offline", "Faulted", "Unavailable", "Occupied", "Available"]

# what Kibana 8.11 writes when it exports these types
CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSION = {"index-pattern": "8.0.0", "lens": "8.9.0", "dashboard": "8.9.0", "map": "8.4.0"}
GRID_COLUMNS = 48

NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}
DATE = {"date", "date_nanos"}
KEYWORD = {"keyword", "constant_keyword", "boolean", "ip"}
AGGREGATABLE = NUMERIC | DATE | KEYWORD
# field types each use accepts; `None` accepts any mapped field
USES: dict[str, set[str] | None] = {
    "terms": KEYWORD | {"long", "integer", "short", "byte"},
    "date_histogram": DATE,
    "histogram": NUMERIC,
    "range": NUMERIC,
    "sum": NUMERIC,
    "average": NUMERIC,
    "median": NUMERIC,
    "standard_deviation": NUMERIC,
    "percentile": NUMERIC,
    "percentile_rank": NUMERIC,
    "min": NUMERIC | DATE,
    "max": NUMERIC | DATE,
    "unique_count": AGGREGATABLE,
    "last_value": AGGREGATABLE,
    "count": AGGREGATABLE,
    "sort": DATE,
    "geo": {"geo_point", "geo_shape"},
    "split": KEYWORD,
    "color-categorical": KEYWORD,
    "color-ordinal": NUMERIC | DATE,
    "formula": NUMERIC,
    "query": None,
    "tooltip": None,
}


# --- loading ----------------------------------------------------------------------------------------


@cache
def saved_objects() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) in import order: files by name, lines in order."""
    out = []
    for path in sorted(KIBANA.glob("*.ndjson")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    out.append((path.name, json.loads(line)))
                except json.JSONDecodeError as exc:
                    pytest.fail(f"{path.name}:{number}: {exc}")
    return out


def objects(type_: str | None = None) -> list[dict[str, Any]]:
    return [obj for _, obj in saved_objects() if type_ is None or obj["type"] == type_]


@cache
def by_key() -> dict[tuple[str, str], dict[str, Any]]:
    return {(obj["type"], obj["id"]): obj for obj in objects()}


def reference(obj: dict[str, Any], name: str) -> dict[str, Any]:
    refs = [ref for ref in obj["references"] if ref["name"] == name]
    assert len(refs) == 1, f"{obj['type']} {obj['id']}: {len(refs)} references named {name!r}"
    return refs[0]


def flatten(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    fields = {}
    for name, spec in properties.items():
        path = prefix + name
        if "properties" in spec:
            fields.update(flatten(spec["properties"], path + "."))
        fields[path] = spec.get("type", "object")
        for sub, sub_spec in spec.get("fields", {}).items():
            fields[f"{path}.{sub}"] = sub_spec["type"]
    return fields


@cache
def mapping_for(data_view_id: str) -> dict[str, str]:
    """The mapped fields behind a data view: the template whose indices its title matches."""
    title = by_key()[("index-pattern", data_view_id)]["attributes"]["title"]
    matches = []
    for path in TEMPLATES:
        template = json.loads(path.read_text())
        samples = [pattern.replace("*", "2026.01.01") for pattern in template["index_patterns"]]
        if any(fnmatch.fnmatchcase(sample, pattern) for sample in samples for pattern in title.split(",")):
            matches.append(flatten(template["template"]["mappings"]["properties"]))
    assert len(matches) == 1, f"data view {title!r} matches {len(matches)} index templates"
    return matches[0]


def kql_fields(query: str) -> set[str]:
    """Field names a KQL query tests (`field : value`), with quoted values removed first."""
    unquoted = re.sub(r'"(?:\\.|[^"\\])*"', '""', query)
    return set(re.findall(r"([A-Za-z_@][\w.@]*)\s*:", unquoted))


# --- what each visualization reads ---------------------------------------------------------------------


Use = tuple[str, str, str, str]  # (data view id, field, use, where)


def lens_uses(lens: dict[str, Any]) -> Iterator[Use]:
    state = lens["attributes"]["state"]
    datasource = state["datasourceStates"].get("formBased") or state["datasourceStates"]["indexpattern"]
    for layer_id, layer in datasource["layers"].items():
        data_view = reference(lens, f"indexpattern-datasource-layer-{layer_id}")["id"]
        for field in kql_fields(state["query"]["query"]):
            yield data_view, field, "query", "query"
        for column_id, column in layer["columns"].items():
            where, op = f"column {column_id}", column["operationType"]
            field = column.get("sourceField")
            if field and field != "___records___":
                assert op in USES, f"{lens['id']} {where}: no rule for operation {op!r}; add one to USES"
                yield data_view, field, op, where
            if op == "last_value":
                yield data_view, column["params"]["sortField"], "sort", where
            if op == "formula":
                for field in re.findall(r"\w+\(\s*([A-Za-z_][\w.]*)", column["params"]["formula"]):
                    yield data_view, field, "formula", where
            if column.get("filter"):
                for field in kql_fields(column["filter"]["query"]):
                    yield data_view, field, "query", where


def map_uses(map_: dict[str, Any]) -> Iterator[Use]:
    for layer in json.loads(map_["attributes"]["layerListJSON"]):
        source = layer["sourceDescriptor"]
        if "indexPatternRefName" not in source:
            continue
        data_view = reference(map_, source["indexPatternRefName"])["id"]
        where = f"layer {layer['id']}"
        yield data_view, source["geoField"], "geo", where
        if source.get("topHitsSplitField"):
            yield data_view, source["topHitsSplitField"], "split", where
        if source.get("sortField"):
            yield data_view, source["sortField"], "sort", where
        for field in source.get("tooltipProperties", []):
            yield data_view, field, "tooltip", where
        for field in kql_fields((layer.get("query") or {}).get("query", "")):
            yield data_view, field, "query", where
        for name, prop in layer.get("style", {}).get("properties", {}).items():
            if prop.get("type") == "DYNAMIC" and prop["options"]["field"]["origin"] == "source":
                use = "color-categorical" if prop["options"].get("type") == "CATEGORICAL" else "color-ordinal"
                yield data_view, prop["options"]["field"]["name"], use, f"{where} style {name}"


def uses_of(obj: dict[str, Any]) -> list[Use]:
    return list({"lens": lens_uses, "map": map_uses}.get(obj["type"], lambda _: iter(()))(obj))


def dashboard(title: str) -> dict[str, Any]:
    matches = [d for d in objects("dashboard") if d["attributes"]["title"] == title]
    assert len(matches) == 1, f"{len(matches)} dashboards titled {title!r}"
    return matches[0]


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads(dash["attributes"]["panelsJSON"])


def panel_objects(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in panels(dash):
        ref = reference(dash, f"{panel['panelIndex']}:{panel['panelRefName']}")
        out.append(by_key()[(ref["type"], ref["id"])])
    return out


def dashboard_uses(title: str) -> set[tuple[str, str, str]]:
    """(data view title, field, use) of every panel on a dashboard."""
    return {
        (by_key()[("index-pattern", dv)]["attributes"]["title"], field, use)
        for obj in panel_objects(dashboard(title))
        for dv, field, use, _ in uses_of(obj)
    }


# --- the files ---------------------------------------------------------------------------------------------


def test_every_saved_object_parses_with_kibana_8_11_export_fields() -> None:
    """Each line is a saved object with id, type, attributes, references and 8.11's migration versions."""
    assert objects()
    for name, obj in saved_objects():
        assert {"id", "type", "attributes", "references"} <= obj.keys(), name
        assert obj["coreMigrationVersion"] == CORE_MIGRATION_VERSION, f"{name}: {obj['id']}"
        assert obj["typeMigrationVersion"] == TYPE_MIGRATION_VERSION[obj["type"]], f"{name}: {obj['id']}"


def test_embedded_json_strings_parse() -> None:
    """panelsJSON, optionsJSON, searchSourceJSON, layerListJSON and friends are valid JSON."""
    for name, obj in saved_objects():
        attrs = obj["attributes"]
        embedded = {key: value for key, value in attrs.items() if key.endswith("JSON")}
        for key in ("fields", "fieldFormatMap", "fieldAttrs", "runtimeFieldMap"):
            if key in attrs:
                embedded[key] = attrs[key]
        if "kibanaSavedObjectMeta" in attrs:
            embedded["searchSourceJSON"] = attrs["kibanaSavedObjectMeta"]["searchSourceJSON"]
        for key, value in embedded.items():
            try:
                json.loads(value)
            except (TypeError, json.JSONDecodeError) as exc:
                pytest.fail(f"{name}: {obj['id']} {key}: {exc}")


def test_each_object_is_defined_once() -> None:
    """No (type, id) appears twice: data views live in 00-data-views.ndjson only."""
    twice = [key for key, n in Counter((o["type"], o["id"]) for o in objects()).items() if n > 1]
    assert not twice


def test_every_reference_resolves_in_import_order() -> None:
    """Every reference names an object of its type that an earlier file, or the same one, imports."""
    imported: dict[tuple[str, str], str] = {}
    for name, obj in saved_objects():
        imported[(obj["type"], obj["id"])] = name
    for name, obj in saved_objects():
        for ref in obj["references"]:
            key = (ref["type"], ref["id"])
            assert key in imported, f"{name}: {obj['id']} references missing {key}"
            assert imported[key] <= name, f"{name}: {obj['id']} references {key}, imported later from {imported[key]}"


def test_dashboard_panels_resolve_to_objects_of_their_type() -> None:
    """Each panel's panelRefName has a reference whose type is the panel's, and panels fit the 48-column grid."""
    for dash in objects("dashboard"):
        cells: set[tuple[int, int]] = set()
        assert panels(dash), dash["id"]
        for panel, obj in zip(panels(dash), panel_objects(dash), strict=True):
            assert obj["type"] == panel["type"], f"{dash['id']}: panel {panel['panelIndex']}"
            grid = panel["gridData"]
            assert grid["i"] == panel["panelIndex"] and grid["x"] + grid["w"] <= GRID_COLUMNS
            xs, ys = range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
            area = {(x, y) for x in xs for y in ys}
            assert not area & cells, f"{dash['id']}: panel {panel['panelIndex']} overlaps another"
            cells |= area


def test_lens_layers_reference_their_data_views() -> None:
    """Every Lens layer has its `indexpattern-datasource-layer-<id>` reference to a data view of this set."""
    for lens in objects("lens"):
        state = lens["attributes"]["state"]
        datasource = state["datasourceStates"].get("formBased") or state["datasourceStates"]["indexpattern"]
        assert datasource["layers"], lens["id"]
        for layer_id in datasource["layers"]:
            ref = reference(lens, f"indexpattern-datasource-layer-{layer_id}")
            assert ref["type"] == "index-pattern" and ("index-pattern", ref["id"]) in by_key()


def test_lens_visualizations_show_columns_of_their_layers() -> None:
    """What a visualization draws are columns of its layer, and every column a formula refers to exists."""
    for lens in objects("lens"):
        state = lens["attributes"]["state"]
        layers = state["datasourceStates"]["formBased"]["layers"]
        vis = state["visualization"]
        for vis_layer in vis.get("layers", [vis]):  # XY has layers; metric and table are one layer
            columns = layers[vis_layer["layerId"]]["columns"]
            shown = {vis_layer.get(key) for key in ("xAccessor", "splitAccessor", "metricAccessor")} - {None}
            shown |= set(vis_layer.get("accessors", [])) | {c["columnId"] for c in vis.get("columns", [])}
            assert shown and shown <= columns.keys(), f"{lens['id']}: {shown - columns.keys()}"
            for column_id, column in columns.items():
                assert set(column.get("references", [])) <= columns.keys(), f"{lens['id']} {column_id}"
            assert set(layers[vis_layer["layerId"]]["columnOrder"]) == columns.keys(), lens["id"]


# --- fields against the mappings ---------------------------------------------------------------------


def test_data_views_cover_the_indices_and_their_time_fields_are_dates() -> None:
    """charging-events* finds the daily indices and the alias; alerts are timed by `since`; time fields are dates.

    charging-stations has no time field: it is the network now, which the time range must not filter.
    """
    events = [dv for dv in objects("index-pattern") if dv["attributes"]["title"] == "charging-events*"]
    assert len(events) == 1 and events[0]["attributes"]["timeFieldName"] == "timestamp"
    for name in ("charging-events-2026.01.01", "charging-events"):
        assert fnmatch.fnmatchcase(name, events[0]["attributes"]["title"])
    titles = [dv["attributes"]["title"] for dv in objects("index-pattern")]
    assert any(fnmatch.fnmatchcase("charging-deadletters", title) for title in titles)
    alerts = [
        dv for dv in objects("index-pattern") if fnmatch.fnmatchcase("charging-alerts", dv["attributes"]["title"])
    ]
    assert len(alerts) == 1 and alerts[0]["attributes"]["timeFieldName"] == "since"
    stations = [
        dv for dv in objects("index-pattern") if fnmatch.fnmatchcase("charging-stations", dv["attributes"]["title"])
    ]
    assert [dv["id"] for dv in stations] == ["evmonitor-charging-stations"]
    assert not stations[0]["attributes"].get("timeFieldName") and stations[0]["attributes"]["allowNoIndex"] is True
    for dv in objects("index-pattern"):
        if dv["id"] != "evmonitor-charging-stations":
            assert mapping_for(dv["id"]).get(dv["attributes"]["timeFieldName"]) in DATE, dv["id"]


def field_problems(objs: list[dict[str, Any]], mapping_of: Any) -> list[str]:
    """Every use of a field that its data view's mapping lacks, or whose type does not suit the use."""
    problems = []
    for obj in objs:
        for data_view, field, use, where in uses_of(obj):
            mapping, allowed = mapping_of(data_view), USES[use]
            if field not in mapping:
                problems.append(f"{obj['type']} {obj['id']} {where}: field {field!r} is not mapped")
            elif allowed is not None and mapping[field] not in allowed:
                problems.append(f"{obj['type']} {obj['id']} {where}: {use} on {field!r}, a {mapping[field]} field")
    return problems


def test_every_field_a_visualization_uses_exists_with_a_suitable_type() -> None:
    """Fields exist in the index template behind the data view, typed for their use (terms on keyword, ...)."""
    assert sum(len(uses_of(obj)) for obj in objects()) > 50
    problems = field_problems(objects(), mapping_for)
    assert not problems, "\n".join(problems)


def test_field_check_reports_renamed_and_mistyped_fields() -> None:
    """The check itself: a field gone from the mapping, or terms on a text field, is reported."""
    events = dict(mapping_for("evmonitor-charging-events"))
    del events["error_code"]
    events["status"] = "text"

    def mapping_of(data_view: str) -> dict[str, str]:
        return events if data_view == "evmonitor-charging-events" else mapping_for(data_view)

    problems = "\n".join(field_problems(objects(), mapping_of))
    assert "field 'error_code' is not mapped" in problems
    assert "terms on 'status', a text field" in problems
    assert kql_fields('event_type : "a: b" and not heartbeat : true') == {"event_type", "heartbeat"}


def test_deadletter_index_mapping() -> None:
    """The dead-letter template shapes charging-deadletters with the fields its panels read."""
    template = json.loads((STORAGE / "deadletters_template.json").read_text())
    assert any(fnmatch.fnmatchcase("charging-deadletters", p) for p in template["index_patterns"])
    fields = flatten(template["template"]["mappings"]["properties"])
    assert {k: fields[k] for k in ("reason", "detail", "source_topic", "received_at")} == {
        "reason": "keyword", "detail": "text", "source_topic": "keyword", "received_at": "date",
    }  # fmt: skip


# --- the dashboards the issue asks for ---------------------------------------------------------------------


def test_network_now_shows_current_status_and_a_map_of_stations_by_status() -> None:
    """Network now: stations by current status, the faulted or offline ones, a map coloured by status.

    All three read charging-stations (one document per station); the map gives each status its own colour.
    """
    uses = dashboard_uses("Network now")
    assert {("charging-stations*", "status", "terms"), ("charging-stations*", "location", "geo"),
            ("charging-stations*", "status", "color-categorical")} <= uses  # fmt: skip
    assert ("charging-events*", "timestamp", "date_histogram") in uses  # status changes over time
    panel_objs = panel_objects(dashboard("Network now"))
    queries = [o["attributes"]["state"]["query"]["query"] for o in panel_objs if o["type"] == "lens"]
    assert 'status : "Faulted" or status : "Offline"' in queries
    [map_] = [o for o in panel_objs if o["type"] == "map"]
    [layer] = [layer for layer in json.loads(map_["attributes"]["layerListJSON"]) if layer["type"] == "GEOJSON_VECTOR"]
    assert reference(map_, layer["sourceDescriptor"]["indexPatternRefName"])["id"] == "evmonitor-charging-stations"
    color = layer["style"]["properties"]["fillColor"]["options"]
    assert color["useCustomColorPalette"] and color["otherCategoryColor"]
    palette = {stop["stop"]: stop["color"] for stop in color["customColorPalette"]}
    assert sorted(palette) == sorted(STATION_STATUSES) and len(set(palette.values())) == len(STATION_STATUSES)


def test_sessions_and_energy_shows_sessions_over_time_and_energy() -> None:
    """Sessions and energy: sessions over time, energy from meter readings, stations by city and operator."""
    uses = dashboard_uses("Sessions and energy")
    assert ("charging-events*", "timestamp", "date_histogram") in uses
    assert ("charging-events*", "meter_stop_wh", "formula") in uses
    assert {("charging-events*", f, "terms") for f in ("city", "operator")} <= uses
    queries = [o["attributes"]["state"]["query"]["query"] for o in panel_objects(dashboard("Sessions and energy"))]
    assert any('"session_started"' in q for q in queries)


def test_faults_shows_error_codes_over_time_and_worst_stations() -> None:
    """Faults: error codes over time and the stations with the most faults."""
    uses = dashboard_uses("Faults")
    assert {("charging-events*", "timestamp", "date_histogram"), ("charging-events*", "error_code", "terms"),
            ("charging-events*", "station_id", "terms")} <= uses  # fmt: skip


def test_ingest_health_shows_events_by_type_and_dead_letters_by_reason() -> None:
    """Ingest health: events by event_type, dead letters by reason from charging-deadletters."""
    uses = dashboard_uses("Ingest health")
    assert ("charging-events*", "event_type", "terms") in uses
    assert ("charging-deadletters*", "reason", "terms") in uses


def test_alerts_shows_open_alerts_by_kind_maintenance_fault_durations_and_a_map() -> None:
    """Alerts: open alerts by kind, alerts over `since`, maintenance flags, fault durations, a map on `location`."""
    uses = dashboard_uses("Alerts")
    assert {("charging-alerts*", "kind", "terms"), ("charging-alerts*", "since", "date_histogram"),
            ("charging-alerts*", "duration_min", "average"), ("charging-alerts*", "duration_min", "max"),
            ("charging-alerts*", "error_code", "terms"), ("charging-alerts*", "location", "geo"),
            ("charging-alerts*", "kind", "color-categorical")} <= uses  # fmt: skip
    panel_objs = panel_objects(dashboard("Alerts"))
    queries = [o["attributes"]["state"]["query"]["query"] for o in panel_objs if o["type"] == "lens"]
    queries += [layer["query"]["query"] for o in panel_objs if o["type"] == "map"
                for layer in json.loads(o["attributes"]["layerListJSON"]) if layer.get("query")]  # fmt: skip
    assert sum('status : "open"' in q for q in queries) >= 4  # total, by kind, table, map
    assert any('kind : "maintenance_due"' in q for q in queries)
    assert any('kind : "connector_fault"' in q for q in queries)


def test_dashboards_restore_a_time_range() -> None:
    """Each dashboard opens on its own time range and refreshes by itself."""
    for dash in objects("dashboard"):
        attrs = dash["attributes"]
        assert attrs["timeRestore"] and attrs["timeFrom"].startswith("now-") and attrs["timeTo"] == "now"
        assert attrs["refreshInterval"]["pause"] is False, dash["id"]
