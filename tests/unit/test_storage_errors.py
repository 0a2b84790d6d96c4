"""Every driver exception maps to TransientError or a refusal; both stores keep the Sink contract."""

from __future__ import annotations

import inspect
import json

import elastic_transport
import elasticsearch
import kafka.errors
import psycopg2
import psycopg2.errorcodes
import psycopg2.errors
import pytest
import sqlalchemy as sa
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig

from evmonitor.errors import SinkRejected, TransientError
from evmonitor.names import SinkName
from evmonitor.poison import isolate_poison
from evmonitor.storage import Rejected, Sink
from evmonitor.storage import kafka as kafka_store
from evmonitor.storage import postgres, search


def subclasses(root: type) -> list[type]:
    """`root` and every class below it, in a stable order."""
    found, todo = {root}, [root]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return sorted(found, key=lambda c: (c.__module__, c.__qualname__))


def outcome(translate, exc: BaseException) -> type:
    """The class of what `translate()` lets out when `exc` is raised inside it."""
    with pytest.raises(Exception) as caught:
        with translate():
            raise exc
    return type(caught.value)


def sqlalchemy_instance(cls: type) -> BaseException:
    """An instance of any SQLAlchemy exception class, whatever its constructor wants."""
    placeholder = {"orig": Exception("boom"), "params": {}}
    required = [p for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]  # fmt: skip
    return cls(*(placeholder.get(p.name, "boom") for p in required))


@pytest.mark.parametrize("cls", subclasses(psycopg2.Error), ids=lambda c: c.__name__)
def test_every_psycopg2_error_raw_or_wrapped_by_sqlalchemy_is_transient_or_a_refusal(cls):
    """A data or integrity error (SQLSTATE 22, 23) is a refusal; every other one is transient, the
    lock table's overflow (53200) as the transient error a smaller transaction avoids."""
    want = SinkRejected if issubclass(cls, (psycopg2.DataError, psycopg2.IntegrityError)) else TransientError
    if issubclass(cls, psycopg2.errors.OutOfMemory):
        want = postgres.LockTableFull
        assert issubclass(want, TransientError)
    assert outcome(postgres.translate_errors, cls("boom")) is want
    wrapped = sa.exc.DBAPIError.instance("SELECT 1", {}, cls("boom"), psycopg2.Error)
    assert outcome(postgres.translate_errors, wrapped) is want


def test_psycopg2_raises_every_data_and_integrity_sqlstate_as_a_refusal_class():
    """The refusal classes cover SQLSTATE classes 22 and 23 entirely, and nothing else."""
    for name, code in vars(psycopg2.errorcodes).items():
        if not (name.isupper() and isinstance(code, str) and len(code) == 5):
            continue
        try:
            cls = psycopg2.errors.lookup(code)
        except KeyError:
            continue
        refused = issubclass(cls, (psycopg2.DataError, psycopg2.IntegrityError))
        assert refused == (code[:2] in ("22", "23")), (code, cls)


@pytest.mark.parametrize("cls", subclasses(sa.exc.SQLAlchemyError), ids=lambda c: c.__name__)
def test_every_sqlalchemy_error_is_transient_or_a_refusal(cls):
    """SQLAlchemy's own errors (pool timeout, closed connection, our own bugs) are waited out."""
    got = outcome(postgres.translate_errors, sqlalchemy_instance(cls))
    assert got is (SinkRejected if issubclass(cls, (sa.exc.DataError, sa.exc.IntegrityError)) else TransientError)


def test_an_os_error_under_postgres_is_transient():
    """A socket error that reaches us unwrapped is the server being unreachable."""
    assert outcome(postgres.translate_errors, ConnectionRefusedError("refused")) is TransientError


def api_error(cls: type, status: int) -> BaseException:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.01, NodeConfig("http", "localhost", 9200))
    return cls("boom", meta=meta, body={"error": "boom"})


