"""The HTTP intake API: master data, supply events and EPCIS 2.0 capture, JSON in, event id out.

``intake_router(settings, producer)`` returns a FastAPI ``APIRouter``; ``ocop_trace/server.py`` composes it into the
app with :class:`BodyLimitMiddleware` and the error handlers (:func:`install_error_handlers`).

Endpoints (all ``POST``, ``Authorization: Bearer <token>``, see :mod:`producers.tokens`):

* ``/api/v1/subjects|areas|products|ratings|facilities`` — master data (topic ``ocop.events.master``);
* ``/api/v1/events/harvest|receive|transform|inspect|package|ship|sell|recall|void`` — supply events
  (``ocop.events.supply``);
* ``/epcis/capture`` (an EPCISDocument: one result per event) and ``/epcis/events`` (one EPCIS event).

A request body is the payload's fields exactly as in the ``.avsc`` plus the optional envelope fields ``event_id``,
``occurred_at``, ``facility``, ``user`` (and ``actor``/``subject_id``, which must be the token's own subject). The
answer is ``{"event_id", "topic", "partition", "offset", "status": "accepted", "key", "message_vi"}``.

Errors are ``{"error": {"field", "reason", "message_vi"}}``: 400 malformed JSON, 401 missing/unknown token,
403 not yours (another subject's lot, area, product; a master-data kind your role may not register), 409 the same
``event_id`` with another body (or an EPCIS event already captured), 413 body over ``settings.max_body_bytes``,
422 a field breaks the schema (``field`` is the event path, e.g. ``payload.quantity.value``), 503 Kafka unreachable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocop_trace.config import Settings
from producers.intake_store import IntakeStore
from producers.openapi import request_json_schema
from producers.tokens import PROVINCIAL, Forbidden, Principal, TokenStore, check_write
from schemas import epcis
from schemas.events import MASTER_ID_FIELD, lots_touched, new_event, validate_event
from schemas.validation import Invalid

log = logging.getLogger("ocop.api")

API_PREFIX = "/api/v1"
MASTER_ROUTES = {"subjects": "subject", "areas": "area", "products": "product", "ratings": "rating",
                 "facilities": "facility"}
SUPPLY_ROUTES = ("harvest", "receive", "transform", "inspect", "package", "ship", "sell", "recall", "void")
ENVELOPE = ("event_id", "occurred_at", "facility", "user", "actor")
GTIN_FIELDS = {"product": "gtin", "rating": "gtin", "package": "gtin"}
OWNED_KINDS = {"area": "area", "product": "product", "facility": "facility"}  # master type -> owners.kind

try:  # the operator-side helpers (producers/intake.py, producers/i18n.py), when present
    from producers.i18n import reason as _reason_vi
except ImportError:  # pragma: no cover
    def _reason_vi(text: str, lang: str = "vi") -> str:
        return text
try:
    from producers.intake import Envelope as _Envelope
    from producers.intake import confirmation as _confirmation
    from producers.intake import normalize_gtin as _normalize_gtin
except ImportError:  # pragma: no cover
    _Envelope = None  # type: ignore[assignment,misc]

    def _confirmation(ev: dict, lang: str = "vi") -> str:
        return f"{ev['event_type']} {ev['event_id']}"

    def _normalize_gtin(v: Any) -> Any:
        return v


# ====================================================================================================================
# errors


class ApiError(Exception):
    def __init__(self, status: int, field: str, reason: str, message_vi: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict | None = None):
        super().__init__(f"{status} {field}: {reason}")
        self.status = status
        self.field = field
        self.reason = reason
        self.message_vi = message_vi or _reason_vi(reason, "vi")
        self.headers = headers
        self.extra = extra or {}

    def body(self) -> dict:
        return {"error": {"field": self.field, "reason": self.reason, "message_vi": self.message_vi}, **self.extra}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_response(status: int, field: str, reason: str, message_vi: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return ApiError(status, field, reason, message_vi, headers).response()


def _invalid(e: Invalid, status: int = 422) -> ApiError:
    return ApiError(status, e.field or "body", e.reason, _reason_vi(e.reason, "vi"))


def _forbidden(e: Forbidden) -> ApiError:
    return ApiError(403, e.field, e.reason, e.message_vi)


class ErrorDetail(BaseModel):
    field: str = Field(description="The field at fault: an event path such as payload.quantity.value, or body, "
                                   "Authorization.")
    reason: str = Field(description="Why, in English.")
    message_vi: str = Field(description="Why, in Vietnamese.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Accepted(BaseModel):
    event_id: str
    topic: str
    partition: int
    offset: int
    status: str = "accepted"
    key: str = Field(description="The Kafka message key (the lot, or the master-data entity id).")
    message_vi: str = Field(description="A one-line confirmation in Vietnamese.")


class CaptureResult(BaseModel):
    index: int
    status: str = Field(description="accepted | rejected | duplicate")
    epcis_event_hash: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    error: ErrorDetail | None = None


class CaptureReport(BaseModel):
    accepted: int
    rejected: int
    duplicate: int
    results: list[CaptureResult]


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed JSON"},
    401: {"model": ErrorBody, "description": "Missing or unknown token"},
    403: {"model": ErrorBody, "description": "Not yours: another subject's lot, area, product; or not your role"},
    409: {"model": ErrorBody, "description": "Same event_id with a different body / EPCIS event already captured"},
    413: {"model": ErrorBody, "description": "Body larger than max_body_bytes"},
    422: {"model": ErrorBody, "description": "A field breaks the schema (field names it)"},
    503: {"model": ErrorBody, "description": "Kafka unreachable: nothing was recorded, retry"},
}


# ====================================================================================================================
# body size limit (ASGI)


class BodyLimitMiddleware:
    """413 for a request body over ``max_bytes``: at once when ``Content-Length`` says so, otherwise by counting the
    bytes as they stream in (chunked bodies), before the app sees any of it. The body is buffered (it is small) and
    handed to the app unchanged."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt_prefixes: tuple[str, ...] = ()):
        self.app = app
        self.max_bytes = max_bytes
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(self.exempt_prefixes or ("\0",)):
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                length = value
        if length is not None:
            if not length.strip().isdigit():
                await self._reject(send, 400, "Content-Length is not a number",
                                   "tiêu đề Content-Length không phải là số")
                return
            if int(length) > self.max_bytes:
                await self._too_large(send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await self._reject(send, 413, f"request body exceeds {self.max_bytes} bytes",
                           f"nội dung yêu cầu vượt quá {self.max_bytes} byte")

    @staticmethod
    async def _reject(send: Send, status: int, reason: str, message_vi: str) -> None:
        body = json.dumps({"error": {"field": "body", "reason": reason, "message_vi": message_vi}},
                          ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def install_error_handlers(app: Any) -> None:
    """Make FastAPI's own errors (404, 405, path validation) use the same ``{"error": ...}`` shape."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, "path" if exc.status_code in (404, 405) else "", str(exc.detail),
                              {404: "không tìm thấy", 405: "phương thức không được hỗ trợ"}.get(exc.status_code),
                              getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = (exc.errors() or [{}])[0]
        field = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body",)) or "body"
        return error_response(422, field, err.get("msg", "invalid"))

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()


# ====================================================================================================================
# the request handling (independent of routing)


class LazyProducer:
    """Creates the real producer on first use (so the app starts, and /healthz answers, without Kafka)."""

    def __init__(self, factory: Callable[[], Any]):
        self._factory = factory
        self._producer: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._producer is None:
                self._producer = self._factory()
            return self._producer

    def send(self, ev: dict, **kw: Any) -> Any:
        return self.get().send(ev, **kw)

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close()
                self._producer = None


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _lot_field(ev: dict, lot: str) -> str:
    p = ev["payload"]
    if ev["event_type"] == "transform":
        for side in ("inputs", "outputs"):
            for i, x in enumerate(p[side]):
                if x["lot"] == lot:
                    return f"payload.{side}[{i}].lot"
    if ev["event_type"] == "recall":
        return "payload.target"
    return "payload.lot"


class Intake:
    """Authentication, building, authorisation, idempotency, ownership and sending of one request."""

    def __init__(self, settings: Settings, producer: Any, tokens: TokenStore, store: IntakeStore):
        self.settings = settings
        self.producer = producer
        self.tokens = tokens
        self.store = store

    # --- steps ------------------------------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        headers = {"WWW-Authenticate": 'Bearer realm="ocop-trace"'}
        if token is None:
            raise ApiError(401, "Authorization", "missing bearer token (Authorization: Bearer <token>)",
                           "thiếu mã truy cập (Authorization: Bearer <mã>)", headers)
        principal = self.tokens.authenticate(token)
        if principal is None:
            raise ApiError(401, "Authorization", "unknown or revoked token",
                           "mã truy cập không hợp lệ hoặc đã bị thu hồi", headers)
        return principal

    def parse(self, raw: bytes) -> Any:
        if len(raw) > self.settings.max_body_bytes:
            raise ApiError(413, "body", f"request body exceeds {self.settings.max_body_bytes} bytes",
                           f"nội dung yêu cầu vượt quá {self.settings.max_body_bytes} byte")
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ApiError(400, "body", "body is not UTF-8 text", "nội dung không phải văn bản UTF-8") from None
        except json.JSONDecodeError as e:
            raise ApiError(400, "body", f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}",
                           f"JSON không hợp lệ: {e.msg} (dòng {e.lineno}, cột {e.colno})") from None
        except RecursionError:
            raise ApiError(400, "body", "JSON nested too deeply", "JSON lồng nhau quá sâu") from None

    def build(self, event_type: str, body: Any, principal: Principal, *, supply: bool) -> dict:
        """The event a request body describes (validated), with the token's subject as the actor."""
        if not isinstance(body, dict):
            raise ApiError(422, "body", "must be a JSON object", "nội dung phải là một đối tượng JSON")
        payload = dict(body)
        env = {k: payload.pop(k) for k in ENVELOPE if k in payload}
        claimed = payload.pop("subject_id", None) if supply else None
        actor = env.get("actor")
        if actor is not None and not isinstance(actor, dict):
            raise ApiError(422, "actor", "must be an object {subject_id, user}", "actor phải là một đối tượng")
        actor = actor or {}
        claimed = claimed if claimed is not None else actor.get("subject_id")
        if claimed is not None and claimed != principal.subject_id:
            raise _forbidden(Forbidden("actor.subject_id",
                                       f"a token of subject {principal.subject_id} cannot write events of subject "
                                       f"{claimed}",
                                       f"mã truy cập của chủ thể {principal.subject_id} không được ghi sự kiện của "
                                       f"chủ thể {claimed}"))
        gtin_field = GTIN_FIELDS.get(event_type)
        if gtin_field and isinstance(payload.get(gtin_field), str):
            payload[gtin_field] = _normalize_gtin(payload[gtin_field])
        tz = self.settings.timezone
        try:
            if _Envelope is not None:
                envelope = _Envelope(subject_id=principal.subject_id, source="http", at=env.get("occurred_at"), tz=tz)
                occurred, recorded = envelope.occurred_at(), envelope.recorded_at()
            else:  # pragma: no cover
                from schemas.events import now_local

                recorded = now_local(tz)
                occurred = env.get("occurred_at") or recorded
            ev = new_event(event_type, payload, subject_id=principal.subject_id,
                           user=env.get("user") if env.get("user") is not None else actor.get("user", ""),
                           facility=env.get("facility"), source="http", occurred_at=occurred, recorded_at=recorded,
                           event_id=env["event_id"] if "event_id" in env else str(uuid.uuid4()), tz=tz)
            validate_event(ev)
        except Invalid as e:
            raise _invalid(e) from None
        return ev

    def claims(self, ev: dict, principal: Principal) -> tuple[list[tuple[str, str]], str | None, bool]:
        """What this event makes (or needs to be) the principal's: ``(claims, owner to record, override)``."""
        t, p = ev["event_type"], ev["payload"]
        if t in OWNED_KINDS:
            return [(OWNED_KINDS[t], p[MASTER_ID_FIELD[t]])], p["owner_subject_id"], principal.provincial
        if t in MASTER_ID_FIELD:  # subjects, ratings: the provincial office's, nothing to own
            return [], None, False
        if principal.provincial:  # an authority's recall
            return [], None, False
        return [("lot", lot) for lot in lots_touched(ev)], principal.subject_id, False

    def check_owned(self, ev: dict, principal: Principal) -> None:
        """Checks that need the history but record nothing (a subject recalling a growing area it does not own)."""
        if ev["event_type"] == "recall" and ev["payload"]["scope"] == "area" and not principal.provincial:
            owner = self.store.owner("area", ev["payload"]["target"])
            if owner is not None and owner != principal.subject_id:
                raise ApiError(403, "payload.target", f"growing area {ev['payload']['target']} belongs to another "
                                                      "subject", f"vùng trồng {ev['payload']['target']} thuộc chủ thể khác")

    def claim(self, ev: dict, principal: Principal) -> None:
        claims, owner, override = self.claims(ev, principal)
        if not claims or owner is None:
            return
        taken = self.store.claim(claims, owner, ev["event_id"], override=override)
        if taken is None:
            return
        kind, key = taken
        if kind == "lot":
            raise ApiError(403, _lot_field(ev, key), f"lot {key} was created by another subject",
                           f"lô {key} do chủ thể khác tạo, không được ghi thêm sự kiện")
        field = f"payload.{MASTER_ID_FIELD[ev['event_type']]}"
        raise ApiError(403, field, f"{kind} {key} is registered by another subject",
                       f"{kind} {key} đã được chủ thể khác đăng ký")

    def send(self, ev: dict) -> dict:
        try:
            sent = self.producer.send(ev)
        except Invalid as e:
            raise _invalid(e) from None
        except Exception as e:  # kafka errors, timeouts, no broker
            log.warning("could not send %s %s: %s", ev["event_type"], ev["event_id"], e)
            raise ApiError(503, "", f"could not send the event to Kafka ({type(e).__name__}); nothing was recorded, "
                                    "retry with the same event_id",
                           "không gửi được sự kiện tới Kafka; chưa ghi nhận gì, hãy gửi lại với cùng event_id") from None
        return {"event_id": sent.event_id, "topic": sent.topic, "partition": sent.partition, "offset": sent.offset,
                "status": "accepted", "key": sent.key, "message_vi": _confirmation(ev, "vi")}

    # --- one JSON request -------------------------------------------------------------------------------------
    def submit(self, event_type: str, raw: bytes, authorization: str | None, *, supply: bool) -> tuple[int, dict, dict]:
        principal = self.authenticate(authorization)
        body = self.parse(raw)
        ev = self.build(event_type, body, principal, supply=supply)
        try:
            check_write(principal, ev)
        except Forbidden as e:
            raise _forbidden(e) from None
        self.check_owned(ev, principal)
        body_hash = hashlib.sha256(_canonical({"type": event_type, "subject": principal.subject_id,
                                               "body": body})).hexdigest()
        event_id = ev["event_id"]
        r = self.store.reserve(event_id, body_hash, principal.subject_id)
        if r.state == "replay":
            return 200, r.response or {}, {"Idempotent-Replay": "true"}
        if r.state == "conflict":
            raise ApiError(409, "event_id", f"event_id {event_id} was already used for a different request",
                           f"mã sự kiện {event_id} đã được dùng cho một nội dung khác")
        if r.state == "pending":
            raise ApiError(409, "event_id", f"a request with event_id {event_id} is being handled; retry shortly",
                           f"yêu cầu với mã sự kiện {event_id} đang được xử lý, hãy thử lại sau")
        try:
            self.claim(ev, principal)
            response = self.send(ev)
        except BaseException:
            self.store.release(event_id)
            raise
        self.store.complete(event_id, response)
        return 200, response, {}

    # --- EPCIS ------------------------------------------------------------------------------------------------
    def capture_one(self, index: int, epcis_event: Any, context: Any, principal: Principal) -> dict:
        """Map, check and send one EPCIS event; the per-event result (accepted | rejected | duplicate)."""
        result: dict[str, Any] = {"index": index}
        if not isinstance(epcis_event, dict):
            return {**result, "status": "rejected", "http_status": 422,
                    "error": {"field": f"epcisBody.eventList[{index}]", "reason": "an event must be a JSON object",
                              "message_vi": "mỗi sự kiện phải là một đối tượng JSON"}}
        try:
            key = epcis.dedup_key(epcis_event, context)
            result["epcis_event_hash"] = epcis.epcis_event_hash(epcis_event, context)
        except Exception as e:  # noqa: BLE001 - a malformed event cannot be hashed
            return {**result, "status": "rejected", "http_status": 422,
                    "error": {"field": "", "reason": f"cannot compute the event hash: {e}",
                              "message_vi": f"không tính được mã băm của sự kiện: {e}"}}
        seen = self.store.reserve_hash(key)
        if seen.state != "new":
            return {**result, "status": "duplicate", "event_id": seen.event_id, "http_status": 409,
                    "error": {"field": "", "reason": f"this EPCIS event was already captured (event {seen.event_id})",
                              "message_vi": f"sự kiện EPCIS này đã được ghi nhận (mã {seen.event_id})"}}
        event_id = None
        try:
            try:
                ev = epcis.from_epcis(epcis_event, context=context, subject_id=principal.subject_id,
                                      tz=self.settings.timezone)
                gtin_field = GTIN_FIELDS.get(ev["event_type"])
                if gtin_field:
                    ev["payload"][gtin_field] = _normalize_gtin(ev["payload"][gtin_field])
                validate_event(ev)
            except Invalid as e:
                raise _invalid(e) from None
            try:
                check_write(principal, ev)
            except Forbidden as e:
                raise _forbidden(e) from None
            self.check_owned(ev, principal)
            event_id = ev["event_id"]
            r = self.store.reserve(event_id, hashlib.sha256(_canonical([key, principal.subject_id])).hexdigest(),
                                   principal.subject_id)
            if r.state != "new":
                event_id = None
                raise ApiError(409, "eventID", f"event id {ev['event_id']} is already used by another event",
                               f"mã sự kiện {ev['event_id']} đã được dùng cho một sự kiện khác")
            self.claim(ev, principal)
            response = self.send(ev)
        except ApiError as e:
            self.store.release_hash(key)
            if event_id:
                self.store.release(event_id)
            return {**result, "status": "rejected", "http_status": e.status, "error": e.body()["error"]}
        except BaseException:
            self.store.release_hash(key)
            if event_id:
                self.store.release(event_id)
            raise
        self.store.complete(event_id, response)
        self.store.complete_hash(key, event_id)
        return {**result, "status": "accepted", "event_id": event_id, "event_type": ev["event_type"],
                "topic": response["topic"], "partition": response["partition"], "offset": response["offset"]}

    def capture(self, raw: bytes, authorization: str | None) -> dict:
        principal = self.authenticate(authorization)
        doc = self.parse(raw)
        try:
            events, context = epcis.document_events(doc)
        except Invalid as e:
            raise _invalid(e) from None
        results = [self.capture_one(i, x, context, principal) for i, x in enumerate(events)]
        for r in results:
            r.pop("http_status", None)
        counts = {s: sum(1 for r in results if r["status"] == s) for s in ("accepted", "rejected", "duplicate")}
        return {**counts, "results": results}

    def capture_single(self, raw: bytes, authorization: str | None) -> tuple[int, dict]:
        principal = self.authenticate(authorization)
        event = self.parse(raw)
        if not isinstance(event, dict):
            raise ApiError(422, "body", "an EPCIS event must be a JSON object",
                           "sự kiện EPCIS phải là một đối tượng JSON")
        context = event.get("@context")
        r = self.capture_one(0, event, context, principal)
        status = r.pop("http_status", 200)
        r.pop("index", None)
        if r["status"] == "accepted":
            return 200, r
        return status, {"error": r["error"], **{k: v for k, v in r.items() if k != "error"}}


# ====================================================================================================================
# the router


_EXAMPLES: dict[str, dict] = {
    "subject": {"subject_id": "HTX-HAODAT", "name": "Hợp tác xã chè Hảo Đạt", "kind": "cooperative",
                "province_code": "19", "commune_code": "05716", "address": "Tân Cương, TP Thái Nguyên"},
    "area": {"area_code": "VT-TN-0001", "owner_subject_id": "HTX-HAODAT", "name": "Đồi chè Tân Cương",
             "crops": ["chè"], "area_ha": 12.5, "location": [{"lat": 21.5672, "lon": 105.7703}],
             "certifications": [{"scheme": "VietGAP", "number": "VG-123"}], "valid_from": "2024-01-01"},
    "product": {"gtin": "08930000000019", "owner_subject_id": "HTX-HAODAT", "name_vi": "Chè Tân Cương Hảo Đạt",
                "name_en": "Hao Dat Tan Cuong tea", "ocop_group": "beverage",
                "net_content": {"value": 0.2, "unit": "kg"}, "shelf_life_days": 365},
    "rating": {"gtin": "08930000000019", "action": "granted", "stars": 4, "score": 82, "level": "province",
               "decision_no": "123/QĐ-UBND", "decision_date": "2024-03-01", "valid_from": "2024-03-01",
               "valid_to": "2027-03-01"},
    "facility": {"facility_id": "XUONG-HAODAT", "owner_subject_id": "HTX-HAODAT", "name": "Xưởng sao chè Hảo Đạt",
                 "kind": "plant", "address": "Tân Cương, TP Thái Nguyên"},
    "harvest": {"lot": "TC-2026-001", "area_code": "VT-TN-0001", "crop": "chè búp tươi",
                "quantity": {"value": 120, "unit": "kg"}, "occurred_at": "2026-04-02T06:30:00+07:00",
                "event_id": "8f14e45f-ceea-4c1e-9d53-6a0f5f3c4b11"},
    "receive": {"lot": "TC-2026-001", "quantity": {"value": 118.5, "unit": "kg"}, "facility": "XUONG-HAODAT",
                "document_ref": "PHIEU-0042"},
    "transform": {"process": "sao-che", "inputs": [{"lot": "TC-2026-001", "quantity": {"value": 118.5, "unit": "kg"}}],
                  "outputs": [{"lot": "TC-2026-001K", "quantity": {"value": 24, "unit": "kg"}}],
                  "duration_hours": 6},
    "inspect": {"lot": "TC-2026-001K", "lab": "Trung tâm Kiểm nghiệm Thái Nguyên", "result": "pass",
                "parameters": [{"name": "Pb", "value": "0.05 mg/kg", "limit": "≤ 0.3", "passed": True}]},
    "package": {"lot": "TC-2026-001K", "gtin": "08930000000019", "units": 120, "production_date": "2026-04-03",
                "expiry_date": "2027-04-03", "stamps_requested": 120},
    "ship": {"lot": "TC-2026-001K", "units": 40, "to_facility": "OCOP-SHOWROOM-TN", "carrier": "Viettel Post"},
    "sell": {"lot": "TC-2026-001K", "units": 2, "point_of_sale": "OCOP-SHOWROOM-TN"},
    "recall": {"scope": "lot", "target": "TC-2026-001K", "reason": "dư lượng thuốc bảo vệ thực vật vượt ngưỡng"},
    "void": {"lot": "TC-2026-001", "voided_event_id": "8f14e45f-ceea-4c1e-9d53-6a0f5f3c4b11",
             "reason": "nhập sai khối lượng"},
}

_EPCIS_EXAMPLE = {
    "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", epcis.OCOP_CONTEXT],
    "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-04-02T07:00:00+07:00",
    "epcisBody": {"eventList": [{
        "type": "ObjectEvent", "eventTime": "2026-04-02T06:30:00+07:00", "eventTimeZoneOffset": "+07:00",
        "action": "ADD", "bizStep": "commissioning", "disposition": "active",
        "quantityList": [{"epcClass": "urn:epc:class:lgtin:8930000.000001.TC-2026-001", "quantity": 120,
                          "uom": "KGM"}],
        "readPoint": {"id": "urn:epc:id:sgln:8930000.00001.0"},
        "ilmd": {"ocop:crop": "chè búp tươi", "ocop:areaCode": "VT-TN-0001"}}]},
}


def intake_router(settings: Settings, producer: Any, *, tokens: TokenStore | None = None,
                  store: IntakeStore | None = None) -> APIRouter:
    """The intake endpoints. ``producer`` is an :class:`producers.client.EventProducer` (or anything with its
    ``send(event) -> Sent``, e.g. :class:`LazyProducer`). Tokens and the intake log default to ``settings.data_dir``."""
    intake = Intake(settings, producer, tokens or TokenStore.from_settings(settings),
                    store or IntakeStore.from_settings(settings))
    router = APIRouter()
    router.intake = intake  # type: ignore[attr-defined]  # reachable for the app's shutdown and for tests

    def add(path: str, event_type: str, *, supply: bool, summary: str, tag: str) -> None:
        async def endpoint(request: Request) -> JSONResponse:
            raw = await request.body()
            try:
                status, body, headers = await run_in_threadpool(
                    intake.submit, event_type, raw, request.headers.get("authorization"), supply=supply)
            except ApiError as e:
                return e.response()
            return JSONResponse(body, status_code=status, headers=headers)

        schema = request_json_schema(event_type, supply=supply)
        router.add_api_route(
            path, endpoint, methods=["POST"], name=f"post_{event_type}", summary=summary, tags=[tag],
            response_model=Accepted, responses=_ERROR_RESPONSES,
            description=(schema.get("description", "") + "\n\nBody: the payload fields below (as in the Avro schema "
                         "``" + schema["title"] + "``) plus the optional envelope fields event_id, occurred_at, "
                         "facility, user."),
            openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                "schema": schema, "example": _EXAMPLES.get(event_type, {})}}}},
        )

    for route, event_type in MASTER_ROUTES.items():
        add(f"{API_PREFIX}/{route}", event_type, supply=False, tag="master data",
            summary=f"Register or change a {event_type} (topic ocop.events.master)")
    for event_type in SUPPLY_ROUTES:
        add(f"{API_PREFIX}/events/{event_type}", event_type, supply=True, tag="supply events",
            summary=f"Record a {event_type} event (topic ocop.events.supply)")

    @router.post("/epcis/capture", tags=["EPCIS 2.0"], response_model=CaptureReport, responses=_ERROR_RESPONSES,
                 summary="Capture an EPCISDocument (JSON-LD): one result per event",
                 description="ObjectEvent, AggregationEvent (packing) and TransformationEvent with CBV bizSteps are "
                             "mapped onto OCOP events (schemas/epcis.py). Each event is accepted (its event id), "
                             "rejected (the field and reason) or a duplicate (same canonical EPCIS event hash).",
                 openapi_extra={"requestBody": {"required": True, "content": {"application/ld+json": {
                     "schema": {"type": "object"}, "example": _EPCIS_EXAMPLE}, "application/json": {
                     "schema": {"type": "object"}, "example": _EPCIS_EXAMPLE}}}})
    async def epcis_capture(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = await run_in_threadpool(intake.capture, raw, request.headers.get("authorization"))
        except ApiError as e:
            return e.response()
        return JSONResponse(body)

    @router.post("/epcis/events", tags=["EPCIS 2.0"], response_model=CaptureResult, responses=_ERROR_RESPONSES,
                 summary="Capture one EPCIS event (409 if the same event was already captured)",
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"type": "object"},
                     "example": {"@context": _EPCIS_EXAMPLE["@context"],
                                 **_EPCIS_EXAMPLE["epcisBody"]["eventList"][0]}}}}})  # type: ignore[index]
    async def epcis_event(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            status, body = await run_in_threadpool(intake.capture_single, raw, request.headers.get("authorization"))
        except ApiError as e:
            return e.response()
        return JSONResponse(body, status_code=status)

    return router


__all__ = ["API_PREFIX", "ApiError", "BodyLimitMiddleware", "Intake", "LazyProducer", "MASTER_ROUTES",
           "SUPPLY_ROUTES", "error_response", "install_error_handlers", "intake_router", "PROVINCIAL"]
