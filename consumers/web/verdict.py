"""The scan verdict: what a shopper is told about a stamp. A pure function of facts the caller looked up.

    verdict(link, verification, lot_view, range_ok, flagged, today) -> Verdict(code, reasons, ...)

Inputs (nothing here touches the database, the broker or the clock):

* ``link``: the parsed :class:`qr.digital_link.DigitalLink` (GTIN-14, lot, serial, ``?17=`` expiry);
* ``verification``: :meth:`qr.serials.StampSigner.verify` of the serial against the link's GTIN and lot, or
  :func:`unverifiable` when the lot could not be resolved (``/01/{gtin}/21/{serial}`` with no issued range to try),
  or ``None`` when the link has no serial (a lot page: no stamp verdict);
* ``lot_view``: the lot as the read side knows it (``Store.lot()``: ``gtin``, ``status``, ``expiry_date``,
  ``recall_*``, ``record``; the web layer adds ``ancestor_recalls``: recalled ancestor lots from the lineage), or
  ``None`` if the lot is unknown;
* ``range_ok``: the serial's index lies in a stamp range issued for (GTIN, lot);
* ``flagged``: the scans agent raised an open ``suspicious_copy`` alert for the serial;
* ``today``: the local date (Asia/Ho_Chi_Minh) the scan happens on.

Codes and precedence — the first that applies wins::

    forged > unknown > recalled > suspicious > expired > genuine

* **forged** first: the tag does not verify (bad MAC, unknown key, not a serial at all), so nobody issued this
  code; every other fact on the page would be a claim copied from the counterfeiter's URL. Nothing else may
  soften that message.
* **unknown** next: well-formed but never issued (tag fine but no issued range, the lot unknown to the read side,
  or the lot could not be resolved). We cannot tie the package to a lot, so we must not show that lot's story as
  this package's — not even its recall (which would imply the package *is* from that lot).
* **recalled** before suspicious: a recall is a safety instruction (stop using it) that holds whether or not the
  stamp was also copied — a copy of a recalled lot's stamp is at best from the recalled lot, at worst fake; the
  advice is the same and the recall gives the shopper a reason and whom to contact.
* **suspicious** before expired: a copied stamp means the package may be counterfeit, which says more about what is
  in the hand than its date (a clone's date is the genuine lot's, not the package's).
* **expired** before genuine: the stamp is genuine but the product is past its expiry date (the lot's recorded
  expiry, else the ``?17=`` printed on the stamp; the date itself is still fine).
* **genuine**: valid tag, known lot, index within an issued range, nothing else wrong.

A link without a serial gets a lot-level code instead of a stamp verdict: ``unknown`` (lot unknown), ``recalled``,
``expired``, or ``info`` (facts about the lot, no claim about a package).

``reasons`` are stable machine codes (the page and the JSON explain them); several can apply at once (a recalled
lot whose serial is also flagged has ``recalled`` and ``suspicious_copy``), the code is the one that wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Mapping

from qr.serials import Verification

__all__ = [
    "CODES",
    "LOT_CODES",
    "PRECEDENCE",
    "STAMP_CODES",
    "Verdict",
    "expiry_of",
    "unverifiable",
    "verdict",
]

#: Stamp verdicts, strongest first (also the ``ocop.scan.Verdict`` enum).
PRECEDENCE: tuple[str, ...] = ("forged", "unknown", "recalled", "suspicious", "expired", "genuine")
STAMP_CODES = frozenset(PRECEDENCE)
#: Codes of a link without a serial (no stamp verdict).
LOT_CODES = frozenset({"unknown", "recalled", "expired", "info"})
CODES: tuple[str, ...] = (*PRECEDENCE, "info")

#: Verification reasons that mean "nobody issued this tag".
FORGED_REASONS = frozenset({"bad_tag", "unknown_key", "malformed"})
#: The serial could not be checked: no lot to check it against.
UNVERIFIABLE = "unverifiable"


@dataclass(frozen=True)
class Verdict:
    """``code``: one of :data:`CODES`; ``reasons``: machine codes of every finding, in precedence order.

    ``recall``: the originating recall (reason, authority, when, scope, target; ``via`` the recalled ancestor lot
    when it came through the lineage); ``expiry``: the expiry date the verdict used; ``detail``: extra facts for
    the explanation (e.g. the index that is outside every issued range)."""

    code: str
    reasons: tuple[str, ...] = ()
    recall: Mapping[str, Any] | None = None
    expiry: date | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_stamp_verdict(self) -> bool:
        return self.code in STAMP_CODES

    def as_dict(self) -> dict:
        return {"code": self.code, "reasons": list(self.reasons), "recall": dict(self.recall) if self.recall else None,
                "expiry": self.expiry.isoformat() if self.expiry else None, "detail": dict(self.detail)}


def unverifiable(index: int | None = None, key_id: str | None = None) -> Verification:
    """The verification of a serial that could not be checked because no lot could be resolved for it."""
    return Verification(False, index, key_id, UNVERIFIABLE)


def _parse_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def expiry_of(link: Any, lot_view: Mapping[str, Any] | None) -> tuple[date | None, bool]:
    """(the expiry date to judge by, whether the stamp's ``?17=`` disagrees with the lot's record).

    The record (the packaging event) is the authority; the ``?17=`` query is not covered by the stamp's MAC, so it
    only counts when the lot has no recorded expiry."""
    recorded = _parse_date((lot_view or {}).get("expiry_date"))
    printed = getattr(link, "expiry", None)
    if recorded is not None:
        return recorded, printed is not None and printed != recorded
    return printed, False


def _recall_of(lot_view: Mapping[str, Any]) -> dict | None:
    record = lot_view.get("record") or {}
    rec = record.get("recall") if isinstance(record, Mapping) else None
    if rec:
        return dict(rec)
    if lot_view.get("status") == "recalled" or lot_view.get("recall_reason"):
        return {"event_id": lot_view.get("recall_event_id"), "scope": lot_view.get("recall_scope") or "lot",
                "target": lot_view.get("recall_target") or lot_view.get("lot"),
                "reason": lot_view.get("recall_reason") or "", "authority": "", "occurred_at": None}
    for anc in lot_view.get("ancestor_recalls") or ():
        # the lineage says an ancestor is recalled although this lot's record does not show it (yet)
        return {"event_id": anc.get("recall_event_id"), "scope": "lot", "target": anc.get("lot"),
                "reason": anc.get("recall_reason") or "", "authority": "", "occurred_at": None, "via": anc.get("lot")}
    return None


def verdict(link: Any, verification: Verification | None, lot_view: Mapping[str, Any] | None, range_ok: bool,
            flagged: bool, today: date) -> Verdict:
    """The verdict for one scan (see the module docstring for codes, reasons and precedence)."""
    reasons: list[str] = []
    detail: dict[str, Any] = {}
    has_serial = getattr(link, "serial", None) is not None

    # --- the stamp itself ---------------------------------------------------------------------------------------
    forged = unknown = False
    if has_serial:
        if verification is None or verification.reason == UNVERIFIABLE:
            unknown = True
            reasons.append("lot_unresolved")
        elif not verification.ok:
            forged = True
            reasons.append({"bad_tag": "bad_tag", "unknown_key": "unknown_key"}.get(verification.reason, "malformed"))
        else:
            reasons.append("tag_ok")
        if verification is not None and verification.index is not None:
            detail["index"] = verification.index
        if verification is not None and verification.key_id is not None:
            detail["key_id"] = verification.key_id

    # --- the lot ------------------------------------------------------------------------------------------------
    recall = None
    expiry = None
    if lot_view is None:
        if not (has_serial and verification is not None and verification.reason == UNVERIFIABLE):
            reasons.append("lot_unknown")
        unknown = True
    else:
        lot_gtin = lot_view.get("gtin")
        if lot_gtin and getattr(link, "gtin14", None) and lot_gtin.lstrip("0") != link.gtin14.lstrip("0"):
            reasons.append("gtin_mismatch")
            unknown = True
        if has_serial and verification is not None and verification.ok and not range_ok:
            reasons.append("not_issued")
            unknown = True
        recall = _recall_of(lot_view)
        if recall is not None:
            reasons.append("recalled")
        expiry, mismatch = expiry_of(link, lot_view)
        if mismatch:
            reasons.append("expiry_mismatch")
            detail["printed_expiry"] = link.expiry.isoformat()
        if (expiry is not None and today > expiry) or lot_view.get("status") == "expired":
            reasons.append("expired")
    if has_serial and flagged:
        reasons.append("suspicious_copy")

    # --- precedence ---------------------------------------------------------------------------------------------
    if has_serial and forged:
        code = "forged"
    elif unknown:
        code = "unknown"
    elif recall is not None:
        code = "recalled"
    elif has_serial and flagged:
        code = "suspicious"
    elif "expired" in reasons:
        code = "expired"
    elif has_serial:
        code = "genuine"
    else:
        code = "info"
    if code in ("forged", "unknown"):
        recall = None  # never tie an unissued code to a lot's recall (see the module docstring)
    return Verdict(code, tuple(reasons), recall, expiry, detail)
