"""EPCIS 2.0 and this project's events: the canonical event hash and the mapping between the two models.

Two halves, both pure (stdlib only):

1. :func:`epcis_event_hash` — the "EPCIS Event Hash ID" of GS1 CBV 2.0 (§8.9): a pre-hash string built from the event's
   fields in a fixed canonical order, every value normalised (time stamps in UTC with milliseconds, numbers without
   trailing zeros, CBV vocabulary as Web URIs, EPC URNs and Digital Link URIs as constrained canonical GS1 Digital
   Link), list items sorted, user extensions and ILMD as ``{namespace}name=value`` sorted, then hashed into
   ``ni:///sha-256;<hex>?ver=CBV2.0`` (RFC 6920). The same event in any JSON key order, with any namespace prefix,
   with URN or Digital Link identifiers, gives the same hash. ``eventID``, ``recordTime``, ``certificationInfo`` and
   ``errorDeclaration`` are not part of it (an error declaration repeats the hash of the event it corrects).
   Checked against the published reference vectors in ``tests/data/epcis/``.

2. :func:`from_epcis` — one EPCIS event (JSON-LD) onto one of our events (a dict shaped by ``ocop.Event.avsc``). The
   mapping is a table, meant to be read both ways (the auditor's ``to_epcis`` uses the same rows):

   * :data:`STEPS`: event type ↔ EPCIS event type, CBV bizStep, action, disposition.
   * :data:`UNITS`: our unit ↔ UN/CEFACT Rec. 20 unit of measure (``kg``↔``KGM``, ``t``↔``TNE``, ``l``↔``LTR``,
     ``unit``↔``H87``; a quantity without ``uom`` counts pieces).
   * a lot is an EPC class: :func:`epc_class` (ours → Digital Link) and :func:`parse_epc_class` (``urn:epc:class:lgtin:``
     or any Digital Link with AI 01 + 10 → GTIN-14 and lot).
   * facts without an EPCIS field (crop, growing-area code, process, lab...) travel as ILMD or user extensions in
     :data:`OCOP_NS` (JSON-LD prefix ``ocop``), looked up by local name so any prefix works.

   CBV 2.0 has no *harvesting* bizStep: a harvest is ``commissioning`` with the harvest facts in ILMD (``ocop:crop``,
   ``ocop:areaCode``), or the project's own :data:`HARVESTING` bizStep. A correction (``errorDeclaration`` on an event
   whose ``eventID`` is ``urn:uuid:<our event id>``) becomes a ``void``; ``disposition: recalled`` becomes a ``recall``.
   What cannot be mapped raises :class:`~schemas.validation.Invalid` naming the EPCIS field and why.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable
from urllib.parse import unquote, urlsplit

from schemas.events import new_event
from schemas.validation import Invalid

HASH_VERSION = "CBV2.0"
CBV_WEB = "https://ref.gs1.org/cbv/"
GS1_VOC_WEB = "https://ref.gs1.org/voc/"
DIGITAL_LINK_BASE = "https://id.gs1.org"

OCOP_NS = "urn:ocop-trace:epcis:"
"""Namespace of this project's ILMD and extension fields (JSON-LD prefix ``ocop``)."""
HARVESTING = f"{OCOP_NS}bizstep:harvesting"
"""The project's own bizStep for a harvest (CBV 2.0 has none); ``commissioning`` with harvest ILMD works too."""
OCOP_CONTEXT = {"ocop": OCOP_NS, "cbvmda": "urn:epcglobal:cbv:mda:"}
"""The JSON-LD context entries an exporter adds beside the standard EPCIS context."""

EVENT_ID_NAMESPACE = uuid.UUID("5f0c3c1e-7d0a-5b8e-9d3e-0c0b7ea5e915")
"""UUID-5 namespace: an EPCIS event without a ``urn:uuid:`` eventID gets ``uuid5(namespace, its hash)``."""

# ================================================================================================================
# GS1 identifiers: check digits, EPC URNs → Digital Link, constrained canonical Digital Link
# ================================================================================================================


def gs1_check_digit(body: str) -> str:
    """The GS1 mod-10 check digit of ``body`` (digits; weights 3,1,3,... from the right)."""
    total = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def _gtin14(company_prefix: str, item_ref: str) -> str:
    """GTIN-14 from an EPC's company prefix and indicator+item reference (the indicator digit moves to the front)."""
    body = item_ref[:1] + company_prefix + item_ref[1:]
    return body + gs1_check_digit(body)


_EPC_URN = re.compile(r"^urn:epc:(id|class|idpat):([a-z0-9]+):(.+)$")


def epc_to_digital_link(uri: str) -> str | None:
    """An EPC pure-identity URN (``urn:epc:id:...``), EPC class (``urn:epc:class:lgtin:...``) or pattern
    (``urn:epc:idpat:sgtin:...``) as its canonical GS1 Digital Link URI, or None if it is not one we know."""
    m = _EPC_URN.match(uri)
    if not m:
        return None
    kind, scheme, body = m.groups()
    p = body.split(".")
    try:
        if kind == "class" and scheme == "lgtin":
            prefix, item, lot = body.split(".", 2)
            path = f"01/{_gtin14(prefix, item)}/10/{lot}"
        elif kind == "idpat" and scheme == "sgtin":
            path = f"01/{_gtin14(p[0], p[1])}" + (f"/21/{p[2]}" if len(p) > 2 and p[2] != "*" else "")
        elif kind != "id":
            return None
        elif scheme == "sgtin":
            prefix, item, serial = body.split(".", 2)
            path = f"01/{_gtin14(prefix, item)}/21/{serial}"
        elif scheme == "sscc":
            b = p[1][:1] + p[0] + p[1][1:]
            path = f"00/{b}{gs1_check_digit(b)}"
        elif scheme == "sgln":
            prefix, loc, ext = body.split(".", 2)
            gln = prefix + loc + gs1_check_digit(prefix + loc)
            path = f"414/{gln}" + (f"/254/{ext}" if ext != "0" else "")
        elif scheme == "pgln":
            path = f"417/{p[0] + p[1]}{gs1_check_digit(p[0] + p[1])}"
        elif scheme == "grai":
            prefix, asset, serial = body.split(".", 2)
            b = "0" + prefix + asset
            path = f"8003/{b}{gs1_check_digit(b)}{serial}"
        elif scheme == "giai":
            prefix, ref = body.split(".", 1)
            path = f"8004/{prefix}{ref}"
        elif scheme in ("gsrn", "gsrnp"):
            b = p[0] + p[1]
            path = f"{'8018' if scheme == 'gsrn' else '8017'}/{b}{gs1_check_digit(b)}"
        elif scheme in ("gdti", "sgcn"):
            prefix, ref, serial = body.split(".", 2)
            b = prefix + ref
            path = f"{'253' if scheme == 'gdti' else '255'}/{b}{gs1_check_digit(b)}{serial}"
        elif scheme == "ginc":
            prefix, ref = body.split(".", 1)
            path = f"401/{prefix}{ref}"
        elif scheme == "gsin":
            b = p[0] + p[1]
            path = f"402/{b}{gs1_check_digit(b)}"
        elif scheme == "cpi":
            prefix, ref, serial = body.split(".", 2)
            path = f"8010/{prefix}{ref}/8011/{serial}"
        else:
            return None
    except (ValueError, IndexError):
        return None
    return f"{DIGITAL_LINK_BASE}/{path}"


