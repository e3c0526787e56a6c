"""Pure builders: what an operator typed -> a valid event dict (or :class:`Invalid` naming the field).

Used by the CLI (``ocop-trace intake ...`` / ``register ...``), the scanner station and the HTTP intake API, so the
same words mean the same thing everywhere. Nothing here touches Kafka, the clock (unless no time is given) or the
environment.

Operator inputs are forgiving about *form* and strict about *values*:

* quantities: ``"120 kg"``, ``"120kg"``, ``"12,5 kg"`` (Vietnamese decimal comma), ``"500 g"`` (-> 0.5 kg),
  ``"2 tấn"``, ``"3 tạ"`` (-> 300 kg), ``"1,5 lít"``, ``"24 hộp"`` (-> 24 unit); or a number plus a separate unit;
* times: ``"2026-11-20 07:30"``, ``"20/11/2026 07:30"``, ISO 8601 with an offset; naive times are local
  (``Envelope.tz``, Asia/Ho_Chi_Minh by default);
* dates: ``2026-11-20`` or ``20/11/2026``;
* GTINs are stored as GTIN-14 (as Digital Link URIs carry them) when their check digit is right.

Whether a *value* is acceptable (a non-negative quantity, a known unit, a GTIN check digit, expiry not before
production, ...) is decided by the schema (``schemas/*.avsc`` constraint attributes via
:func:`schemas.events.validate_event`): every builder validates the event it returns, so a caller gets either a
valid event or an :class:`Invalid` whose ``field`` is the event path (``payload.quantity.value``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

from producers.i18n import reason as _tr_reason
from producers.i18n import t, unit_name
from schemas import codec
from schemas.events import event_key, new_event, validate_event
from schemas.validation import Invalid, gtin_problem

__all__ = [
    "Envelope", "Invalid", "UNITS", "parse_quantity", "format_quantity", "quantity_text", "parse_number",
    "parse_int", "parse_at", "parse_date", "parse_lot_quantity", "parse_param", "parse_point", "parse_duration",
    "normalize_gtin", "subject", "area", "product", "rating", "facility", "harvest", "receive", "transform",
    "inspect", "package", "ship", "sell", "recall", "void", "confirmation", "describe_invalid", "option_for", "BUILDERS",
]


# --------------------------------------------------------------------------------------------------------------------
# vocabulary read off the schemas (one definition per fact)


def _enum_symbols(schema: str, field: str) -> tuple[str, ...]:
    raw = codec.raw_schema(schema)
    f = next(x for x in raw["fields"] if x["name"] == field)
    return tuple(f["type"]["symbols"])


@lru_cache(maxsize=None)
def _symbols(schema: str, field: str) -> tuple[str, ...]:
    return _enum_symbols(schema, field)


UNITS: tuple[str, ...] = _symbols("ocop.common.Quantity", "unit")

# unit word -> (schema unit, factor). Operators write units many ways; the value is converted to the schema unit.
_UNIT_WORDS: dict[str, tuple[str, float]] = {
    **{w: ("kg", 1.0) for w in ("kg", "kgs", "kilo", "kilos", "kilogram", "kilograms", "cân", "ký", "kí")},
    **{w: ("kg", 0.001) for w in ("g", "gr", "gram", "grams", "gam")},
    "yến": ("kg", 10.0), "tạ": ("kg", 100.0),
    **{w: ("t", 1.0) for w in ("t", "tấn", "tan", "tonne", "tonnes", "ton", "tons")},
    **{w: ("l", 1.0) for w in ("l", "lít", "lit", "litre", "litres", "liter", "liters", "ltr")},
    **{w: ("l", 0.001) for w in ("ml", "mililít", "millilitre", "milliliter")},
    **{w: ("unit", 1.0) for w in ("unit", "units", "u", "pc", "pcs", "piece", "pieces", "ea", "cái", "chiếc",
                                  "hộp", "gói", "chai", "túi", "lọ", "hũ", "bộ", "sản phẩm", "đơn vị")},
}
UNIT_WORDS = {w: u for w, u in _UNIT_WORDS.items() if u[0] in UNITS}

_KIND_WORDS = {
    "htx": "cooperative", "hợp tác xã": "cooperative", "coop": "cooperative", "co-op": "cooperative",
    "tht": "cooperative_group", "tổ hợp tác": "cooperative_group", "cooperative group": "cooperative_group",
    "dn": "sme", "doanh nghiệp": "sme", "company": "sme", "enterprise": "sme", "công ty": "sme",
    "trang trại": "farm",
    "hộ": "household", "hộ kinh doanh": "household", "hộ sản xuất": "household", "household business": "household",
}
_GROUP_WORDS = {
    "1": "food", "thực phẩm": "food",
    "2": "beverage", "đồ uống": "beverage", "drink": "beverage",
    "3": "herbal", "thảo dược": "herbal", "dược liệu": "herbal",
    "4": "handicraft", "thủ công": "handicraft", "thủ công mỹ nghệ": "handicraft", "craft": "handicraft",
    "5": "ornamental", "sinh vật cảnh": "ornamental",
    "6": "tourism", "du lịch": "tourism", "du lịch cộng đồng": "tourism",
}
_FACILITY_WORDS = {"pos": "point_of_sale", "điểm bán": "point_of_sale", "shop": "point_of_sale",
                   "store": "point_of_sale", "nhà máy": "plant", "xưởng": "plant", "kho": "warehouse",
                   "nông trại": "farm", "phòng kiểm nghiệm": "lab"}
_RESULT_WORDS = {"pass": "pass", "passed": "pass", "ok": "pass", "đạt": "pass", "dat": "pass",
                 "fail": "fail", "failed": "fail", "không đạt": "fail", "khong dat": "fail", "ko đạt": "fail"}
_SCOPE_WORDS = {"lot": "lot", "lô": "lot", "area": "area", "vùng": "area", "vùng trồng": "area"}

RATING_VALID_MONTHS = 36  # an OCOP certificate is valid for 36 months unless the decision says otherwise


def _word(value: Any, words: dict[str, str]) -> Any:
    if not isinstance(value, str):
        return value
    v = " ".join(value.strip().split())
    return words.get(v.lower(), v.lower().replace(" ", "_").replace("-", "_"))


# --------------------------------------------------------------------------------------------------------------------
# parsers of operator text

_NUM = r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?"
_QTY_RE = re.compile(rf"^\s*(?P<num>{_NUM})\s*(?P<unit>[^\d\s.,+-].*?)?\s*$")


def parse_number(text: Any, field: str) -> float:
    """A decimal number; a single comma is a decimal comma (``12,5``). No thousands separators."""
    if isinstance(text, bool):
        raise Invalid(field, f"not a number: {text!r}")
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip()
    if re.fullmatch(_NUM, s) is None:
        raise Invalid(field, f"not a number: {text!r}")
    return float(s.replace(",", "."))


def parse_int(text: Any, field: str) -> int:
    if isinstance(text, bool):
        raise Invalid(field, f"must be a whole number: {text!r}")
    if isinstance(text, int):
        return text
    if isinstance(text, float) and text.is_integer():
        return int(text)
    s = str(text).strip()
    if not re.fullmatch(r"[+-]?\d+", s):
        raise Invalid(field, f"must be a whole number: {text!r}")
    return int(s)


def _unit(word: str, field: str) -> tuple[str, float]:
    w = " ".join(word.strip().split()).lower()
    if w in UNIT_WORDS:
        return UNIT_WORDS[w]
    raise Invalid(f"{field}.unit", f"unknown unit {word.strip()!r} (use {', '.join(UNITS)})")


def parse_quantity(text: Any, unit: str | None = None, field: str = "quantity") -> dict:
    """``"120 kg"`` / ``"12,5kg"`` / ``"500 g"`` / (``"120"``, ``"kg"``) -> ``{"value": 120.0, "unit": "kg"}``.

    A unit inside the text wins over ``unit`` (the default). Units are converted to the schema's (g -> kg ...).
    The sign is kept: a negative amount is the schema's to refuse (``{field}.value: must be ≥ 0``).
    """
    if isinstance(text, dict):
        return {"value": parse_number(text.get("value"), f"{field}.value"),
                "unit": _unit(str(text.get("unit", "")), field)[0]}
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        num, word = float(text), unit
    else:
        m = _QTY_RE.match(str(text if text is not None else ""))
        if not m:
            raise Invalid(f"{field}.value", f"not a number: {text!r}")
        num, word = parse_number(m["num"], f"{field}.value"), (m["unit"] or unit)
    if not word:
        raise Invalid(f"{field}.unit", f"needs a unit (use {', '.join(UNITS)})")
    symbol, factor = _unit(word, field)
    value = num * factor
    if factor != 1.0:
        value = round(value, 9)
    return {"value": value, "unit": symbol}


def quantity_text(q: dict) -> str:
    """Exact text of a quantity that :func:`parse_quantity` reads back to the same dict."""
    return f"{q['value']!r} {q['unit']}"


def _num_text(x: float, lang: str) -> str:
    s = f"{x:.3f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))
    return s.replace(".", ",") if lang == "vi" else s


def format_quantity(q: dict, lang: str = "vi") -> str:
    """For people: ``120 kg``, ``12,5 kg`` (vi) / ``12.5 kg`` (en), ``24 đơn vị``."""
    return f"{_num_text(q['value'], lang)} {unit_name(q['unit'], lang)}"


def parse_lot_quantity(text: Any, unit: str | None = None, field: str = "lot") -> dict:
    """``"TC-001=120kg"`` (or ``TC-001:120 kg``) -> ``{"lot": "TC-001", "quantity": {...}}``."""
    if isinstance(text, dict):
        return {"lot": str(text.get("lot", "")).strip(),
                "quantity": parse_quantity(text.get("quantity"), unit, f"{field}.quantity")}
    s = str(text)
    m = re.match(r"^\s*(?P<lot>[^=\s]+)\s*=\s*(?P<qty>.+)$", s)
    if not m:
        raise Invalid(field, f"expected LOT=QUANTITY[unit], e.g. TC-001=120kg, got {s!r}")
    return {"lot": m["lot"], "quantity": parse_quantity(m["qty"], unit, f"{field}.quantity")}


def _tz(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


_DMY = re.compile(r"^(?P<d>\d{1,2})[/.-](?P<m>\d{1,2})[/.-](?P<y>\d{4})(?:[ T]+(?P<time>\d{1,2}:\d{2}(?::\d{2})?))?$")


def _hms(s: str) -> str:
    h, _, rest = s.partition(":")
    return f"{int(h):02d}:{rest}"


def parse_at(text: Any, tz: str = "Asia/Ho_Chi_Minh", now: datetime | None = None, field: str = "occurred_at") -> str:
    """When something happened, as ISO 8601 with an offset. Naive input is local time in ``tz``; None is ``now``."""
    zone = _tz(tz)
    if text is None or (isinstance(text, str) and not text.strip()):
        moment = now or datetime.now(zone)
        return moment.astimezone(zone).isoformat(timespec="milliseconds")
    if isinstance(text, datetime):
        dt = text
    else:
        s = " ".join(str(text).strip().split())
        try:
            m = _DMY.match(s)
            if m:
                dt = datetime.fromisoformat(f"{int(m['y']):04d}-{int(m['m']):02d}-{int(m['d']):02d}"
                                            + (f" {_hms(m['time'])}" if m["time"] else ""))
            elif re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", s):  # a time today
                today = (now or datetime.now(zone)).astimezone(zone).date()
                dt = datetime.fromisoformat(f"{today.isoformat()} {_hms(s)}")
            else:
                dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError as e:
            raise Invalid(field, f"not a date-time: {text!r} ({e})") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone)
    return dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")


def parse_date(text: Any, field: str) -> str | None:
    """``2026-11-20`` or ``20/11/2026`` -> ``2026-11-20``; None/empty -> None."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, datetime):
        return text.date().isoformat()
    if isinstance(text, date):
        return text.isoformat()
    s = str(text).strip()
    try:
        m = _DMY.match(s)
        if m and not m["time"]:
            return date(int(m["y"]), int(m["m"]), int(m["d"])).isoformat()
        if re.fullmatch(r"\d{8}", s):
            return date(int(s[:4]), int(s[4:6]), int(s[6:])).isoformat()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
            return date.fromisoformat(s).isoformat()
    except ValueError:
        pass
    raise Invalid(field, f"not a date: {text!r}")