@pytest.mark.parametrize("cls", subclasses(elasticsearch.ApiError), ids=lambda c: c.__name__)
@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 408, 409, 413, 429, 500, 502, 503, 504])
def test_every_elasticsearch_api_error_is_transient_or_a_refusal(cls, status):
    """A request refused for its content (400, 413) is a refusal; every other status is transient."""
    want = SinkRejected if status in (400, 413) else TransientError
    assert outcome(search.translate_errors, api_error(cls, status)) is want


@pytest.mark.parametrize("cls", subclasses(elastic_transport.TransportError), ids=lambda c: c.__name__)
def test_every_elastic_transport_error_is_transient(cls):
    """Connection, timeout, TLS, sniffing and serialization errors are the server's state, not ours."""
    assert outcome(search.translate_errors, cls("boom")) is TransientError


@pytest.mark.parametrize("cls", subclasses(kafka.errors.KafkaError), ids=lambda c: c.__name__)
def test_every_kafka_error_is_transient(cls):
    """What Kafka refuses is the broker's state; the records we send passed validation."""
    assert outcome(kafka_store.translate_errors, cls("boom")) is TransientError


# --- the Sink contract, on fakes --------------------------------------------------------------


def events(n: int) -> list[dict]:
    return [{"event_id": f"e{i}", "timestamp": "2026-11-24T12:00:00Z"} for i in range(n)]


def test_isolate_poison_returns_exactly_the_refused_events_with_their_reason():
    """A store that refuses whole batches: bisection keeps every good event and refuses only the bad."""
    written, poison = [], {"e3", "e11"}

    def write(batch):
        if poison & {e["event_id"] for e in batch}:
            raise SinkRejected("poison in batch")
        written.extend(batch)
        return []

    batch = events(16)
    rejected = isolate_poison(batch, write)
    assert {r.event["event_id"] for r in rejected} == poison
    assert all(r.reason == "poison in batch" for r in rejected)
    assert sorted(e["event_id"] for e in written) == sorted(e["event_id"] for e in batch if e["event_id"] not in poison)


def test_isolate_poison_lets_a_store_outage_through():
    """TransientError is never taken as a verdict on the data."""

    def write(batch):
        raise TransientError("down")

    with pytest.raises(TransientError):
        isolate_poison(events(4), write)


class FakeBulkClient:
    """An Elasticsearch client whose bulk answers by a plain function of the documents."""

    def __init__(self, answer):
        self.answer = answer

    def bulk(self, operations):
        lines = operations.decode().splitlines()
        return self.answer([json.loads(line) for line in lines[1::2]])


def test_search_store_returns_refused_documents_and_bisects_a_request_refused_whole():
    """Per-document 4xx come back as Rejected; a 413 for a big batch is split until it fits."""

    def answer(docs):
        if len(docs) > 4:
            raise api_error(elasticsearch.ApiError, 413)
        items = [{"index": {"status": 400 if d["event_id"] == "e5" else 201,
                            "error": {"type": "mapper_parsing_exception", "reason": "bad"}}} for d in docs]  # fmt: skip
        return {"errors": any(i["index"]["status"] >= 300 for i in items), "items": items}

    store = search.SearchStore(FakeBulkClient(answer))
    [rejected] = store.write(events(10))
    assert rejected == Rejected(events(10)[5], "elasticsearch 400: mapper_parsing_exception: bad")


def test_search_store_raises_transient_when_any_document_is_refused_for_now():
    """A 429 or 5xx on one document means retry the batch, not dead-letter the document."""
    items = [{"index": {"status": 201}}, {"index": {"status": 429}}]
    store = search.SearchStore(FakeBulkClient(lambda docs: {"errors": True, "items": items}))
    with pytest.raises(TransientError):
        store.write(events(2))


def test_both_stores_are_sinks_with_their_sink_name():
    """PostgresStore and SearchStore implement `Sink.write` and name their sink."""
    assert (postgres.PostgresStore.name, search.SearchStore.name) == (SinkName.PERSIST, SinkName.INDEX)
    for store in (postgres.PostgresStore, search.SearchStore):
        assert inspect.signature(store.write).parameters.keys() == inspect.signature(Sink.write).parameters.keys()