_PRINTABLE = r"[\x21-\x7e]"
# Primary-key AIs of GS1 Digital Link and the shape of their values (unescaped).
_PRIMARY_KEYS = {
    "00": re.compile(r"\d{18}"),
    "01": re.compile(r"\d{8}|\d{12,14}"),
    "253": re.compile(rf"\d{{13}}{_PRINTABLE}{{0,17}}"),
    "255": re.compile(r"\d{13,25}"),
    "401": re.compile(rf"{_PRINTABLE}{{1,30}}"),
    "402": re.compile(r"\d{17}"),
    "414": re.compile(r"\d{13}"),
    "417": re.compile(r"\d{13}"),
    "8003": re.compile(rf"\d{{14}}{_PRINTABLE}{{0,16}}"),
    "8004": re.compile(rf"{_PRINTABLE}{{1,30}}"),
    "8006": re.compile(r"\d{18}"),
    "8010": re.compile(rf"{_PRINTABLE}{{1,30}}"),
    "8017": re.compile(r"\d{18}"),
    "8018": re.compile(r"\d{18}"),
}
# The key qualifiers kept, most fine-grained first (01 21 / 01 10 / 01 235 / 414 254 / 8006 21 / 8006 10 / 8010 8011).
_QUALIFIERS = {"01": ("21", "10", "235"), "414": ("254",), "8006": ("21", "10"), "8010": ("8011",)}