def parse_point(text: Any, field: str) -> dict:
    """``"21.5672,105.7703"`` (lat,lon) -> ``{"lat": 21.5672, "lon": 105.7703}``."""
    if isinstance(text, dict):
        return {"lat": parse_number(text.get("lat"), f"{field}.lat"), "lon": parse_number(text.get("lon"), f"{field}.lon")}
    if isinstance(text, (list, tuple)) and len(text) == 2:
        return {"lat": parse_number(text[0], f"{field}.lat"), "lon": parse_number(text[1], f"{field}.lon")}
    parts = [p for p in re.split(r"[,;\s]+", str(text).strip()) if p]
    if len(parts) != 2:
        raise Invalid(field, f"expected LAT,LON, e.g. 21.5672,105.7703, got {text!r}")
    return {"lat": parse_number(parts[0], f"{field}.lat"), "lon": parse_number(parts[1], f"{field}.lon")}


_PARAM_RE = re.compile(
    r"^\s*(?P<name>[^=]+?)\s*=\s*(?P<value>[^<>≤≥;]*?)\s*"
    r"(?:(?P<op><=|>=|≤|≥|<|>)\s*(?P<limit>[^;]+?))?\s*"
    r"(?:;\s*(?P<flag>pass|fail|đạt|không đạt|ok))?\s*$", re.IGNORECASE)


