"""The scanner station: one scanned code per line in, one event (or one clear rejection) per line out.

A keyboard-wedge scanner types the code and Enter. A line is the code, optionally followed by what the step needs
(``TC-2026-001 12,5 kg``, ``TC-2026-001 24``, ``TC-2026-001 to=QV-DINHHOA``, ``TC-2026-001 fail``). What is still
missing comes from the station's defaults (flags), else from a prompt when a person is at the terminal (``ask``),
else the line is rejected with a message naming what is missing — the station never hangs in a pipe.

Codes understood (:func:`read_code`):

* a lot code (GS1 AI 10 characters), e.g. ``TC-2026-001``;
* a crate tag ``<lot>#<crate>`` (``TC-2026-001#07``), or ``CRATE:<tag>`` / ``TAG:<tag>`` whose lot comes from
  ``lot=``, ``--lot`` or a prompt;
* a GS1 Digital Link URI (``https://.../01/<GTIN>/10/<lot>/21/<serial>?17=YYMMDD``) or a GS1 element string
  (``(01)...(10)...``, raw with GS separators, with or without a symbology identifier), parsed by
  :func:`qr.digital_link.parse_scan` — the lot (AI 10), GTIN (AI 01), serial (AI 21) and expiry (AI 17) are used;
  a scanned stamp (with a serial) counts as one unit when shipping or selling;
* ``@/path/to/photo.jpg``: a phone photo decoded with :mod:`qr.decode` (when that module is installed).

The station is plain Python with injected I/O (``send``, ``ask``, ``say``), so it is tested without a terminal.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Iterable, Optional

from producers import intake
from producers.i18n import reason as tr_reason
from producers.i18n import t
from schemas.validation import Invalid

STEPS = ("harvest", "receive", "inspect", "package", "ship", "sell")

# what each step needs beyond the lot, in prompt order
NEEDS = {
    "harvest": ("area", "crop", "qty"),
    "receive": ("qty",),
    "inspect": ("lab", "result"),
    "package": ("gtin", "units"),
    "ship": ("units", "to"),
    "sell": ("units", "pos"),
}
# the flag that supplies a missing value (for messages) and an example of an inline value
FLAGS = {"qty": "--qty/--unit", "units": "--units", "to": "--to", "pos": "--pos", "area": "--area", "crop": "--crop",
         "lab": "--lab", "result": "--result", "gtin": "--gtin", "lot": "--lot"}
EXAMPLES = {"qty": "{code} 12.5 kg", "units": "{code} 24", "to": "{code} to=QV-DINHHOA", "pos": "{code} pos=QV-DINHHOA",
            "area": "{code} area=VN-TN-TC-001", "crop": "{code} crop=chè", "lab": "{code} lab=QUATEST-1",
            "result": "{code} pass", "gtin": "{code} gtin=08936012345674", "lot": "{code} lot=TC-2026-001"}
# event fields -> the station's words (inline key / flag), for error messages
FIELDS = {"payload.quantity": "qty (--qty/--unit)", "payload.units": "units (--units)", "payload.lot": "lot",
          "payload.to_facility": "to (--to)", "payload.point_of_sale": "pos (--pos)", "payload.area_code": "area (--area)",
          "payload.crop": "crop (--crop)", "payload.lab": "lab (--lab)", "payload.result": "result (--result)",
          "payload.gtin": "gtin (--gtin)", "payload.expiry_date": "expiry (--expiry-date)",
          "payload.production_date": "production (--production-date)", "payload.stamps_requested": "stamps (--stamps)",
          "actor.subject_id": "--subject", "facility": "--facility"}
INLINE_KEYS = {"qty", "unit", "units", "to", "pos", "area", "crop", "lab", "result", "gtin", "lot", "expiry",
               "expiry_date", "production", "production_date", "stamps", "from", "doc"}
_KEY_ALIASES = {"expiry": "expiry_date", "production": "production_date", "from": "from_facility",
                "hsd": "expiry_date", "nsx": "production_date", "sl": "qty"}

_GS = "\x1d"
_CRATE_PREFIX = re.compile(r"^(?:CRATE|TAG|THUNG|THÙNG)[:#](?P<tag>.+)$", re.IGNORECASE)
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)")


class CodeError(ValueError):
    """A scanned code that cannot be read; ``reason`` says why (already in the station's language)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Scanned:
    raw: str
    lot: Optional[str] = None
    gtin: Optional[str] = None
    serial: Optional[str] = None
    expiry: Optional[date] = None
    crate: Optional[str] = None
    kind: str = "lot"  # lot | crate | gs1


def _looks_gs1(s: str) -> bool:
    low = s[:8].lower()
    return (low.startswith(("http://", "https://")) or s.startswith(("(", "]", "/")) or _GS in s
            or (s.isdigit() and len(s) >= 16 and s.startswith(("01", "02"))))


def decode_photo(path: str) -> str:
    """The text of the first code in a photo, via :mod:`qr.decode` (whatever its entry point is called)."""
    try:
        mod = importlib.import_module("qr.decode")
    except ImportError:
        raise LookupError("no_decoder") from None
    fn = next((getattr(mod, n) for n in ("decode_file", "decode_path", "decode_image", "decode", "read")
               if callable(getattr(mod, n, None))), None)
    if fn is None:
        raise LookupError("no_decoder")
    result = fn(path)
    if isinstance(result, (list, tuple)):
        result = result[0] if result else None
    if result is not None and not isinstance(result, str):
        result = getattr(result, "text", None) or getattr(result, "value", None)
    if not result:
        raise LookupError("no_qr_in_photo")
    return str(result)


def read_code(text: str, lang: str = "vi", *, photo: Callable[[str], str] = decode_photo) -> Scanned:
    """What a scanned code names. Raises :class:`CodeError` with a reason in ``lang``."""
    s = text.strip()
    if s.startswith("@"):
        try:
            s = photo(s[1:].strip()).strip()
        except LookupError as e:
            raise CodeError(t(f"station.{e.args[0]}", lang)) from None
        except (OSError, ValueError) as e:
            raise CodeError(str(e)) from None
    if not s:
        raise CodeError(t("station.no_qr_in_photo", lang))
    if _looks_gs1(s):
        from qr.digital_link import DigitalLinkError, parse_scan

        try:
            dl = parse_scan(s)
        except DigitalLinkError as e:
            raise CodeError(f"{e.part}: {tr_reason(e.reason, lang)}") from None
        if not dl.lot:
            raise CodeError(t("station.gtin_only", lang))
        return Scanned(raw=s, lot=dl.lot, gtin=dl.gtin14, serial=dl.serial, expiry=dl.expiry, kind="gs1")
    m = _CRATE_PREFIX.match(s)
    if m:
        return Scanned(raw=s, crate=m["tag"], kind="crate")
    if "#" in s:
        lot, _, crate = s.partition("#")
        return Scanned(raw=s, lot=lot or None, crate=crate or None, kind="crate")
    if s.isdigit() and len(s) in (8, 12, 13, 14):
        from schemas.validation import gtin_problem

        if gtin_problem(s) is None:
            raise CodeError(t("station.gtin_only", lang))
    return Scanned(raw=s, lot=s, kind="lot")


def parse_inline(tokens: list[str], step: str, lang: str = "vi") -> dict:
    """Values typed after the code: ``12,5 kg`` / ``12.5kg`` / ``24`` / ``pass`` / ``key=value``."""
    values: dict[str, Any] = {}
    i = 0
    qty_step = "qty" in NEEDS[step]
    while i < len(tokens):
        tok = tokens[i]
        if "=" in tok:
            k, _, v = tok.partition("=")
            k = _KEY_ALIASES.get(k.lower(), k.lower())
            if k not in INLINE_KEYS and k not in _KEY_ALIASES.values():
                raise CodeError(t("station.bad_token", lang, token=tok))
            values[k] = v
        elif _NUMBER.match(tok):
            num_end = _NUMBER.match(tok).end()
            rest = tok[num_end:]
            if not rest and i + 1 < len(tokens) and "=" not in tokens[i + 1] and not _NUMBER.match(tokens[i + 1]) \
                    and tokens[i + 1].lower() in intake.UNIT_WORDS:
                rest = tokens[i + 1]
                i += 1
            if qty_step:
                values["qty"] = tok[:num_end] + (" " + rest if rest else "")
            else:
                values["units"] = tok[:num_end]  # "24", "24 hộp": a count
        elif step == "inspect" and tok.lower() in ("pass", "fail", "đạt", "ok", "failed", "passed"):
            values["result"] = tok
        elif tok.lower() in intake.UNIT_WORDS and qty_step:
            values["unit"] = tok
        else:
            raise CodeError(t("station.bad_token", lang, token=tok))
        i += 1
    return values


@dataclass
class StationConfig:
    step: str
    facility: str
    subject_id: str
    user: str = ""
    tz: str = "Asia/Ho_Chi_Minh"
    lang: str = "vi"
    defaults: dict = field(default_factory=dict)
    interactive: bool = False
    source: str = "scanner"


@dataclass
class Outcome:
    ok: bool
    message: str
    event: Optional[dict] = None


@dataclass
class Summary:
    ok: int = 0
    rejected: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def message(self, lang: str = "vi") -> str:
        return t("station.summary", lang, ok=self.ok, rejected=self.rejected)


class _Missing(Exception):
    def __init__(self, what: str):
        self.what = what


class Station:
    """``send(event)`` records an event (the producer's send); ``ask(prompt) -> str | None`` asks a person (None:
    nobody to ask); ``say(ok, message)`` reports each line. ``now`` pins the clock (tests)."""

    def __init__(self, cfg: StationConfig, *, send: Callable[[dict], Any], ask: Optional[Callable[[str], Optional[str]]] = None,
                 say: Optional[Callable[[bool, str], None]] = None, now=None,
                 photo: Callable[[str], str] = decode_photo):
        if cfg.step not in STEPS:
            raise ValueError(f"step must be one of {', '.join(STEPS)}")
        self.cfg = cfg
        self.send = send
        self.ask = ask if cfg.interactive or ask is not None else None
        self.say = say or (lambda ok, msg: None)
        self.now = now
        self.photo = photo

    # -- one line -------------------------------------------------------------------------------------------------
    def handle(self, line: str) -> Outcome:
        lang = self.cfg.lang
        tokens = [x for x in re.split(r"[ \t]+", line.strip().strip("\r\n")) if x]
        if not tokens:
            return Outcome(False, "")
        try:
            code = read_code(tokens[0], lang, photo=self.photo)
            inline = parse_inline(tokens[1:], self.cfg.step, lang)
            ev = self._build(code, inline)
        except CodeError as e:
            return Outcome(False, t("station.bad_code", lang, code=tokens[0], reason=e.reason))
        except _Missing as m:
            what = t(f"station.what.{m.what}", lang)
            return Outcome(False, t("station.missing", lang, what=what, code=tokens[0], flag=FLAGS.get(m.what, ""),
                                    example=EXAMPLES.get(m.what, "{code}").format(code=tokens[0])))
        except Invalid as e:
            return Outcome(False, intake.describe_invalid(e, FIELDS, lang))
        try:
            self.send(ev)
        except Invalid as e:  # the producer validates again; should not happen
            return Outcome(False, f"{e.field}: {e.reason}")
        except Exception as e:  # the broker: report and carry on
            return Outcome(False, t("send_failed", lang, bootstrap="", error=e))
        msg = f"{intake.confirmation(ev, lang)} ({t('event_id', lang, event_id=ev['event_id'])})"
        return Outcome(True, msg, ev)

    def run(self, lines: Iterable[str]) -> Summary:
        """Handle lines until a blank line or the end of input."""
        summary = Summary()
        for line in lines:
            if not line.strip():
                break
            out = self.handle(line)
            summary.outcomes.append(out)
            if out.ok:
                summary.ok += 1
            else:
                summary.rejected += 1
            self.say(out.ok, out.message)
        return summary

    # -- building -------------------------------------------------------------------------------------------------
    def _value(self, key: str, inline: dict, scanned: dict, prompt_kw: dict) -> Any:
        for source in (inline, scanned, self.cfg.defaults):
            v = source.get(key)
            if v not in (None, ""):
                return v
        if self.ask is not None:
            answer = self.ask(t(f"station.ask.{key}", self.cfg.lang, **prompt_kw))
            if answer is not None and answer.strip():
                return answer.strip()
        raise _Missing(key)

    def _qty(self, inline: dict, lot: str) -> tuple[Any, Optional[str]]:
        unit = inline.get("unit") or self.cfg.defaults.get("unit")
        qty = inline.get("qty") or self.cfg.defaults.get("qty")
        if qty in (None, "") and self.ask is not None:
            for _ in range(3):
                answer = self.ask(t("station.ask.qty", self.cfg.lang, lot=lot))
                if answer is None or not answer.strip():
                    break
                try:
                    parsed = intake.parse_quantity(answer, unit, "payload.quantity")
                    return parsed, None
                except Invalid as e:
                    if e.field.endswith(".unit") and "needs a unit" in e.reason:
                        u = self.ask(t("station.ask.unit", self.cfg.lang))
                        if u:
                            return answer, u
                    self.say(False, f"{tr_reason(e.reason, self.cfg.lang)}")
        if qty in (None, ""):
            raise _Missing("qty")
        if unit is None and not re.search(r"[^\d\s.,+-]", str(qty)):
            if self.ask is not None:
                u = self.ask(t("station.ask.unit", self.cfg.lang))
                if u:
                    return qty, u.strip()
            raise _Missing("qty")
        return qty, unit

    def _build(self, code: Scanned, inline: dict) -> dict:
        cfg, step = self.cfg, self.cfg.step
        lot = inline.get("lot") or code.lot
        if not lot:
            lot = self._value("lot", {}, {}, {"tag": code.crate or code.raw})
        env = intake.Envelope(subject_id=cfg.subject_id, user=cfg.user, facility=cfg.facility, source=cfg.source,
                              tz=cfg.tz, now=self.now)
        scanned = {"gtin": code.gtin}
        if code.serial and step in ("ship", "sell"):
            scanned["units"] = 1  # a stamp is one unit
        kw = {"lot": lot}
        if step == "harvest":
            area = self._value("area", inline, scanned, kw)
            crop = self._value("crop", inline, scanned, kw)
            qty, unit = self._qty(inline, lot)
            crates = [code.crate] if code.crate else []
            return intake.harvest(env, lot=lot, area=area, crop=crop, qty=qty, unit=unit, crate_tags=crates)
        if step == "receive":
            qty, unit = self._qty(inline, lot)
            return intake.receive(env, lot=lot, qty=qty, unit=unit,
                                  from_facility=inline.get("from_facility") or cfg.defaults.get("from_facility"),
                                  document_ref=inline.get("doc") or (code.raw if code.kind != "lot" else None))
        if step == "inspect":
            lab = self._value("lab", inline, {"lab": cfg.facility}, kw)
            result = self._value("result", inline, scanned, kw)
            return intake.inspect(env, lot=lot, lab=lab, result=result)
        if step == "package":
            gtin = self._value("gtin", inline, scanned, kw)
            units = self._value("units", inline, scanned, kw)
            expiry = inline.get("expiry_date") or (code.expiry.isoformat() if code.expiry else None) \
                or cfg.defaults.get("expiry_date")
            return intake.package(env, lot=lot, gtin=gtin, units=units,
                                  production_date=inline.get("production_date") or cfg.defaults.get("production_date"),
                                  expiry_date=expiry, stamps=inline.get("stamps") or cfg.defaults.get("stamps") or 0)
        if step == "ship":
            units = self._value("units", inline, scanned, kw)
            to = self._value("to", inline, scanned, kw)
            return intake.ship(env, lot=lot, units=units, to=to, document_ref=inline.get("doc"))
        # sell
        units = self._value("units", inline, scanned, kw)
        pos = self._value("pos", inline, {"pos": cfg.facility}, kw)
        return intake.sell(env, lot=lot, units=units, pos=pos)