def _parse_digital_link(uri: str) -> list[tuple[str, str]] | None:
    """The (AI, raw value) pairs of a Digital Link URI's path from its primary key on, or None."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    segs = [s for s in parts.path.split("/") if s]
    for i in range(len(segs) - 1):
        ai = segs[i]
        if ai in _PRIMARY_KEYS and _PRIMARY_KEYS[ai].fullmatch(unquote(segs[i + 1])):
            rest = segs[i + 2:]
            return [(ai, segs[i + 1])] + [(rest[j], rest[j + 1]) for j in range(0, len(rest) - 1, 2)]
    return None


def constrain_digital_link(uri: str) -> str | None:
    """A GS1 Digital Link URI in constrained canonical form (``https://id.gs1.org``, no query string, only the most
    fine-grained key qualifier, GTIN as 14 digits), or None if ``uri`` is not a Digital Link URI."""
    pairs = _parse_digital_link(uri)
    if not pairs:
        return None
    ai, value = pairs[0]
    if ai == "01":
        value = value.zfill(14)
    path = f"{ai}/{value}"
    quals = dict(pairs[1:])
    for q in _QUALIFIERS.get(ai, ()):
        if q in quals:
            path += f"/{q}/{quals[q]}"
            break
    return f"{DIGITAL_LINK_BASE}/{path}"


def to_digital_link(value: str) -> str | None:
    """Any EPC URN or Digital Link URI as constrained canonical Digital Link; None for anything else."""
    if value.startswith("urn:epc:"):
        return epc_to_digital_link(value)
    if value.startswith(("http://", "https://")):
        return constrain_digital_link(value)
    return None


# ================================================================================================================
# Value normalisation for the pre-hash string
# ================================================================================================================

_CBV_URNS = (
    ("urn:epcglobal:cbv:bizstep:", "BizStep-"),
    ("urn:epcglobal:cbv:disp:", "Disp-"),
    ("urn:epcglobal:cbv:btt:", "BTT-"),
    ("urn:epcglobal:cbv:sdt:", "SDT-"),
    ("urn:epcglobal:cbv:er:", "ER-"),
)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?")


def utc_millis(value: str) -> str:
    """An ISO 8601 date-time in UTC with exactly three decimals (rounded half up) and ``Z``; other text unchanged."""
    text = value.strip()
    m = _TIMESTAMP.fullmatch(text)
    if not m:
        return text
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=_offset(tz))
    except ValueError:
        return text
    millis = (Decimal(f"0.{frac or '0'}") * 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    dt = (dt + timedelta(milliseconds=int(millis))).astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{dt.microsecond // 1000:03d}Z"


def _offset(tz: str | None) -> timezone:
    if not tz or tz in ("Z", "z"):
        return timezone.utc
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def _number_text(text: str) -> str:
    """Numbers without trailing zeros (``25.0`` → ``25``, ``0.50`` → ``0.5``); other text unchanged."""
    if not _NUMBER.fullmatch(text):
        return text
    d = Decimal(text)
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def _scalar_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def canonical_value(v: Any) -> str:
    """A value as it appears in the pre-hash string: trimmed, CBV URNs as Web URIs, numbers without trailing zeros,
    EPC URNs and Digital Link URIs as constrained canonical Digital Link."""
    text = _scalar_text(v).strip()
    for urn, web in _CBV_URNS:
        if text.startswith(urn):
            text = CBV_WEB + web + text[len(urn):]
            break
    text = _number_text(text)
    return to_digital_link(text) or text


def cbv_uri(value: Any, kind: str) -> str:
    """A CBV vocabulary value (bare word as in JSON-LD, URN or URI) as its Web URI; ``kind`` is BizStep, Disp, BTT,
    SDT or ER. A user-defined URI stays as it is."""
    text = _scalar_text(value).strip()
    if text and ":" not in text:
        return f"{CBV_WEB}{kind}-{text}"
    return canonical_value(text)


def cbv_word(value: Any, kind: str) -> str | None:
    """The bare CBV word of a vocabulary value in any of its spellings (``receiving``,
    ``urn:epcglobal:cbv:bizstep:receiving``, ``https://ref.gs1.org/cbv/BizStep-receiving``, ``cbv:BizStep-receiving``),
    or None if it is not a CBV value of that kind."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if ":" not in text:
        return text
    uri = cbv_uri(text, kind)
    for prefix in (f"{CBV_WEB}{kind}-", f"cbv:{kind}-"):
        if uri.startswith(prefix):
            return uri[len(prefix):]
    if text.startswith(f"cbv:{kind}-"):
        return text[len(f"cbv:{kind}-"):]
    return None


# ================================================================================================================
# The pre-hash string
# ================================================================================================================

# Prefixes known without a document context (as the reference implementation resolves them).
_DEFAULT_NAMESPACES = {
    "cbvmda": "urn:epcglobal:cbv:mda",
    "gs1": "https://gs1.org/voc/",
    "cbv": "https://ref.gs1.org/cbv/",
    "epcis": "https://ref.gs1.org/epcis/",
}
_SENSOR_METADATA = ("time", "startTime", "endTime", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod",
                    "bizRules")
_SENSOR_REPORT = ("type", "exception", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod", "time",
                  "microorganism", "chemicalSubstance", "value", "component", "stringValue", "booleanValue",
                  "hexBinaryValue", "uriValue", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue",
                  "uom", "coordinateReferenceSystem")
_TIME_FIELDS = frozenset({"time", "startTime", "endTime"})

# The canonical property order: (field, how its value is written). Fields not here and not in _NOT_HASHED are user
# extensions.
_EPC_LISTS = ("epcList", "inputEPCList", "childEPCs", "outputEPCList")
_QUANTITY_LISTS = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")
_CANONICAL_ORDER = (
    "epcList", "parentID", "inputEPCList", "childEPCs", "quantityList", "childQuantityList", "inputQuantityList",
    "outputEPCList", "outputQuantityList", "action", "transformationID", "bizStep", "disposition",
    "persistentDisposition", "readPoint", "bizLocation", "bizTransactionList", "sourceList", "destinationList",
    "sensorElementList", "ilmd",
)
_TYPED_LISTS = {"bizTransactionList": ("bizTransaction", "BTT"), "sourceList": ("source", "SDT"),
                "destinationList": ("destination", "SDT")}
_NOT_HASHED = frozenset({"@context", "type", "isA", "eventTime", "eventTimeZoneOffset", "eventID", "recordTime",
                         "errorDeclaration", "certificationInfo"})
STANDARD_FIELDS = _NOT_HASHED | frozenset(_CANONICAL_ORDER)
"""Every standard field of an EPCIS 2.0 event; anything else at event level is a user extension."""


def namespaces(*contexts: Any) -> dict[str, str]:
    """Prefix → namespace IRI from JSON-LD ``@context`` values (a string, a mapping or a list of them), on top of the
    prefixes known by default."""
    out = dict(_DEFAULT_NAMESPACES)

    def visit(c: Any) -> None:
        if isinstance(c, list):
            for x in c:
                visit(x)
        elif isinstance(c, dict):
            for k, v in c.items():
                if k.startswith("@"):
                    continue
                if isinstance(v, str):
                    out[k] = v
                elif isinstance(v, dict) and isinstance(v.get("@id"), str):
                    out[k] = v["@id"]

    for c in contexts:
        visit(c)
    return out


def _qualified(key: str, ns: dict[str, str]) -> str:
    if ":" in key:
        prefix, local = key.split(":", 1)
        if prefix in ns:
            return "{" + ns[prefix] + "}" + local
    return key


def _extension_strings(obj: dict, ns: dict[str, str], skip: Iterable[str] = ()) -> list[str]:
    """``{namespace}name=value`` for every member of ``obj`` (nested members follow their parent's name)."""
    skip = set(skip)
    out: list[str] = []
    for key, value in obj.items():
        if key in skip or key.startswith("@") or key == "#text":
            continue
        out.extend(_extension_value(_qualified(key, ns), value, ns))
    return out


def _extension_value(name: str, value: Any, ns: dict[str, str]) -> list[str]:
    if isinstance(value, list):
        return [s for item in value for s in _extension_value(name, item, ns)]
    if isinstance(value, dict):
        text = value.get("#text")
        head = name + (f"={canonical_value(text)}" if text not in (None, "") else "")
        return [head + "".join(sorted(_extension_strings(value, ns)))]
    if value is None:
        return [name]
    text = canonical_value(value)
    return [f"{name}={text}" if text else name]


def _field(name: str, value: Any, *, time: bool = False) -> str:
    if value is None:
        return ""
    text = utc_millis(_scalar_text(value)) if time else canonical_value(value)
    return f"{name}={text}" if text else ""


def _quantity_element(q: dict) -> str:
    s = _field("epcClass", q.get("epcClass")) + _field("quantity", q.get("quantity"))
    if q.get("uom") is not None:
        s += f"uom={_scalar_text(q['uom']).strip()}"
    return "quantityElement" + s if s else ""


def _sensor_fields(obj: dict, order: tuple[str, ...]) -> str:
    s = ""
    for f in order:
        v = obj.get(f)
        if v is None:
            continue
        if f in ("type", "exception") and isinstance(v, str) and ":" not in v.strip():
            s += f"{f}={GS1_VOC_WEB}{v.strip()}"
        else:
            s += _field(f, v, time=f in _TIME_FIELDS)
    return s


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _sensor_element(el: dict) -> str:
    md = _sensor_fields(el.get("sensorMetadata") or {}, _SENSOR_METADATA)
    reports = sorted(r for r in ("sensorReport" + _sensor_fields(x, _SENSOR_REPORT)
                                 for x in _as_list(el.get("sensorReport")) if isinstance(x, dict))
                     if r != "sensorReport")
    body = (f"sensorMetadata{md}" if md else "") + "".join(reports)
    return f"sensorElement{body}" if body else ""


def _sensor_extensions(el: dict, ns: dict[str, str]) -> str:
    parts = []
    md = sorted(_extension_strings(el.get("sensorMetadata") or {}, ns, _SENSOR_METADATA))
    if md:
        parts.append("sensorMetadata" + "".join(md))
    reports = []
    for r in _as_list(el.get("sensorReport")):
        if isinstance(r, dict):
            ext = sorted(_extension_strings(r, ns, _SENSOR_REPORT))
            if ext:
                reports.append("sensorReport" + "".join(ext))
    parts.extend(sorted(reports))
    parts.extend(sorted(_extension_strings(el, ns, ("sensorMetadata", "sensorReport"))))
    return "sensorElement" + "".join(parts) if parts else ""


def _canonical_part(key: str, value: Any, ns: dict[str, str]) -> str:
    if key in _EPC_LISTS:
        items = sorted(f"epc={canonical_value(x)}" for x in _as_list(value) if _scalar_text(x).strip())
        return key + "".join(items) if items else ""
    if key in _QUANTITY_LISTS:
        items = sorted(q for q in (_quantity_element(x) for x in _as_list(value) if isinstance(x, dict)) if q)
        return key + "".join(items) if items else ""
    if key in ("bizStep", "disposition"):
        return f"{key}={cbv_uri(value, 'BizStep' if key == 'bizStep' else 'Disp')}"
    if key == "persistentDisposition":
        s = "".join(f"{part}={x}" for part in ("set", "unset")
                    for x in sorted(cbv_uri(v, "Disp") for v in _as_list((value or {}).get(part))))
        return f"{key}{s}" if s else ""
    if key in ("readPoint", "bizLocation"):
        ident = value.get("id") if isinstance(value, dict) else value
        s = _field("id", ident)
        return f"{key}{s}" if s else ""
    if key in _TYPED_LISTS:
        member, kind = _TYPED_LISTS[key]
        items = []
        for x in _as_list(value):
            if not isinstance(x, dict):
                continue
            s = (f"type={cbv_uri(x['type'], kind)}" if x.get("type") is not None else "") + _field(member, x.get(member))
            if s:
                items.append(s)
        return key + "".join(sorted(items)) if items else ""
    if key == "sensorElementList":
        return "".join(sorted(s for s in (_sensor_element(x) for x in _as_list(value) if isinstance(x, dict)) if s))
    if key == "ilmd":
        items = sorted(_extension_strings(value, ns)) if isinstance(value, dict) else []
        return "ilmd" + "".join(items) if items else ""
    return _field(key, value)


def epcis_prehash(event: dict, context: Any = None, *, join_by: str = "") -> str:
    """The canonical pre-hash string of one EPCIS event (``context``: the enclosing document's ``@context``).
    ``join_by`` separates the parts for reading (the hash uses ``""``)."""
    ns = namespaces(context, event.get("@context"))
    parts = [f"eventType={event.get('type') or event.get('isA')}"]
    if event.get("eventTime") is not None:
        parts.append(f"eventTime={utc_millis(_scalar_text(event['eventTime']))}")
    if event.get("eventTimeZoneOffset") is not None:
        parts.append(f"eventTimeZoneOffset={_scalar_text(event['eventTimeZoneOffset']).strip()}")
    for key in _CANONICAL_ORDER:
        if key in event and event[key] is not None:
            part = _canonical_part(key, event[key], ns)
            if part:
                parts.append(part)
    # user extensions: inside readPoint / bizLocation / sensor elements first, then those at event level, sorted
    for key in ("readPoint", "bizLocation"):
        if isinstance(event.get(key), dict):
            ext = sorted(_extension_strings(event[key], ns, ("id",)))
            if ext:
                parts.append(key + "".join(ext))
    sensor_ext = sorted(s for s in (_sensor_extensions(x, ns) for x in _as_list(event.get("sensorElementList"))
                                    if isinstance(x, dict)) if s)
    parts.extend(sensor_ext)
    parts.extend(sorted(_extension_strings(event, ns, STANDARD_FIELDS)))
    return join_by.join(parts)


def epcis_event_hash(event: dict, context: Any = None, *, algorithm: str = "sha-256") -> str:
    """The EPCIS Event Hash ID: ``ni:///sha-256;<hex>?ver=CBV2.0`` (``sha-384``, ``sha-512`` also accepted)."""
    impl = {"sha-256": hashlib.sha256, "sha-384": hashlib.sha384, "sha-512": hashlib.sha512}[algorithm]
    digest = impl(epcis_prehash(event, context).encode("utf-8")).hexdigest()
    return f"ni:///{algorithm};{digest}?ver={HASH_VERSION}"


def document_events(doc: Any) -> tuple[list, Any]:
    """The events of an EPCISDocument and its ``@context``. Raises :class:`Invalid` if ``doc`` is not one."""
    if not isinstance(doc, dict):
        raise Invalid("", "an EPCISDocument must be a JSON object")
    kind = doc.get("type") or doc.get("isA")
    if kind not in ("EPCISDocument", "EPCISQueryDocument"):
        raise Invalid("type", f"must be EPCISDocument, got {kind!r}")
    body = doc.get("epcisBody")
    if not isinstance(body, dict):
        raise Invalid("epcisBody", "is required")
    events = body.get("eventList")
    if events is None and isinstance(body.get("queryResults"), dict):
        events = (body["queryResults"].get("resultsBody") or {}).get("eventList")
    if not isinstance(events, list):
        raise Invalid("epcisBody.eventList", "must be a list of events")
    return events, doc.get("@context")


def dedup_key(event: dict, context: Any = None) -> str:
    """What makes two captured EPCIS events duplicates: the event hash, marked when the event is an error
    declaration (which repeats the hash of the event it corrects but is a different fact)."""
    h = epcis_event_hash(event, context)
    return f"{h}#errorDeclaration" if event.get("errorDeclaration") else h


# ================================================================================================================
# The mapping table (both directions)
# ================================================================================================================

UNITS: tuple[tuple[str, str], ...] = (("kg", "KGM"), ("t", "TNE"), ("l", "LTR"), ("unit", "H87"))
"""Our unit ↔ UN/CEFACT Rec. 20 code."""
UOM_OF_UNIT = dict(UNITS)
UNIT_OF_UOM = {uom: unit for unit, uom in UNITS}
# Accepted on the way in only: converted to one of ours.
_UOM_CONVERSIONS = {"GRM": ("kg", Decimal("0.001")), "MLT": ("l", Decimal("0.001")), "C62": ("unit", Decimal(1))}


@dataclass(frozen=True)
class Step:
    """One row of the mapping: our event type ↔ the EPCIS event that carries it."""

    event_type: str
    epcis_type: str  # ObjectEvent | AggregationEvent | TransformationEvent
    biz_step: str  # CBV 2.0 bizStep (bare word) or a URI of ours
    action: str | None  # ADD | OBSERVE | DELETE; TransformationEvent has none
    disposition: str | None  # CBV disposition after the step


STEPS: tuple[Step, ...] = (
    Step("harvest", "ObjectEvent", "commissioning", "ADD", "active"),  # + ILMD ocop:crop, ocop:areaCode
    Step("receive", "ObjectEvent", "receiving", "OBSERVE", "in_progress"),
    Step("transform", "TransformationEvent", "transforming", None, "active"),
    Step("inspect", "ObjectEvent", "inspecting", "OBSERVE", "conformant"),  # result fail: non_conformant
    Step("package", "ObjectEvent", "packing", "ADD", "active"),  # + ILMD productionDate, itemExpirationDate
    Step("ship", "ObjectEvent", "shipping", "OBSERVE", "in_transit"),
    Step("sell", "ObjectEvent", "retail_selling", "OBSERVE", "retail_sold"),
    Step("recall", "ObjectEvent", "holding", "OBSERVE", "recalled"),
)
"""``void`` has no row: it is the event it corrects with an ``errorDeclaration`` (reason ``incorrect_data``)."""
STEP_OF_TYPE = {s.event_type: s for s in STEPS}
INSPECTION_DISPOSITION = {"pass": "conformant", "fail": "non_conformant"}
INSPECTION_RESULT = {v: k for k, v in INSPECTION_DISPOSITION.items()}
VOID_REASON = "incorrect_data"

# bizSteps accepted on the way in (ObjectEvent / AggregationEvent) → our event type. "commissioning" is decided by
# its ILMD (harvest facts → harvest, otherwise a product lot → package).
_EVENT_TYPE_OF_BIZSTEP = {
    "harvesting": "harvest",
    "receiving": "receive", "arriving": "receive", "accepting": "receive",
    "inspecting": "inspect", "sampling": "inspect",
    "packing": "package", "repackaging": "package",
    "shipping": "ship", "departing": "ship",
    "retail_selling": "sell",
}
SUPPORTED_TYPES = ("ObjectEvent", "AggregationEvent", "TransformationEvent")


def epc_class(gtin: str, lot: str) -> str:
    """A lot of a product as an EPC class in Digital Link form: ``https://id.gs1.org/01/<GTIN-14>/10/<lot>``."""
    from urllib.parse import quote

    return f"{DIGITAL_LINK_BASE}/01/{gtin.zfill(14)}/10/{quote(lot, safe='')}"


def parse_epc_class(value: Any, field: str = "epcClass") -> tuple[str | None, str]:
    """GTIN-14 and lot of an LGTIN EPC class (``urn:epc:class:lgtin:...`` or a Digital Link with AI 01 and 10);
    the project's own lot class ``urn:ocop-trace:epcis:lot:<lot>`` (a lot whose product is not known yet) gives
    ``(None, lot)``."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(field, "is required (an LGTIN: urn:epc:class:lgtin:... or https://id.gs1.org/01/<GTIN>/10/<lot>)")
    text = value.strip()
    if text.startswith(f"{OCOP_NS}lot:") and len(text) > len(f"{OCOP_NS}lot:"):
        return None, unquote(text[len(f"{OCOP_NS}lot:"):])
    dl = to_digital_link(text) if text.startswith("urn:epc:class:") else None
    pairs = _parse_digital_link(dl or text)
    if pairs and pairs[0][0] == "01":
        quals = dict(pairs[1:])
        if "10" in quals:
            return pairs[0][1].zfill(14), unquote(quals["10"])
    raise Invalid(field, f"{text!r} is not a lot-level EPC class (expected urn:epc:class:lgtin:<prefix>.<item>.<lot> "
                         "or https://id.gs1.org/01/<GTIN>/10/<lot>)")


def parse_quantity(q: dict, path: str) -> dict:
    """An EPCIS quantity element's quantity + uom as our Quantity ``{"value", "unit"}``."""
    value = q.get("quantity")
    if value is None:
        raise Invalid(f"{path}.quantity", "is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(f"{path}.quantity", f"must be a number, got {type(value).__name__}")
    uom = q.get("uom")
    if uom is None:
        return {"value": float(value), "unit": "unit"}
    if uom in UNIT_OF_UOM:
        return {"value": float(value), "unit": UNIT_OF_UOM[uom]}
    if uom in _UOM_CONVERSIONS:
        unit, factor = _UOM_CONVERSIONS[uom]
        return {"value": float(Decimal(str(value)) * factor), "unit": unit}
    accepted = ", ".join([u for _, u in UNITS] + list(_UOM_CONVERSIONS))
    raise Invalid(f"{path}.uom", f"unknown unit {uom!r} (use {accepted})")


def place_id(value: Any) -> str | None:
    """Our facility / place id for an EPCIS readPoint, bizLocation, source or destination: a GLN (``-<extension>``
    when the SGLN has one) for ``urn:epc:id:sgln:`` and Digital Link AI 414, the id itself for ``urn:ocop-trace:``
    place URNs, anything else as given."""
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for prefix in (f"{OCOP_NS}facility:", f"{OCOP_NS}area:"):
        if text.startswith(prefix):
            return text[len(prefix):]
    dl = to_digital_link(text)
    pairs = _parse_digital_link(dl) if dl else None
    if pairs and pairs[0][0] in ("414", "417"):
        quals = dict(pairs[1:])
        return pairs[0][1] + (f"-{unquote(quals['254'])}" if "254" in quals else "")
    return text


def _is_area(location: Any) -> bool:
    """A growing area given as a place (a harvest's bizLocation ``urn:ocop-trace:epcis:area:<code>``)."""
    ident = location.get("id") if isinstance(location, dict) else location
    return isinstance(ident, str) and ident.strip().startswith(f"{OCOP_NS}area:")


def _local(key: str) -> str:
    return re.split(r"[:/#]", key)[-1]


def _facts(obj: Any) -> dict[str, Any]:
    """ILMD / extension members by local name (``ocop:crop``, ``cbvmda:itemExpirationDate``, a full IRI...)."""
    if not isinstance(obj, dict):
        return {}
    return {_local(k): v for k, v in obj.items() if not k.startswith("@")}


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, dict):
        v = v.get("#text", v.get("@value"))
    return None if v is None else _scalar_text(v).strip()


def _occurred_at(ev: dict) -> str:
    """``eventTime`` at ``eventTimeZoneOffset`` as ISO 8601 (kept as written when it already has that offset)."""
    raw = ev.get("eventTime")
    if not isinstance(raw, str):
        raise Invalid("eventTime", "is required")
    try:
        dt = datetime.fromisoformat(raw.strip().replace("z", "Z"))
    except ValueError:
        raise Invalid("eventTime", f"not an ISO 8601 date-time: {raw!r}") from None
    if dt.tzinfo is None:
        raise Invalid("eventTime", "needs a time-zone offset or Z")
    off = ev.get("eventTimeZoneOffset")
    if off is not None:
        if not isinstance(off, str) or not re.fullmatch(r"[+-]\d{2}:\d{2}", off.strip()):
            raise Invalid("eventTimeZoneOffset", f"must look like +07:00, got {off!r}")
        if dt.utcoffset() != _offset(off.strip()).utcoffset(None):
            return dt.astimezone(_offset(off.strip())).isoformat(timespec="milliseconds")
    return raw.strip().replace("z", "Z")


def _one(items: list, name: str, what: str = "one lot (an LGTIN quantity element)") -> tuple[dict, str]:
    elements = [x for x in _as_list(items) if isinstance(x, dict)]
    if not elements:
        raise Invalid(name, f"needs {what}")
    if len(elements) > 1:
        raise Invalid(name, f"has {len(elements)} elements: one OCOP event carries one lot, send one EPCIS event per lot")
    return elements[0], f"{name}[0]"


def _lot_quantity(q: dict, path: str) -> dict:
    gtin, lot = parse_epc_class(q.get("epcClass"), f"{path}.epcClass")
    return {"lot": lot, "quantity": parse_quantity(q, path)}


def _units(q: dict, path: str) -> int:
    qty = parse_quantity(q, path)
    v = qty["value"]
    if qty["unit"] != "unit" or v != int(v) or v < 1:
        raise Invalid(f"{path}.quantity", "must be a whole number of pieces ≥ 1 (uom H87 or none)")
    return int(v)


def _int(v: Any, field: str) -> int:
    try:
        f = float(_text(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise Invalid(field, f"must be a whole number, got {v!r}") from None
    if f != int(f):
        raise Invalid(field, f"must be a whole number, got {v!r}")
    return int(f)


def _first_party(lst: Any, preferred: tuple[str, ...], member: str) -> str | None:
    items = [x for x in _as_list(lst) if isinstance(x, dict) and x.get(member)]
    for kind in preferred:
        for x in items:
            if cbv_word(x.get("type"), "SDT") == kind:
                return place_id(x[member])
    return place_id(items[0][member]) if items else None


def _document_ref(ev: dict) -> str | None:
    for x in _as_list(ev.get("bizTransactionList")):
        if isinstance(x, dict) and x.get("bizTransaction"):
            return _text(x["bizTransaction"])
    return None


def event_type_of(ev: dict) -> str:
    """Which of our event types an EPCIS event maps onto (raises :class:`Invalid` if none)."""
    kind = ev.get("type") or ev.get("isA")
    if kind not in SUPPORTED_TYPES:
        raise Invalid("type", f"{kind!r} is not supported (use {', '.join(SUPPORTED_TYPES)})")
    if ev.get("errorDeclaration"):
        return "void"
    if cbv_word(ev.get("disposition"), "Disp") == "recalled":
        return "recall"
    if kind == "TransformationEvent":
        return "transform"
    raw_step = ev.get("bizStep")
    if raw_step is None:
        raise Invalid("bizStep", "is required to tell which step this is (e.g. receiving, shipping)")
    step = "harvesting" if raw_step == HARVESTING else cbv_word(raw_step, "BizStep")
    if step == "commissioning":
        facts = {**_facts(ev.get("ilmd")), **_facts({k: v for k, v in ev.items() if k not in STANDARD_FIELDS})}
        return "harvest" if ("crop" in facts or "areaCode" in facts) else "package"
    if kind == "AggregationEvent" and step not in ("packing", "repackaging"):
        raise Invalid("bizStep", f"an AggregationEvent maps onto packaging only (bizStep packing), got {raw_step!r}")
    if step in _EVENT_TYPE_OF_BIZSTEP:
        return _EVENT_TYPE_OF_BIZSTEP[step]
    known = ", ".join(sorted(set(_EVENT_TYPE_OF_BIZSTEP) - {"harvesting"} | {"commissioning", "transforming"}))
    raise Invalid("bizStep", f"{raw_step!r} has no OCOP equivalent (use one of {known}, or disposition recalled)")


def from_epcis(
    epcis_event: dict,
    *,
    context: Any = None,
    subject_id: str = "epcis",
    user: str = "",
    source: str = "epcis",
    recorded_at: str | None = None,
    tz: str = "Asia/Ho_Chi_Minh",
) -> dict:
    """Map one EPCIS 2.0 event (JSON-LD, as a dict) onto one of our events (not yet validated against the Avro
    schema: the producer does that). Raises :class:`Invalid` with the EPCIS field that cannot be mapped.

    The event id is the EPCIS ``eventID`` when it is ``urn:uuid:<uuid>``, otherwise a UUID-5 of the event hash, so
    capturing the same EPCIS event twice yields the same id."""
    if not isinstance(epcis_event, dict):
        raise Invalid("", "an EPCIS event must be a JSON object")
    ev = epcis_event
    event_type = event_type_of(ev)
    ilmd = _facts(ev.get("ilmd"))
    ext = _facts({k: v for k, v in ev.items() if k not in STANDARD_FIELDS})
    facts = {**ilmd, **ext}
    key = dedup_key(ev, context)
    eid = _uuid_of(_text(ext.get("eventId"))) or _uuid_of(ev.get("eventID"))
    facility = place_id(ev.get("readPoint")) or (None if _is_area(ev.get("bizLocation"))
                                                  else place_id(ev.get("bizLocation")))
    occurred_at = _occurred_at(ev)
    user = user or _text(ext.get("user")) or ""

    def fact(name: str) -> str | None:
        return _text(facts.get(name))

    quantity_list = "childQuantityList" if ev.get("type", ev.get("isA")) == "AggregationEvent" else "quantityList"
    payload: dict[str, Any]
    if event_type == "void":
        err = ev["errorDeclaration"] if isinstance(ev["errorDeclaration"], dict) else {}
        declared = _facts(err)
        if not eid:
            raise Invalid("eventID", "a correction (errorDeclaration) must name the corrected event as urn:uuid:<id> "
                                     "(eventID or ocop:eventId)")
        lot = _any_lot(ev)
        # the project's own reason text (ocop:reason inside the declaration, as to_epcis writes it), else the CBV one
        reason = next((_text(v) for k, v in err.items() if k != "reason" and _local(k) == "reason"), None)
        if not reason:
            word = cbv_word(err.get("reason"), "ER") or _text(err.get("reason")) or VOID_REASON
            note = fact("reason")
            reason = f"{word}: {note}" if note else word
        payload = {"lot": lot, "voided_event_id": eid, "reason": reason}
        if err.get("declarationTime"):
            occurred_at = _occurred_at({"eventTime": err["declarationTime"],
                                        "eventTimeZoneOffset": ev.get("eventTimeZoneOffset")})
        eid = _uuid_of(_text(declared.get("voidEventId")))  # the void is a new event; the corrected keeps its id
        key += "#void"
    elif event_type == "recall":
        lot = None
        if any(ev.get(k) for k in _QUANTITY_LISTS):
            lot = _any_lot(ev)
        area = fact("areaCode")
        if not lot and not area:
            raise Invalid("quantityList", "a recall needs the recalled lot (LGTIN) or ocop:areaCode")
        payload = {"scope": "lot" if lot else "area", "target": lot or area,
                   "reason": fact("reason") or "recalled (EPCIS disposition recalled)",
                   "authority": fact("authority") or ""}
    elif event_type == "transform":
        inputs = [_lot_quantity(q, f"inputQuantityList[{i}]")
                  for i, q in enumerate(_as_list(ev.get("inputQuantityList"))) if isinstance(q, dict)]
        outputs = [_lot_quantity(q, f"outputQuantityList[{i}]")
                   for i, q in enumerate(_as_list(ev.get("outputQuantityList"))) if isinstance(q, dict)]
        if not inputs:
            raise Invalid("inputQuantityList", "needs at least 1 input lot (LGTIN quantity element)")
        if not outputs:
            raise Invalid("outputQuantityList", "needs at least 1 output lot (LGTIN quantity element)")
        step = cbv_word(ev.get("bizStep"), "BizStep")
        if step is None and isinstance(ev.get("bizStep"), str):
            step = re.split(r"[/:#]", ev["bizStep"].rstrip("/"))[-1]
        process = fact("process") or (step if step not in (None, "transforming", "commissioning") else "transforming")
        duration = fact("durationHours")
        payload = {"process": process, "inputs": inputs, "outputs": outputs,
                   "duration_hours": float(duration) if duration not in (None, "") else None}
    else:
        q, path = _one(ev.get(quantity_list), quantity_list)
        gtin, lot = parse_epc_class(q.get("epcClass"), f"{path}.epcClass")
        if event_type == "harvest":
            area = fact("areaCode") or place_id(ev.get("bizLocation"))
            if not area:
                raise Invalid("ilmd.areaCode", "a harvest needs the growing-area code (ILMD ocop:areaCode)")
            crop = fact("crop")
            if not crop:
                raise Invalid("ilmd.crop", "a harvest needs the crop (ILMD ocop:crop)")
            tags = facts.get("crateTags")
            payload = {"lot": lot, "area_code": area, "crop": crop, "quantity": parse_quantity(q, path),
                       "crate_tags": [_text(t) for t in _as_list(tags)] if tags is not None else []}
        elif event_type == "receive":
            payload = {"lot": lot, "quantity": parse_quantity(q, path),
                       "from_facility": fact("fromFacility") or _first_party(
                           ev.get("sourceList"), ("location", "possessing_party", "owning_party"), "source"),
                       "document_ref": fact("documentRef") or _document_ref(ev)}
        elif event_type == "inspect":
            disp = cbv_word(ev.get("disposition"), "Disp")
            result = (fact("result") or "").lower() or INSPECTION_RESULT.get(disp or "")
            if result not in ("pass", "fail"):
                raise Invalid("disposition", "an inspection needs disposition conformant or non_conformant "
                                             "(or ocop:result pass|fail)")
            lab = fact("lab") or place_id(ev.get("bizLocation")) or place_id(ev.get("readPoint"))
            if not lab:
                raise Invalid("bizLocation", "an inspection needs the lab (bizLocation, readPoint or ocop:lab)")
            payload = {"lot": lot, "lab": lab, "result": result, "parameters": _parameters(facts.get("parameters")),
                       "certificate_no": fact("certificateNo") or _text(ev.get("certificationInfo"))}
        elif event_type == "package":
            if gtin is None:
                raise Invalid(f"{path}.epcClass", "packaging needs the product's GTIN: an LGTIN EPC class")
            qty = parse_quantity(q, path)
            if qty["unit"] == "unit":
                units, bulk = _units(q, path), _bulk(facts.get("bulkQuantity"))
            else:
                if fact("units") is None:
                    raise Invalid(f"{path}.uom", "packaging counts units: give the quantity in pieces (uom H87) "
                                                 "or the count as ocop:units")
                units, bulk = _int(fact("units"), "ocop:units"), qty
            expiry = fact("itemExpirationDate") or fact("bestBeforeDate") or fact("sellByDate")
            payload = {"lot": lot, "gtin": gtin, "units": units, "quantity": bulk,
                       "production_date": (fact("productionDate") or occurred_at[:10])[:10],
                       "expiry_date": expiry[:10] if expiry else None,
                       "stamps_requested": _int(fact("stampsRequested"), "ocop:stampsRequested")
                       if fact("stampsRequested") is not None else 0}
        elif event_type == "ship":
            to = fact("toFacility") or _first_party(ev.get("destinationList"),
                                                    ("location", "possessing_party", "owning_party"), "destination")
            if not to:
                raise Invalid("destinationList", "a shipment needs its destination (destinationList, type location)")
            payload = {"lot": lot, "units": _units(q, path), "to_facility": to, "carrier": fact("carrier"),
                       "document_ref": fact("documentRef") or _document_ref(ev)}
        elif event_type == "sell":
            pos = fact("pointOfSale") or place_id(ev.get("bizLocation")) or place_id(ev.get("readPoint"))
            if not pos:
                raise Invalid("bizLocation", "a sale needs the point of sale (bizLocation)")
            payload = {"lot": lot, "units": _units(q, path), "point_of_sale": pos}
        else:  # pragma: no cover - event_type_of only returns the types above
            raise Invalid("type", f"cannot map {event_type}")

    return new_event(
        event_type, payload, subject_id=subject_id, user=user, facility=facility, source=source,
        occurred_at=occurred_at, recorded_at=recorded_at,
        event_id=eid or str(uuid.uuid5(EVENT_ID_NAMESPACE, key)), tz=tz,
    )


def _parameters(value: Any) -> list[dict]:
    """Inspection parameters written as ``ocop:parameters`` (a list of ``{ocop:name, ocop:value, ocop:limit,
    ocop:passed}``)."""
    out = []
    for x in _as_list(value):
        f = _facts(x)
        if not f:
            continue
        passed = f.get("passed")
        if isinstance(passed, str):
            passed = passed.strip().lower() in ("true", "1", "yes", "pass")
        out.append({"name": _text(f.get("name")) or "", "value": _text(f.get("value")) or "",
                    "limit": _text(f.get("limit")), "passed": bool(passed)})
    return out


def _bulk(value: Any) -> dict | None:
    """The bulk quantity a packaging consumed, written as ILMD ``ocop:bulkQuantity {ocop:value, ocop:uom}``."""
    f = _facts(value)
    if not f:
        return None
    return parse_quantity({"quantity": f.get("value"), "uom": _text(f.get("uom"))}, "ilmd.bulkQuantity")


def _uuid_of(event_id: Any) -> str | None:
    if isinstance(event_id, str) and event_id.lower().startswith("urn:uuid:"):
        try:
            return str(uuid.UUID(event_id[9:]))
        except ValueError:
            return None
    return None


def _any_lot(ev: dict) -> str:
    for name in _QUANTITY_LISTS:
        for i, q in enumerate(_as_list(ev.get(name))):
            if isinstance(q, dict):
                return parse_epc_class(q.get("epcClass"), f"{name}[{i}].epcClass")[1]
    raise Invalid("quantityList", "needs the lot (an LGTIN quantity element)")


# ================================================================================================================
# OCOP → EPCIS (export): to_epcis — written for the auditor's export (consumers/audit/export.py); uses the mapping
# rows above in the other direction. Everything below is the export's; the import above does not depend on it.
# ================================================================================================================

EPCIS_CONTEXT_URL = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
EXPORT_CONTEXT: list = [EPCIS_CONTEXT_URL, OCOP_CONTEXT]
"""The ``@context`` of an exported document: the standard EPCIS context plus the ``ocop`` and ``cbvmda`` prefixes."""
EXPORT_STEPS = {
    # CBV 2.0 has no "transforming" bizStep: a TransformationEvent that makes new lots is commissioning (as GS1's
    # own TransformationEvent examples); everything else follows STEPS.
    "transform": Step("transform", "TransformationEvent", "commissioning", None, "active"),
}
FSMA_CTE = {"harvest": "harvesting", "receive": "receiving", "transform": "transformation", "inspect": "inspection",
            "package": "initial_packing", "ship": "shipping", "sell": "retail_sale", "recall": "recall",
            "void": "correction"}
"""Our event types as FSMA-204-style Critical Tracking Event names (harvesting, receiving, transformation,
initial packing, shipping are FSMA's; the others are this project's additional tracking events)."""


def lot_class(lot: str, gtin: str | None) -> str:
    """A lot as an EPC class: GS1 Digital Link ``https://id.gs1.org/01/<GTIN>/10/<lot>`` when its product's GTIN is
    known, else a class URI of the project's namespace (``urn:ocop-trace:epcis:lot:<lot>``)."""
    from urllib.parse import quote

    return epc_class(gtin, lot) if gtin else f"{OCOP_NS}lot:{quote(lot, safe='')}"


def place_uri(place: str | None) -> str | None:
    """A facility id as an EPCIS location: a GLN (13 digits, optionally ``-<extension>``) as Digital Link AI 414
    (+ 254), any other id as ``urn:ocop-trace:epcis:facility:<id>`` (what :func:`place_id` reads back)."""
    from urllib.parse import quote

    if not place:
        return None
    m = re.fullmatch(r"(\d{13})(?:-(.+))?", place)
    if m and gs1_check_digit(m.group(1)[:-1]) == m.group(1)[-1]:
        return f"{DIGITAL_LINK_BASE}/414/{m.group(1)}" + (f"/254/{quote(m.group(2), safe='')}" if m.group(2) else "")
    return f"{OCOP_NS}facility:{quote(place, safe='')}"


def area_uri(area_code: str) -> str:
    from urllib.parse import quote

    return f"{OCOP_NS}area:{quote(area_code, safe='')}"


def time_zone_offset(at: str) -> str:
    """``+07:00`` of an ISO 8601 date-time with offset (``+00:00`` for UTC)."""
    off = datetime.fromisoformat(at).utcoffset() or timedelta(0)
    sign = "-" if off < timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _qe(lot: str, gtin: str | None, quantity: dict | None = None, units: int | None = None) -> dict:
    q: dict[str, Any] = {"epcClass": lot_class(lot, gtin)}
    if quantity is not None:
        q["quantity"] = quantity["value"]
        q["uom"] = UOM_OF_UNIT[quantity["unit"]]
    elif units is not None:
        q["quantity"] = units
        q["uom"] = UOM_OF_UNIT["unit"]
    return q


def _doc_transaction(ref: str | None, kind: str) -> list[dict]:
    from urllib.parse import quote

    if not ref:
        return []
    return [{"type": kind, "bizTransaction": f"{OCOP_NS}doc:{quote(ref, safe='')}"}]


def to_epcis(ev: dict, *, gtin_of: Any = None, quantity_of: Any = None, corrects: dict | None = None,
             context: Any = None) -> dict:
    """One of our events as one EPCIS 2.0 event (JSON-LD dict), its ``eventID`` the canonical event hash
    (``ni:///sha-256;…?ver=CBV2.0``, :func:`epcis_event_hash` under ``context``, default :data:`EXPORT_CONTEXT`).

    ``gtin_of`` maps a lot to its product's GTIN (a dict or a callable; unknown → project class URI);
    ``quantity_of`` a lot to its quantity (``{"value", "unit"}``), written for events that concern a whole lot
    without a quantity of their own (inspect, recall; 0 pieces when unknown). A ``void``
    needs ``corrects``, the event it voids: it is exported as that event again with an ``errorDeclaration``
    (reason ``incorrect_data``), so it carries the same eventID — how EPCIS 2.0 declares an error."""
    context = EXPORT_CONTEXT if context is None else context
    lookup = gtin_of if callable(gtin_of) else (lambda lot, m=(gtin_of or {}): m.get(lot))
    qlookup = quantity_of if callable(quantity_of) else (lambda lot, m=(quantity_of or {}): m.get(lot))
    t, p = ev["event_type"], ev["payload"]
    if t == "void":
        return _void(ev, lookup, qlookup, corrects, context)
    step = EXPORT_STEPS.get(t) or STEP_OF_TYPE[t]
    out: dict[str, Any] = {"type": step.epcis_type, "eventTime": ev["occurred_at"],
                           "eventTimeZoneOffset": time_zone_offset(ev["occurred_at"]),
                           "recordTime": ev["recorded_at"]}
    if step.action:
        out["action"] = step.action
    out["bizStep"] = step.biz_step
    out["disposition"] = step.disposition
    ilmd: dict[str, Any] = {}
    ext: dict[str, Any] = {"ocop:eventId": f"urn:uuid:{ev['event_id']}",
                           "ocop:subjectId": ev["actor"]["subject_id"]}
    if ev["actor"].get("user"):
        ext["ocop:user"] = ev["actor"]["user"]
    if t == "transform":
        out["inputQuantityList"] = [_qe(x["lot"], lookup(x["lot"]), x["quantity"]) for x in p["inputs"]]
        out["outputQuantityList"] = [_qe(x["lot"], lookup(x["lot"]), x["quantity"]) for x in p["outputs"]]
        ilmd["ocop:process"] = p["process"]
        if p.get("duration_hours") is not None:
            ilmd["ocop:durationHours"] = p["duration_hours"]
    elif t == "recall":
        if p["scope"] == "lot":
            q = qlookup(p["target"])
            out["quantityList"] = [_qe(p["target"], lookup(p["target"]), q, units=None if q else 0)]
        else:
            out["epcList"] = []
            ext["ocop:areaCode"] = p["target"]
        ext["ocop:reason"] = p["reason"]
        if p.get("authority"):
            ext["ocop:authority"] = p["authority"]
    else:
        lot = p["lot"]
        gtin = p["gtin"] if t == "package" else lookup(lot)
        if t in ("harvest", "receive"):
            out["quantityList"] = [_qe(lot, gtin, p["quantity"])]
        elif t in ("package", "ship", "sell"):
            out["quantityList"] = [_qe(lot, gtin, units=p["units"])]
        else:  # an inspection concerns the whole lot: its quantity when known (the schema wants one)
            out["quantityList"] = [_qe(lot, gtin, qlookup(lot), units=None if qlookup(lot) else 0)]
        if t == "harvest":
            ilmd.update({"ocop:crop": p["crop"], "ocop:areaCode": p["area_code"], "cbvmda:lotNumber": lot,
                         "cbvmda:harvestStartDate": ev["occurred_at"][:10], "cbvmda:countryOfOrigin": "VN"})
            if p.get("crate_tags"):
                ilmd["ocop:crateTags"] = list(p["crate_tags"])
            out["bizLocation"] = {"id": area_uri(p["area_code"])}
        elif t == "receive":
            if p.get("from_facility"):
                out["sourceList"] = [{"type": "location", "source": place_uri(p["from_facility"])}]
                ext["ocop:fromFacility"] = p["from_facility"]
            out["bizTransactionList"] = _doc_transaction(p.get("document_ref"), "desadv")
            if p.get("document_ref"):
                ext["ocop:documentRef"] = p["document_ref"]
        elif t == "inspect":
            out["disposition"] = INSPECTION_DISPOSITION[p["result"]]
            ext.update({"ocop:lab": p["lab"], "ocop:result": p["result"]})
            if p.get("certificate_no"):
                ext["ocop:certificateNo"] = p["certificate_no"]
            if p.get("parameters"):
                ext["ocop:parameters"] = [{"ocop:name": x["name"], "ocop:value": x["value"],
                                           **({"ocop:limit": x["limit"]} if x.get("limit") else {}),
                                           "ocop:passed": x["passed"]} for x in p["parameters"]]
        elif t == "package":
            ilmd.update({"cbvmda:lotNumber": lot, "ocop:productionDate": p["production_date"],
                         "ocop:units": p["units"]})
            if p.get("expiry_date"):
                ilmd["cbvmda:itemExpirationDate"] = p["expiry_date"]
            if p.get("quantity"):
                ilmd["ocop:bulkQuantity"] = {"ocop:value": p["quantity"]["value"],
                                             "ocop:uom": UOM_OF_UNIT[p["quantity"]["unit"]]}
            if p.get("stamps_requested"):
                ilmd["ocop:stampsRequested"] = p["stamps_requested"]
        elif t == "ship":
            out["destinationList"] = [{"type": "location", "destination": place_uri(p["to_facility"])}]
            ext["ocop:toFacility"] = p["to_facility"]
            if p.get("carrier"):
                ext["ocop:carrier"] = p["carrier"]
            out["bizTransactionList"] = _doc_transaction(p.get("document_ref"), "bol")
            if p.get("document_ref"):
                ext["ocop:documentRef"] = p["document_ref"]
        elif t == "sell":
            out["bizLocation"] = {"id": place_uri(p["point_of_sale"])}
            ext["ocop:pointOfSale"] = p["point_of_sale"]
    if ev.get("facility"):
        out["readPoint"] = {"id": place_uri(ev["facility"])}
        out.setdefault("bizLocation", {"id": place_uri(ev["facility"])})
    if not out.get("bizTransactionList"):
        out.pop("bizTransactionList", None)
    if ilmd:
        out["ilmd"] = ilmd
    out.update(ext)
    out = {"eventID": "", **out}
    out["eventID"] = epcis_event_hash(out, context)
    return out


def _void(ev: dict, lookup: Any, qlookup: Any, corrects: dict | None, context: Any) -> dict:
    p = ev["payload"]
    declaration = {"declarationTime": ev["occurred_at"], "reason": VOID_REASON,
                   "ocop:reason": p["reason"], "ocop:voidEventId": f"urn:uuid:{ev['event_id']}"}
    if corrects is not None:
        out = to_epcis(corrects, gtin_of=lookup, quantity_of=qlookup, context=context)
    else:  # the voided event is not in the export: declare the error on the bare lot
        q = qlookup(p["lot"])
        out = {"eventID": f"urn:uuid:{p['voided_event_id']}", "type": "ObjectEvent",
               "eventTime": ev["occurred_at"], "eventTimeZoneOffset": time_zone_offset(ev["occurred_at"]),
               "action": "OBSERVE", "quantityList": [_qe(p["lot"], lookup(p["lot"]), q, units=None if q else 0)]}
    out["errorDeclaration"] = declaration
    return out