def parse_param(text: Any, field: str = "payload.parameters") -> dict:
    """``"Pb=0.05"``, ``"Pb=0.05<=0.3"`` (limit; passed is computed), ``"moisture=9.5;fail"`` -> an InspectionParameter."""
    if isinstance(text, dict):
        return dict(text)
    m = _PARAM_RE.match(str(text))
    if not m:
        raise Invalid(field, f"expected NAME=VALUE[<=LIMIT][;pass|fail], got {text!r}")
    op = {"<=": "≤", ">=": "≥"}.get(m["op"] or "", m["op"])
    limit = f"{op} {m['limit'].strip()}" if op else None
    passed = True
    if m["flag"]:
        passed = _RESULT_WORDS.get(m["flag"].lower(), "pass") == "pass"
    elif op:
        try:
            v, lim = parse_number(m["value"], field), parse_number(m["limit"], field)
            passed = {"≤": v <= lim, "<": v < lim, "≥": v >= lim, ">": v > lim}[op]
        except Invalid:
            passed = True
    return {"name": m["name"].strip(), "value": m["value"].strip(), "limit": limit, "passed": passed}


def parse_duration(text: Any, field: str = "payload.duration_hours") -> float | None:
    """``"40d"`` / ``"40 ngày"`` / ``"12h"`` / ``"90 min"`` / ``36`` (hours) -> hours."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    m = re.match(rf"^\s*(?P<num>{_NUM})\s*(?P<u>[^\d\s].*?)?\s*$", str(text))
    if not m:
        raise Invalid(field, f"not a number: {text!r}")
    n = parse_number(m["num"], field)
    u = (m["u"] or "h").lower()
    factor = {"h": 1, "hr": 1, "hrs": 1, "hour": 1, "hours": 1, "giờ": 1, "d": 24, "day": 24, "days": 24,
              "ngày": 24, "w": 168, "week": 168, "weeks": 168, "tuần": 168, "m": 1 / 60, "min": 1 / 60,
              "mins": 1 / 60, "minutes": 1 / 60, "phút": 1 / 60}.get(u)
    if factor is None:
        raise Invalid(field, f"unknown duration unit {u!r} (use h, d, w, min)")
    return round(n * factor, 6)


def normalize_gtin(value: Any) -> Any:
    """A valid GTIN-8/12/13/14 as GTIN-14; anything else unchanged (the schema then says what is wrong)."""
    if not isinstance(value, str):
        return value
    s = re.sub(r"[\s-]", "", value)
    return s.zfill(14) if gtin_problem(s) is None else s


def _text(v: Any) -> Any:
    return v.strip() if isinstance(v, str) else v


def _opt(v: Any) -> Any:
    v = _text(v)
    return v if v not in ("", None) else None


def _list(v: Any) -> list:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return list(v)


# --------------------------------------------------------------------------------------------------------------------
# the envelope


@dataclass(frozen=True)
class Envelope:
    """Who/where/when of an event. ``at`` is operator time text (None: now); ``now`` pins the clock (tests,
    the generator); ``event_id`` lets a retry reuse the same idempotency key."""

    subject_id: str
    user: str = ""
    facility: str | None = None
    source: str = "cli"
    at: Any = None
    tz: str = "Asia/Ho_Chi_Minh"
    now: datetime | None = None
    event_id: str | None = None

    def with_(self, **kw: Any) -> "Envelope":
        return replace(self, **kw)

    def recorded_at(self) -> str:
        moment = self.now or datetime.now(_tz(self.tz))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_tz(self.tz))
        return moment.astimezone(_tz(self.tz)).isoformat(timespec="milliseconds")

    def occurred_at(self) -> str:
        return parse_at(self.at, self.tz, self.now) if self.at is not None else self.recorded_at()

    def local_date(self) -> str:
        """The local calendar date of when it happened (default for production dates etc.)."""
        return datetime.fromisoformat(self.occurred_at()).astimezone(_tz(self.tz)).date().isoformat()


def _make(event_type: str, payload: dict, env: Envelope) -> dict:
    occurred = env.occurred_at()
    recorded = env.recorded_at() if env.at is not None else occurred
    ev = new_event(event_type, payload, subject_id=_text(env.subject_id) or "", user=env.user or "",
                   facility=_opt(env.facility), source=env.source, occurred_at=occurred, recorded_at=recorded,
                   event_id=env.event_id, tz=env.tz)
    validate_event(ev)
    return ev


# --------------------------------------------------------------------------------------------------------------------
# master data


def subject(env: Envelope, *, subject_id: str, name: str, kind: str, province: str, commune: str | None = None,
            tax_id: str | None = None, address: str = "", contact: str | None = None) -> dict:
    return _make("subject", {
        "subject_id": _text(subject_id), "name": _text(name), "kind": _word(kind, _KIND_WORDS),
        "tax_id": _opt(tax_id), "province_code": _text(province), "commune_code": _opt(commune),
        "address": _text(address) or "", "contact": _opt(contact),
    }, env)


def _cert(text: Any, i: int) -> dict:
    field = f"payload.certifications[{i}]"
    if isinstance(text, dict):
        return dict(text)
    parts = [p.strip() for p in str(text).split(":")]
    parts += [""] * (4 - len(parts))
    if len(parts) > 4:
        raise Invalid(field, f"expected SCHEME[:NUMBER[:FROM[:TO]]], got {text!r}")
    return {"scheme": parts[0], "number": parts[1],
            "valid_from": parse_date(parts[2], f"{field}.valid_from"),
            "valid_to": parse_date(parts[3], f"{field}.valid_to")}


def area(env: Envelope, *, code: str, owner: str, crops: Any, area_ha: Any, location: Any,
         certifications: Iterable[Any] = (), valid_from: Any = None, valid_to: Any = None, name: str = "",
         revoked: bool = False) -> dict:
    crop_list = [c.strip() for x in _list(crops) for c in str(x).split(",") if c.strip()]
    points = location if isinstance(location, (list, tuple)) and location and not isinstance(location[0], (int, float)) \
        else _list(location)
    if len(points) == 1 and isinstance(points[0], str) and ";" in points[0]:
        points = [p for p in points[0].split(";") if p.strip()]
    return _make("area", {
        "area_code": _text(code), "owner_subject_id": _text(owner), "name": _text(name) or "",
        "crops": crop_list, "area_ha": parse_number(area_ha, "payload.area_ha"),
        "location": [parse_point(p, f"payload.location[{i}]") for i, p in enumerate(points)],
        "certifications": [_cert(c, i) for i, c in enumerate(_list(certifications))],
        "valid_from": parse_date(valid_from, "payload.valid_from") or env.local_date(),
        "valid_to": parse_date(valid_to, "payload.valid_to"), "revoked": bool(revoked),
    }, env)


def product(env: Envelope, *, gtin: str, owner: str, name_vi: str, group: str, name_en: str = "",
            net_content: Any = None, shelf_life_days: Any = None) -> dict:
    return _make("product", {
        "gtin": normalize_gtin(gtin), "owner_subject_id": _text(owner), "name_vi": _text(name_vi),
        "name_en": _text(name_en) or "", "ocop_group": _word(group, _GROUP_WORDS),
        "net_content": parse_quantity(net_content, None, "payload.net_content") if _opt(net_content) is not None else None,
        "shelf_life_days": parse_int(shelf_life_days, "payload.shelf_life_days") if _opt(shelf_life_days) is not None else None,
    }, env)


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    import calendar
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def rating(env: Envelope, *, gtin: str, stars: Any, score: Any, level: str, decision_no: str, decision_date: Any,
           valid_from: Any = None, valid_to: Any = None, action: str = "granted") -> dict:
    ddate = parse_date(decision_date, "payload.decision_date") or env.local_date()
    vfrom = parse_date(valid_from, "payload.valid_from") or ddate
    vto = parse_date(valid_to, "payload.valid_to")
    if vto is None:
        vto = (_add_months(date.fromisoformat(vfrom), RATING_VALID_MONTHS) - timedelta(days=1)).isoformat()
    return _make("rating", {
        "gtin": normalize_gtin(gtin), "action": _word(action, {"cấp": "granted", "công nhận": "granted",
                                                                  "công nhận lại": "renewed", "thu hồi": "withdrawn"}),
        "stars": parse_int(stars, "payload.stars"), "score": parse_int(score, "payload.score"),
        "level": _text(level), "decision_no": _text(decision_no), "decision_date": ddate,
        "valid_from": vfrom, "valid_to": vto,
    }, env)


def facility(env: Envelope, *, facility_id: str, owner: str, name: str, kind: str = "other", address: str = "",
             location: Any = None) -> dict:
    return _make("facility", {
        "facility_id": _text(facility_id), "owner_subject_id": _text(owner), "name": _text(name),
        "kind": _word(kind, _FACILITY_WORDS), "address": _text(address) or "",
        "location": parse_point(location, "payload.location") if _opt(location) is not None else None,
    }, env)


# --------------------------------------------------------------------------------------------------------------------
# supply-chain events


def harvest(env: Envelope, *, lot: str, area: str, crop: str, qty: Any, unit: str | None = None,
            crate_tags: Iterable[str] = ()) -> dict:
    return _make("harvest", {
        "lot": _text(lot), "area_code": _text(area), "crop": _text(crop),
        "quantity": parse_quantity(qty, unit, "payload.quantity"),
        "crate_tags": [_text(c) for c in _list(crate_tags)],
    }, env)


def receive(env: Envelope, *, lot: str, qty: Any, unit: str | None = None, from_facility: str | None = None,
            document_ref: str | None = None) -> dict:
    return _make("receive", {
        "lot": _text(lot), "quantity": parse_quantity(qty, unit, "payload.quantity"),
        "from_facility": _opt(from_facility), "document_ref": _opt(document_ref),
    }, env)


def transform(env: Envelope, *, process: str, inputs: Sequence[Any], outputs: Sequence[Any],
              unit: str | None = None, duration: Any = None) -> dict:
    return _make("transform", {
        "process": _text(process),
        "inputs": [parse_lot_quantity(x, unit, f"payload.inputs[{i}]") for i, x in enumerate(_list(inputs))],
        "outputs": [parse_lot_quantity(x, unit, f"payload.outputs[{i}]") for i, x in enumerate(_list(outputs))],
        "duration_hours": parse_duration(duration),
    }, env)


def inspect(env: Envelope, *, lot: str, lab: str, result: str, params: Iterable[Any] = (),
            certificate_no: str | None = None) -> dict:
    return _make("inspect", {
        "lot": _text(lot), "lab": _text(lab), "result": _word(result, _RESULT_WORDS),
        "parameters": [parse_param(p, f"payload.parameters[{i}]") for i, p in enumerate(_list(params))],
        "certificate_no": _opt(certificate_no),
    }, env)


def package(env: Envelope, *, lot: str, gtin: str, units: Any, production_date: Any = None, expiry_date: Any = None,
            stamps: Any = 0, qty: Any = None, unit: str | None = None) -> dict:
    return _make("package", {
        "lot": _text(lot), "gtin": normalize_gtin(gtin), "units": parse_int(units, "payload.units"),
        "quantity": parse_quantity(qty, unit, "payload.quantity") if _opt(qty) is not None else None,
        "production_date": parse_date(production_date, "payload.production_date") or env.local_date(),
        "expiry_date": parse_date(expiry_date, "payload.expiry_date"),
        "stamps_requested": parse_int(stamps if stamps is not None else 0, "payload.stamps_requested"),
    }, env)


def ship(env: Envelope, *, lot: str, units: Any, to: str, carrier: str | None = None,
         document_ref: str | None = None) -> dict:
    return _make("ship", {
        "lot": _text(lot), "units": parse_int(units, "payload.units"), "to_facility": _text(to),
        "carrier": _opt(carrier), "document_ref": _opt(document_ref),
    }, env)


def sell(env: Envelope, *, lot: str, units: Any, pos: str) -> dict:
    return _make("sell", {"lot": _text(lot), "units": parse_int(units, "payload.units"), "point_of_sale": _text(pos)},
                 env)


def recall(env: Envelope, *, scope: str, target: str, reason: str, authority: str = "") -> dict:
    return _make("recall", {"scope": _word(scope, _SCOPE_WORDS), "target": _text(target), "reason": _text(reason),
                            "authority": _text(authority) or ""}, env)


def void(env: Envelope, *, lot: str, voids: str, reason: str) -> dict:
    return _make("void", {"lot": _text(lot), "voided_event_id": _text(voids), "reason": _text(reason)}, env)


BUILDERS = {"subject": subject, "area": area, "product": product, "rating": rating, "facility": facility,
            "harvest": harvest, "receive": receive, "transform": transform, "inspect": inspect, "package": package,
            "ship": ship, "sell": sell, "recall": recall, "void": void}


# --------------------------------------------------------------------------------------------------------------------
# confirmations and error messages

# event field (dotted path prefix) -> what the operator typed, for the envelope fields every command shares
COMMON_FIELDS = {"occurred_at": "--at", "recorded_at": "--at", "actor.subject_id": "--subject", "actor.user": "--user",
                 "facility": "--facility", "event_id": "--event-id"}


def option_for(field: str, fields: dict[str, str]) -> str:
    """``"--qty (payload.quantity.value)"``: the operator's name for an event field path (longest matching prefix
    in ``fields``, then :data:`COMMON_FIELDS`), else the path itself."""
    names = {**COMMON_FIELDS, **fields}
    best = ""
    for prefix in names:
        if (field == prefix or field.startswith(prefix + ".") or field.startswith(prefix + "[")) and len(prefix) > len(best):
            best = prefix
    return f"{names[best]} ({field})" if best else field


def describe_invalid(e: Invalid, fields: dict[str, str] | None = None, lang: str = "vi") -> str:
    """One line for a person: the option, the field, and the reason in ``lang``."""
    return t("invalid", lang, field=option_for(e.field, fields or {}), reason=_tr_reason(e.reason, lang))


def confirmation(ev: dict, lang: str = "vi") -> str:
    """The one-line confirmation an operator reads after an event is recorded (without the event id)."""
    typ, p = ev["event_type"], ev["payload"]
    q = lambda x: format_quantity(x, lang)  # noqa: E731
    if typ == "harvest":
        return t("harvest.ok", lang, lot=p["lot"], qty=q(p["quantity"]), crop=p["crop"], area=p["area_code"])
    if typ == "receive":
        where = t("receive.at", lang, facility=ev["facility"]) if ev.get("facility") else ""
        return t("receive.ok", lang, lot=p["lot"], qty=q(p["quantity"]), where=where)
    if typ == "transform":
        fmt = lambda xs: " + ".join(f"{x['lot']} ({q(x['quantity'])})" for x in xs)  # noqa: E731
        return t("transform.ok", lang, process=p["process"], inputs=fmt(p["inputs"]), outputs=fmt(p["outputs"]))
    if typ == "inspect":
        return t("inspect.ok", lang, lot=p["lot"], lab=p["lab"], result=t(f"inspect.{p['result']}", lang))
    if typ == "package":
        expiry = t("package.expiry", lang, expiry=p["expiry_date"]) if p.get("expiry_date") else ""
        stamps = t("package.stamps", lang, stamps=p["stamps_requested"]) if p.get("stamps_requested") else ""
        return t("package.ok", lang, lot=p["lot"], units=p["units"], gtin=p["gtin"], production=p["production_date"],
                 expiry=expiry, stamps=stamps)
    if typ == "ship":
        return t("ship.ok", lang, lot=p["lot"], units=p["units"], to=p["to_facility"])
    if typ == "sell":
        return t("sell.ok", lang, lot=p["lot"], units=p["units"], pos=p["point_of_sale"])
    if typ == "recall":
        return t("recall.ok", lang, scope=t(f"recall.{p['scope']}", lang), target=p["target"], reason=p["reason"])
    if typ == "void":
        return t("void.ok", lang, lot=p["lot"], voided=p["voided_event_id"], reason=p["reason"])
    if typ == "subject":
        return t("subject.ok", lang, id=p["subject_id"], name=p["name"], kind=t(f"kind.{p['kind']}", lang))
    if typ == "area":
        return t("area.ok", lang, code=p["area_code"], crops=", ".join(p["crops"]), ha=_num_text(p["area_ha"], lang),
                 owner=p["owner_subject_id"])
    if typ == "product":
        name = p["name_en"] if lang == "en" and p.get("name_en") else p["name_vi"]
        return t("product.ok", lang, gtin=p["gtin"], name=name, group=t(f"group.{p['ocop_group']}", lang),
                 owner=p["owner_subject_id"])
    if typ == "rating":
        return t("rating.ok", lang, stars=p["stars"], score=p["score"], gtin=p["gtin"], decision=p["decision_no"],
                 valid_from=p["valid_from"], valid_to=p["valid_to"])
    if typ == "facility":
        return t("facility.ok", lang, id=p["facility_id"], name=p["name"], kind=t(f"facility.{p['kind']}", lang))
    return f"{typ} {event_key(ev)}"
