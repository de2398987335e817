"""The prediction service behind the HTTP routes: everything except HTTP itself.

:class:`InferenceService` owns the expensive, per-container objects (the
champion tracker with its registry client and onnxruntime session, the event
log and its client, the log delivery) and is built once from
:class:`~mlsys.settings.Settings`; tests build it with their own registry, log
and clock.

Events go through one :class:`~lambda_inference.events.EventSink` chosen by
``log_delivery``: ``sync`` (written in the request), ``background`` (queued and
written in batches by a writer thread; the local server's default) or
``stdout`` (printed for CloudWatch Logs ingestion; the predict function on
AWS). Whatever the delivery, the admin routes read their own writes:
``GET /log`` first flushes the sink, and a clear is queued behind the events
emitted before it, so it removes those and none emitted after it.
:meth:`InferenceService.close` drains the sink.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TextIO

from lambda_inference.edge import LogQuery, PredictBody, fit_log_page
from lambda_inference.events import (
    MAX_LOGGED_INPUT_BYTES,
    EventSink,
    StdoutSink,
    StoreSink,
    inputs_field,
    sampled_input_mode,
)
from lambda_inference.feedback import FEEDBACK_ITEMS_PER_EVENT, feedback_items
from lambda_inference.observability import Telemetry, logger
from lambda_inference.openapi import openapi_document
from lambda_inference.predictor import ChampionTracker, Clock, ServingModel
from lambda_inference.validation import SMALL_ROWS, batch_records
from mlsys.contract import Prediction
from mlsys.errors import MlsysError
from mlsys.eventlog import Event, EventLog, open_event_log_for
from mlsys.eventlog.fields import bounded_data, outputs_field
from mlsys.knobs import default_of
from mlsys.registry import ModelRegistry
from mlsys.rollout.shadow import shadow_event
from mlsys.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

Endpoint = Literal["stream", "batch"]
LOG_FLUSH_SECONDS = 10.0
"""How long ``GET /log`` and a clear wait for queued events to reach the store."""


@dataclass(frozen=True, kw_only=True)
class Limits:
    max_batch_records: int = default_of("runtime", "max_batch_records")
    max_body_bytes: int = default_of("runtime", "max_body_bytes")
    max_log_page: int = default_of("runtime", "max_log_page")


class InferenceService:
    def __init__(
        self,
        *,
        tracker: ChampionTracker,
        open_log: Callable[[], EventLog],
        telemetry: Telemetry,
        limits: Limits,
        sink: EventSink | None = None,
        log_delivery: str = default_of("runtime", "log_delivery"),
        stdout: TextIO | None = None,
        log_inputs: str = default_of("runtime", "log_inputs"),
        log_inputs_sample_rate: float = default_of("runtime", "log_inputs_sample_rate"),
        log_flush_seconds: float = LOG_FLUSH_SECONDS,
    ) -> None:
        self.tracker = tracker
        self.telemetry = telemetry
        self.limits = limits
        self.log_inputs = log_inputs
        self.log_inputs_sample_rate = log_inputs_sample_rate
        self.log_flush_seconds = log_flush_seconds
        self._open_log = open_log
        self._log: EventLog | None = None
        self._log_lock = threading.Lock()
        self.sink = sink if sink is not None else self._sink_for(log_delivery, stdout=stdout)

    def _sink_for(self, delivery: str, *, stdout: TextIO | None) -> EventSink:
        if delivery == "stdout":
            return StdoutSink(stdout)
        if delivery == "sync":
            return StoreSink(self.event_log, fallback=StdoutSink(stdout))
        # ``background`` needs a writer thread, which only a long-lived process can run: the
        # local server builds that sink itself and passes it in (it is not in the Lambda bundle).
        raise ValueError(
            f"log delivery {delivery!r} needs its sink passed in; sync and stdout are built here"
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Clock = time.monotonic,
        s3_client: S3Client | None = None,
        dynamodb_client: DynamoDBClient | None = None,
        emit_metrics: bool = True,
        stdout: TextIO | None = None,
        sink: EventSink | None = None,
    ) -> InferenceService:
        telemetry = Telemetry(enabled=emit_metrics, tracing=emit_metrics and settings.tracing)
        registry = ModelRegistry.open(
            settings.registry_uri, model_name=settings.model_name, s3_client=s3_client
        )
        tracker = ChampionTracker(
            registry,
            refresh_seconds=settings.model_refresh_seconds,
            clock=clock,
            on_load=lambda serving, seconds: telemetry.model_loaded(
                version=serving.version, seconds=seconds
            ),
            traced=telemetry.traced,
        )

        def open_log() -> EventLog:
            return open_event_log_for(settings, client=dynamodb_client)

        return cls(
            tracker=tracker,
            open_log=open_log,
            telemetry=telemetry,
            limits=Limits(
                max_batch_records=settings.max_batch_records,
                max_body_bytes=settings.max_body_bytes,
                max_log_page=settings.max_log_page,
            ),
            sink=sink,
            log_delivery=settings.log_delivery,
            stdout=stdout,
            log_inputs=settings.log_inputs,
            log_inputs_sample_rate=settings.log_inputs_sample_rate,
        )

    def _input_mode(self, request_id: str) -> str:
        return sampled_input_mode(
            self.log_inputs, sample_rate=self.log_inputs_sample_rate, request_id=request_id
        )

    def event_log(self) -> EventLog:
        """The event log, opened on first use (the predict function with stdout
        delivery never opens it, so never pays for a DynamoDB client)."""
        log = self._log
        if log is None:
            with self._log_lock:
                if self._log is None:
                    self._log = self._open_log()
                log = self._log
        return log

    def close(self) -> None:
        """Write the events still queued (``background`` delivery); call once, at shutdown."""
        self.sink.close(timeout=self.log_flush_seconds)

    def _flush_log(self) -> None:
        """Let a read see every event emitted before it (read-your-writes)."""
        if not self.sink.flush(timeout=self.log_flush_seconds):
            logger.warning(
                "system-log events are still queued; this read may miss the newest ones",
                extra=self.sink.describe(),
            )

    # --- predictions -------------------------------------------------------------
    def predict(self, endpoint: Endpoint, body: PredictBody, *, request_id: str) -> dict[str, Any]:
        data = body.data
        serving, shadow = self.tracker.for_request(request_id)
        if endpoint == "stream":
            records = serving.encoder.as_record_list(data)
        else:
            records = batch_records(data, max_records=self.limits.max_batch_records)
        # A few records never need the body scanned for booleans (see RecordEncoder.encode).
        booleans = len(records) > SMALL_ROWS and body.has_booleans
        with self.telemetry.traced("predict"):
            prediction = serving.predict(records, body_has_booleans=booleans)
        response = self._response(endpoint, serving, prediction, request_id)
        latency_ms = (time.perf_counter() - body.received_at) * 1000.0
        classes = (
            list(serving.card.classes)
            if serving.card.is_classifier and serving.card.classes is not None
            else None
        )
        metrics = self.telemetry.request(
            version=serving.version,
            records=len(records),
            latency_ms=latency_ms,
            prediction=prediction,
            classes=classes,
        )
        self.sink.emit(
            Event(
                type="prediction",
                request_id=request_id,
                model_version=serving.version,
                # Not bounded here: the sink bounds it (MAX_EVENT_DATA_BYTES) as it
                # serialises, so a prediction is serialised once.
                data=self._event_data(
                    endpoint,
                    body,
                    records=records,
                    prediction=prediction,
                    classes=classes,
                    latency_ms=latency_ms,
                    request_id=request_id,
                ),
            ),
            metrics,
        )
        if shadow is not None:
            self.sink.emit(
                shadow_event(
                    champion=serving,
                    candidate=shadow,
                    records=records,
                    champion_prediction=prediction,
                    body_has_booleans=booleans,
                    request_id=request_id,
                    endpoint=endpoint,
                )
            )
        return response

    def _event_data(
        self,
        endpoint: Endpoint,
        body: PredictBody,
        *,
        records: list[Any],
        prediction: Prediction,
        classes: list[Any] | None,
        latency_ms: float,
        request_id: str,
    ) -> dict[str, Any]:
        """A prediction event's data: inputs (or their digest), outputs, latency."""
        mode = self.log_inputs
        if mode == "full" and len(body.raw) <= MAX_LOGGED_INPUT_BYTES:
            inputs: dict[str, Any] = {"inputs": body.data}  # the usual case, without a call
        else:
            inputs = inputs_field(body.data, body.raw, mode=self._input_mode(request_id))
        return {
            "endpoint": endpoint,
            "records": len(records),
            **inputs,
            **outputs_field(prediction, single=endpoint == "stream", classes=classes),
            "latency_ms": round(latency_ms, 3),
        }

    @staticmethod
    def _response(
        endpoint: Endpoint, serving: ServingModel, prediction: Prediction, request_id: str
    ) -> dict[str, Any]:
        card = serving.card
        probabilities = prediction.probabilities
        if endpoint == "stream":
            response: dict[str, Any] = {"result": prediction.values[0]}
            if probabilities is not None and card.classes is not None:
                response["probabilities"] = dict(
                    zip(card.classes, probabilities[0].tolist(), strict=True)
                )
        else:
            response = {"result": prediction.values}
            if probabilities is not None and card.classes is not None:
                classes = card.classes
                response["probabilities"] = [
                    dict(zip(classes, row, strict=True)) for row in probabilities.tolist()
                ]
        response["model_version"] = serving.version
        response["request_id"] = request_id
        return response

    # --- feedback ----------------------------------------------------------------
    def feedback(self, body: PredictBody, *, request_id: str) -> dict[str, Any]:
        """Log ground truth for earlier predictions as ``feedback`` events."""
        serving = self.tracker.current()
        items = feedback_items(
            body.data,
            card=serving.card,
            max_items=self.limits.max_batch_records,
        )
        for start in range(0, len(items), FEEDBACK_ITEMS_PER_EVENT):
            self.sink.emit(
                Event(
                    type="feedback",
                    request_id=request_id,
                    model_version=serving.version,
                    data={"items": items[start : start + FEEDBACK_ITEMS_PER_EVENT]},
                )
            )
        return {"result": {"accepted": len(items)}, "request_id": request_id}

    # --- errors ------------------------------------------------------------------
    def record_error(self, error: MlsysError, *, status: int, route: str, request_id: str) -> None:
        """Log a failed request as an ``error`` event and count it."""
        # The version that answers this request id (a canary splits errors too).
        version = self.tracker.answering_version(request_id)
        self.telemetry.error(code=error.code, version=version)
        self.sink.emit(
            Event(
                type="error",
                request_id=request_id,
                model_version=version,
                data=bounded_data(
                    {
                        "code": error.code,
                        "status": status,
                        "route": route,
                        "message": error.message,
                        "details": error.details,
                    }
                ),
            )
        )

    # --- admin -------------------------------------------------------------------
    def read_log(self, query: LogQuery) -> dict[str, Any]:
        self._flush_log()
        page = self.event_log().query(
            limit=query.limit,
            event_type=query.event_type,
            since=query.since,
            next_token=query.next_token,
        )
        # Within Lambda's 6 MB response: a page of large events stops early, with a token.
        events, token = fit_log_page(page.events, page.next_token)
        return {"result": [e.to_dict() for e in events], "next": token}

    def clear_log(self) -> dict[str, Any]:
        """Clear after the events emitted before this call; events emitted after it stay."""
        self.sink.run_after_pending(self.event_log().clear, timeout=self.log_flush_seconds)
        return {"result": "log emptied"}

    def health(self) -> dict[str, Any]:
        serving = self.tracker.current()
        return {
            "status": "ok",
            "model_name": serving.card.model_name,
            "model_version": serving.version,
            "task": serving.card.task,
            "features": list(serving.encoder.names),
            "log": self.sink.describe(),
            "rollout": self._rollout_health(serving.version),
        }

    def _rollout_health(self, champion_version: str) -> dict[str, Any]:
        """The rollout this server applies, with its evidence so far: traffic and errors of
        both versions and their live quality where feedback came back (read from the log,
        so only while a rollout is in progress)."""
        rollout, candidate_loaded = self.tracker.rollout()
        if rollout is None:
            return {"state": "none"}
        # Imported here: the monitoring code costs the prediction path's cold start ~50 ms.
        from mlsys.rollout.evaluation import read_evidence  # noqa: PLC0415
        from mlsys.rollout.quality import feedback_live_quality  # noqa: PLC0415

        self._flush_log()
        evidence = read_evidence(
            self.event_log(),
            rollout=rollout,
            champion_version=champion_version,
            live_quality=feedback_live_quality(self.tracker.registry),
        )
        return {
            "state": rollout.mode,
            "candidate": rollout.candidate,
            "fraction": rollout.fraction,
            "started": rollout.started,
            "candidate_loaded": candidate_loaded,
            "evidence": evidence.to_dict(),
        }

    def openapi(self) -> dict[str, Any]:
        serving = self.tracker.current()
        return openapi_document(
            serving.card,
            max_batch_records=self.limits.max_batch_records,
            max_log_page=self.limits.max_log_page,
        )

    def ingest(self, events: Sequence[Event]) -> int:
        if events:
            self.event_log().append_many(events)
        return len(events)
