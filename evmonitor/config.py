"""One `Settings` object, built once per entry point and passed down.

Library code never reads `os.environ`: entry points (CLI, Celery app, bridge) call
`Settings()` which reads `EVMON_*` variables and a `.env` file; tests build
`Settings(...)` directly.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from evmonitor.errors import ConfigError
from evmonitor.names import DEFAULT_EXCLUDED_CAUSES, OutageCause, SinkName, Topic

__all__ = ["REPO_ROOT", "Settings", "default_state_dir", "load_settings"]

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Every knob of evmonitor. Environment: `EVMON_<NAME>`; also read from `.env`."""

    model_config = SettingsConfigDict(env_prefix="EVMON_", env_file=".env", extra="ignore")

    # --- one URL per service (defaults: the embedded local stack) ---
    kafka_bootstrap: str = "127.0.0.1:9092"
    database_url: str = "postgresql+psycopg2://evuser:evpass@127.0.0.1:5432/evcharging"
    broker_url: str = "redis://127.0.0.1:6379/0"
    elasticsearch_url: str = "http://127.0.0.1:9200"
    # Used only by `evmonitor up` to create the role and database above where the server allows.
    admin_database_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"

    # --- Kafka ---
    topic_partitions: int = Field(6, ge=1)
    deadletter_topic: str = Topic.DEADLETTER
    consumer_group: str = "evmonitor-bridge"

    # --- bridge ---
    sinks: Annotated[list[SinkName], NoDecode] = Field(
        [SinkName.PERSIST, SinkName.INDEX], min_length=1, description="where valid events go; offsets wait for all of them"
    )
    # 2,000: in a backlog, a lane's batch folds more events into each station's and session's row
    # (PostgreSQL ~30% less CPU per event than at 500, BENCHMARKS.md); below backlog rates batches
    # close on age long before. It takes a lock per distinct station and session: ~800 in the
    # bench's drain, at worst 4,000 (every event a new station and session), so two persist
    # processes can pass PostgreSQL's default lock table (6,400 for all sessions); a batch that
    # does not fit is written in halves (evmonitor.storage.postgres).
    batch_max_events: int = Field(2000, ge=1, description="flush a micro-batch at this many events ...")
    batch_max_ms: int = Field(200, ge=1, description="... or when its oldest event is this old")
    kafka_partition_fetch_bytes: int = Field(128 * 1024, ge=16 * 1024, le=64 * 1024 * 1024,
                                             description="the consumer's fetch per partition: small enough that a poll "
                                             "spans several partitions, so batches of different lanes alternate")  # fmt: skip
    batch_lanes: int = Field(6, ge=1, le=256, description="micro-batches by partition number modulo this: batches of "
                             "different lanes share no station, so persist workers write them without waiting on "
                             "each other's per-station locks")  # fmt: skip
    max_inflight_batches: int = Field(64, ge=1, description="pause fetching beyond this many unfinished batches")
    # 32,000 = 64 x 500: what the bridge holds for re-publishing and Redis holds (the payloads of
    # unfinished batches) stays what it was with 500-event batches; small batches (closed on
    # age below backlog rates) still get 64 in flight, so a slow sink does not stall the others
    max_inflight_events: int = Field(32_000, ge=1, description="... or beyond this many events in them (a single "
                                     "batch larger than this still goes out alone)")  # fmt: skip
    commit_interval_s: float = Field(1.0, gt=0, description="commit every this often while batches are in flight; "
                                     "a bridge that is caught up commits at once")  # fmt: skip
    stats_interval_s: float = Field(10.0, gt=0, description="how often the bridge logs its counters")
    completion_poll_s: float = Field(0.1, gt=0)
    republish_after_s: float = Field(60.0, gt=0, description="re-publish a batch not completed by then")
    payload_ttl_s: int = Field(900, ge=1, description="how long a batch's events stay in Redis for its tasks (each "
                               "re-publish renews it; finished batches are deleted at once); above "
                               "EVMON_REPUBLISH_AFTER_S")  # fmt: skip
    deadletter_max_ratio: float = Field(
        0.5, ge=0, le=1, description="stop when more than this share of a window is invalid"
    )
    deadletter_window: int = Field(1000, ge=1)
    deadletter_batch_bytes: int = Field(1024 * 1024, ge=16 * 1024, le=2 * 1024 * 1024,
                                        description="the dead-letter producer's batch per partition (kafka-python "
                                        "batch_size): above a `too_large` record's dead letter (~333 KB for a 250 KB "
                                        "original), so those share batches with the small ones around them")  # fmt: skip
    watermark_interval_s: float = Field(
        2.0, gt=0, description="how often the bridge records how far each partition is processed (beat judges by it)"
    )

    # --- the event contract's limits ---
    max_payload_bytes: int = Field(64 * 1024, ge=256)
    max_event_age_s: float = Field(30 * 86400, gt=0, description="older timestamps are rejected")
    max_event_future_s: float = Field(15 * 60, ge=0, description="timestamps further ahead are rejected")
    max_power_kw: float = 1000.0
    max_meter_wh: int = 10**12
    max_price_eur_per_kwh: float = 10.0
    id_tag_hash_key: str = Field("", description="HMAC key for id_tag hashes (empty: plain SHA-256)")

    # --- Celery: whose tasks are whose ---
    stack_id: str = Field(
        "",
        description="prefixes this pipeline's keys in Redis (queues, unacknowledged tasks), so tasks published by "
        "one stack are never run by another's workers; default: derived from EVMON_KAFKA_BOOTSTRAP and "
        "EVMON_DATABASE_URL (`evmonitor up` gives a stack whose Kafka keeps its log in memory a new one each start)",
    )

    # --- workers ---
    worker_prefetch: int = Field(2, ge=1)
    visibility_timeout_s: int = Field(300, ge=1)
    retry_backoff_max_s: int = Field(15, ge=1, description="cap of the retry backoff while a store is down")
    persist_processes: int = Field(2, ge=1, le=64, description="solo worker processes `evmonitor up` runs for queue "
                                   "persist (`worker --pool solo -c N`): one is serial, its Python then its wait on "
                                   "PostgreSQL; two overlap them; more than the cores does not help")
    index_processes: int = Field(1, ge=1, le=64, description="solo worker processes `evmonitor up` runs for queue index")

    # --- Flower (basic auth; `evmonitor up` generates credentials for the embedded stack) ---
    flower_port: int = 5555
    flower_address: str = "127.0.0.1"
    flower_user: str = "evmonitor"
    flower_password: str = Field("", description="required by `evmonitor flower`; no default outside the embedded stack")

    # --- the operators' API and page (`evmonitor api`) ---
    api_listen: str = Field("127.0.0.1:8000", pattern=r"^[^:\s]+:\d{1,5}$", description="HOST:PORT of `evmonitor api`")
    api_session_ttl_s: float = Field(12 * 3600.0, gt=0, description="how long a browser stays signed in")
    api_poll_s: float = Field(1.0, gt=0, le=5, description="how often the live page's stream looks at PostgreSQL")
    bridge_metrics_port: int = Field(0, ge=0, le=65535, description="port of the bridge's /metrics (0: none)")
    gateway_metrics_port: int = Field(0, ge=0, le=65535, description="port of the OCPP gateway's /metrics (0: none)")
    metrics_address: str = Field("127.0.0.1", description="address the bridge's, workers' and gateway's /metrics "
                                 "listen on (no auth: keep it private; 0.0.0.0 inside a container network)")
    metrics_port_base: int = Field(9464, ge=0, le=65500, description="`evmonitor up` serves /metrics of the bridge, "
                                   "workers persist, index, maintenance and the gateway on this port and the next "
                                   "four (a taken one is replaced by a free port, and said); 0: none")

    # --- maintenance (beat): stale sessions, faults, availability, reports ---
    stale_after_s: float = Field(1800.0, gt=0, description="an active session silent this long is marked stale")
    heartbeat_interval_s: float = Field(900.0, gt=0, description="how often stations send a heartbeat")
    offline_after_heartbeats: int = Field(3, ge=1, description="missed heartbeats before a station is offline")
    maintenance_fault_threshold: int = Field(3, ge=1, description="faults within the window that flag a station")
    maintenance_fault_window_s: float = Field(86400.0, gt=0)
    alert_lookback_s: float = Field(7 * 86400.0, gt=0, description="how far back late events may change alerts")
    alert_debounce_s: float = Field(
        120.0, ge=0, description="a fault that clears and returns within this many seconds stays one alert (0: off)"
    )
    report_time: str = Field("06:00", pattern=r"^([01]?\d|2[0-3]):[0-5]\d$", description="local HH:MM of the daily report")
    reports_dir: Path | None = Field(None, description="where reports go (default: <state_dir>/reports)")
    network_name: str = "evmonitor"
    rollup_interval_s: float = Field(60.0, gt=0)
    alerts_interval_s: float = Field(60.0, gt=0)
    deadletter_interval_s: float = Field(15.0, gt=0)
    batch_marker_retention_s: float = Field(86400.0, gt=0, description="ingest_batches markers older than this are pruned")
    alerts_index: str = "charging-alerts"
    stations_index: str = "charging-stations"
    deadletters_index: str = "charging-deadletters"
    deadletter_consumer_group: str = "evmonitor-deadletter-indexer"
    deadletter_batch_max: int = Field(2000, ge=1)

    # --- retention (beat): what is older than this is dropped ---
    retention_events_days: int = Field(90, ge=1, description="daily event indices and status history kept this many days")
    retention_alerts_days: int = Field(365, ge=1, description="closed alerts kept this many days")
    retention_hourly_days: int = Field(400, ge=1, description="hourly rollups kept this many days (daily ones are kept)")
    retention_sessions_days: int = Field(0, ge=0, description="sessions kept this many days after they end (0: forever)")
    retention_interval_s: float = Field(3600.0, gt=0, description="how often the retention job runs")

    # --- uptime (beat's outage ledger, `evmonitor outages`, `evmonitor uptime`) ---
    outages_interval_s: float = Field(300.0, gt=0, description="how often the outage ledger is recomputed")
    uptime_excluded_causes: Annotated[list[OutageCause], NoDecode] = Field(
        list(DEFAULT_EXCLUDED_CAUSES), description="outage causes outside the operator's control: not counted against uptime"
    )
    uptime_target_pct: Decimal = Field(Decimal("97"), ge=0, le=100, description="a port below this trailing uptime alerts")
    uptime_window_days: int = Field(365, ge=1, description="the trailing window of the uptime alert (NEVI: 12 months)")
    min_session_wh: int = Field(1, ge=0, description="a completed session that delivered less than this many Wh "
                                "failed (and is an outage of its port); 0: only sessions ending in a fault fail")

    # --- alert notifications (beat's deliver_notifications job; every setting unset: off) ---
    notify_webhook_url: str = Field("", description="POST each alert opened/closed as JSON here (empty: no webhook)")
    notify_webhook_secret: str = Field(
        "", description="HMAC-SHA256 key of the X-Evmonitor-Signature header; required with EVMON_NOTIFY_WEBHOOK_URL"
    )
    notify_email_to: Annotated[list[str], NoDecode] = Field(
        [], description="comma-separated addresses that get an e-mail per alert opened/closed (empty: no e-mail)"
    )
    smtp_host: str = Field("", description="SMTP server for alert e-mails")
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_user: str = Field("", description="SMTP login (empty: no login)")
    smtp_password: str = ""
    smtp_from: str = Field("", description="From: of alert e-mails; required with EVMON_NOTIFY_EMAIL_TO")
    smtp_starttls: bool = Field(False, description="upgrade the SMTP connection with STARTTLS before logging in")
    notify_interval_s: float = Field(10.0, gt=0, description="how often pending notifications are sent")
    notify_timeout_s: float = Field(10.0, gt=0, description="timeout of one webhook POST or SMTP conversation")
    notify_retry_max_s: float = Field(3600.0, gt=0, description="cap of the exponential backoff between attempts")
    notify_max_age_s: float = Field(86400.0, gt=0, description="a notification still undelivered this long is given up")

    # --- OCPP gateway (`evmonitor gateway`) ---
    ocpp_listen: str = Field("127.0.0.1:9000", pattern=r"^.+:\d+$", description="HOST:PORT of ws://HOST:PORT/ocpp/<id>")
    ocpp_tls_cert: Path | None = Field(None, description="PEM certificate (chain): serve wss:// (security profile 2)")
    ocpp_tls_key: Path | None = Field(None, description="PEM private key of ocpp_tls_cert (default: in the cert file)")
    ocpp_publish_timeout_s: float = Field(
        10.0, gt=0, description="answer a charger with CALLERROR if Kafka has not acknowledged by then"
    )

    # --- search ---
    index_prefix: str = "charging-events"

    # --- embedded stack ---
    state_dir: Path = Field(
        default_factory=lambda: default_state_dir(),
        description="the embedded stack's state, logs and reports: one place whatever the current directory",
    )
    sql_dir: Path = REPO_ROOT / "sql"
    timezone: str = Field("UTC", description="IANA zone of local days in rollups, availability and reports")

    @field_validator("sinks", "uptime_excluded_causes", "notify_email_to", mode="before")
    @classmethod
    def _list_as_people_write_it(cls, value: Any) -> Any:
        # EVMON_SINKS=persist, =persist,index and the JSON form ["persist","index"] all work
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("admin_database_url", mode="after")
    @classmethod
    def _admin_url_on_psycopg2(cls, value: str) -> str:
        # as `sqlalchemy_url` does for the app's URL: a bare postgresql:// would ask for psycopg 3
        if value.startswith(("postgresql://", "postgres://")):
            return "postgresql+psycopg2://" + value.split("://", 1)[1]
        return value

    @field_validator("state_dir", mode="after")
    @classmethod
    def _absolute_state_dir(cls, value: Path) -> Path:
        # `status`, `down` and `up` from any directory must see the same stack
        return value.expanduser().absolute()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # fail at start, not at 06:00 when the first report is due
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not an IANA time zone: {value!r} (for example Europe/Amsterdam)") from None
        return value

    @model_validator(mode="after")
    def _history_outlives_lookback(self) -> "Settings":
        # fault and availability jobs redraw alerts from the status history within the lookback
        if self.retention_events_days * 86400 <= self.alert_lookback_s:
            raise ValueError(
                "EVMON_RETENTION_EVENTS_DAYS must keep more than EVMON_ALERT_LOOKBACK_S of status history "
                f"({self.retention_events_days} days <= {self.alert_lookback_s:.0f} s)"
            )
        return self

    @model_validator(mode="after")
    def _payloads_outlive_republish(self) -> "Settings":
        # the bridge renews a waiting batch's payload only when it re-publishes the batch
        if self.payload_ttl_s <= self.republish_after_s:
            raise ValueError(
                "EVMON_PAYLOAD_TTL_S must be longer than EVMON_REPUBLISH_AFTER_S "
                f"({self.payload_ttl_s} s <= {self.republish_after_s:.0f} s): a batch's events would leave Redis "
                "before the bridge sends them again"
            )
        return self

    @model_validator(mode="after")
    def _notifications_complete(self) -> "Settings":
        if self.notify_webhook_url and not self.notify_webhook_secret:
            raise ValueError("EVMON_NOTIFY_WEBHOOK_URL needs EVMON_NOTIFY_WEBHOOK_SECRET (the key receivers verify with)")
        if self.notify_email_to and not (self.smtp_host and self.smtp_from):
            raise ValueError("EVMON_NOTIFY_EMAIL_TO needs EVMON_SMTP_HOST and EVMON_SMTP_FROM")
        return self

    # --- derived values (computed from the fields above, never set separately) ---

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def report_clock(self) -> time:
        hour, minute = self.report_time.split(":")
        return time(int(hour), int(minute))

    @property
    def reports_path(self) -> Path:
        return self.reports_dir if self.reports_dir is not None else Path(self.state_dir) / "reports"

    @property
    def stale_after(self) -> timedelta:
        return timedelta(seconds=self.stale_after_s)

    @property
    def offline_after(self) -> timedelta:
        return timedelta(seconds=self.heartbeat_interval_s * self.offline_after_heartbeats)

    @property
    def fault_window(self) -> timedelta:
        return timedelta(seconds=self.maintenance_fault_window_s)

    @property
    def lookback(self) -> timedelta:
        return timedelta(seconds=self.alert_lookback_s)

    @property
    def broker_key_prefix(self) -> str:
        """The prefix of every Redis key Celery uses for this stack (see `stack_id`)."""
        stack = self.stack_id or hashlib.sha256(f"{self.kafka_bootstrap}|{self.database_url}".encode()).hexdigest()[:12]
        return f"evmonitor:{stack}:"

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg2://" + url.split("://", 1)[1]
        return url


def default_state_dir() -> Path:
    """Per user: `$XDG_STATE_HOME/evmonitor`, else `~/.local/state/evmonitor`."""
    base = os.environ.get("XDG_STATE_HOME")
    return (Path(base) if base else Path.home() / ".local" / "state") / "evmonitor"


def load_settings(**overrides: Any) -> Settings:
    """`Settings()` for an entry point: a bad value raises `ConfigError` naming the variable.

    The message is one line per bad setting (`EVMON_SINKS='persist,disk': Input should be
    'persist' or 'index'`), never a traceback.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if not error["loc"]:  # a rule across settings: its message names them
                problems.append(error["msg"].removeprefix("Value error, "))
                continue
            name = "EVMON_" + str(error["loc"][0]).upper()
            value = error.get("input")
            shown = f"={value!r}" if isinstance(value, (str, int, float)) else ""
            problems.append(f"{name}{shown}: {error['msg']}")
        raise ConfigError("bad setting: " + "; ".join(problems)) from None
