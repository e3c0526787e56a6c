"""``ocop-trace register ...``, ``ocop-trace intake ...`` (with the scanner ``station``) and ``ocop-trace generate``.

Each command turns the operator's options into an event with :mod:`producers.intake` (pure), validates it, sends it
with :class:`producers.client.EventProducer` and prints the event id with a one-line confirmation in Vietnamese
(``--lang en`` for English). Invalid input prints the option, the field and the reason, exits with code 2 and sends
nothing. A Kafka failure exits with code 1.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Callable, Optional

import typer

register_app = typer.Typer(no_args_is_help=True,
                           help="Register master data: subjects, growing areas, products, OCOP ratings, facilities "
                                "/ Đăng ký chủ thể, vùng trồng, sản phẩm, xếp hạng OCOP, cơ sở.")
intake_app = typer.Typer(no_args_is_help=True,
                         help="Record supply-chain events, or run a scanner station "
                              "/ Ghi nhận sự kiện chuỗi cung ứng, trạm quét mã.")

# --------------------------------------------------------------------------------------------------------------------
# options shared by every command

Subject = Annotated[Optional[str], typer.Option("--subject", "-s", help="OCOP subject recording the event (chủ thể).")]
User = Annotated[str, typer.Option("--user", "-u", help="Person or device recording it.")]
Facility = Annotated[Optional[str], typer.Option("--facility", "-f", help="Facility / read point where it happened.")]
At = Annotated[Optional[str], typer.Option("--at", help='When it happened, local time: "2026-11-20 07:30" '
                                                        '(default now).')]
Lang = Annotated[Optional[str], typer.Option("--lang", help="vi | en (default: settings).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Build and validate, print the event as JSON, send nothing.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the event id.")]
EventId = Annotated[Optional[str], typer.Option("--event-id", help="Reuse an event id (a retry is then a no-op).")]

def _settings():
    from ocop_trace.config import Settings

    return Settings()


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True, highlight=False)


def _record(build: Callable[[], dict], fields: dict[str, str], lang: Optional[str], dry_run: bool,
            quiet: bool) -> None:
    """Build (and validate) an event, send it, confirm. The one path every register/intake command takes."""
    from producers.i18n import t
    from producers.intake import confirmation, describe_invalid
    from schemas.validation import Invalid

    settings = _settings()
    lang = lang or settings.lang
    err = _console(stderr=True)
    try:
        ev = build()
    except Invalid as e:
        err.print(f"[red]✘ {_esc(describe_invalid(e, fields, lang))}[/]")
        err.print(t("nothing_sent", lang))
        raise typer.Exit(2) from None
    out = _console()
    if dry_run:
        out.print_json(json.dumps(ev, ensure_ascii=False)) if not quiet else out.print(ev["event_id"])
        if not quiet:
            err.print(f"• {_esc(confirmation(ev, lang))} {t('dry_run', lang)}")
        return
    from producers.client import EventProducer

    try:
        with EventProducer(settings, client_id="ocop-trace-cli") as producer:
            producer.send(ev)
    except Exception as e:  # broker down, timeout, ...
        err.print(f"[red]✘ {_esc(t('send_failed', lang, bootstrap=settings.bootstrap_servers, error=e))}[/]")
        raise typer.Exit(1) from None
    if quiet:
        out.print(ev["event_id"])
    else:
        out.print(f"[green]✔[/] {_esc(confirmation(ev, lang))} ({_esc(t('event_id', lang, event_id=ev['event_id']))})")


def _esc(text: Any) -> str:
    from rich.markup import escape

    return escape(str(text))


def _env(subject: Optional[str], user: str, facility: Optional[str], at: Optional[str], event_id: Optional[str],
         fallback_subject: Optional[str] = None, source: str = "cli"):
    from producers.intake import Envelope

    return Envelope(subject_id=subject or fallback_subject or facility or "", user=user, facility=facility,
                    source=source, at=at, tz=_settings().timezone, event_id=event_id)


# --------------------------------------------------------------------------------------------------------------------
# register


@register_app.command("subject")
def register_subject(
    subject_id: Annotated[str, typer.Option("--id", help="Subject id, e.g. HTX-HAODAT.")],
    name: Annotated[str, typer.Option("--name", help='Name, e.g. "Hợp tác xã Chè Hảo Đạt".')],
    kind: Annotated[str, typer.Option("--kind", help="cooperative (htx) | cooperative_group | sme | farm | household.")],
    province: Annotated[str, typer.Option("--province", help="Province code (free), e.g. VN-69.")],
    commune: Annotated[Optional[str], typer.Option("--commune", help="Commune code (free).")] = None,
    tax_id: Annotated[Optional[str], typer.Option("--tax-id")] = None,
    address: Annotated[str, typer.Option("--address")] = "",
    contact: Annotated[Optional[str], typer.Option("--contact")] = None,
    subject: Subject = None, user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Register or change an OCOP subject (chủ thể OCOP)."""
    from producers import intake

    _record(lambda: intake.subject(_env(subject, user, facility, at, event_id, subject_id), subject_id=subject_id,
                                   name=name, kind=kind, province=province, commune=commune, tax_id=tax_id,
                                   address=address, contact=contact),
            {"payload.subject_id": "--id", "payload.name": "--name", "payload.kind": "--kind",
             "payload.province_code": "--province", "payload.commune_code": "--commune", "payload.tax_id": "--tax-id",
             "payload.address": "--address", "payload.contact": "--contact"}, lang, dry_run, quiet)


@register_app.command("area")
def register_area(
    code: Annotated[str, typer.Option("--code", help="Growing-area code (mã số vùng trồng), e.g. VN-TN-TC-001.")],
    owner: Annotated[str, typer.Option("--owner", help="Owning subject id.")],
    crop: Annotated[list[str], typer.Option("--crop", help="Crop (repeat, or comma-separated).")],
    ha: Annotated[str, typer.Option("--ha", help="Area in hectares.")],
    location: Annotated[list[str], typer.Option("--location", help='"lat,lon" (repeat 3+ times for a polygon).')],
    cert: Annotated[Optional[list[str]], typer.Option("--cert", help='"VietGAP:NUMBER:FROM:TO" (repeat).')] = None,
    valid_from: Annotated[Optional[str], typer.Option("--valid-from", help="Default: today.")] = None,
    valid_to: Annotated[Optional[str], typer.Option("--valid-to")] = None,
    name: Annotated[str, typer.Option("--name")] = "",
    revoked: Annotated[bool, typer.Option("--revoked", help="The code is revoked.")] = False,
    subject: Subject = None, user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Register or change a growing area (vùng trồng) with its code, crops, location and certifications."""
    from producers import intake

    _record(lambda: intake.area(_env(subject, user, facility, at, event_id, owner), code=code, owner=owner,
                                crops=crop, area_ha=ha, location=location, certifications=cert or [],
                                valid_from=valid_from, valid_to=valid_to, name=name, revoked=revoked),
            {"payload.area_code": "--code", "payload.owner_subject_id": "--owner", "payload.crops": "--crop",
             "payload.area_ha": "--ha", "payload.location": "--location", "payload.certifications": "--cert",
             "payload.valid_from": "--valid-from", "payload.valid_to": "--valid-to", "payload.name": "--name"},
            lang, dry_run, quiet)


@register_app.command("product")
def register_product(
    gtin: Annotated[str, typer.Option("--gtin", help="GTIN-13/14 with a valid check digit (GS1 Vietnam: 893...).")],
    owner: Annotated[str, typer.Option("--owner", help="Owning subject id.")],
    name_vi: Annotated[str, typer.Option("--name-vi", "--name", help="Name in Vietnamese.")],
    group: Annotated[str, typer.Option("--group", help="food | beverage | herbal | handicraft | ornamental | tourism "
                                                        "(or 1-6).")],
    name_en: Annotated[str, typer.Option("--name-en", help="Name in English.")] = "",
    net: Annotated[Optional[str], typer.Option("--net", help='Net content, e.g. "250 g", "0.5 l".')] = None,
    shelf_life: Annotated[Optional[int], typer.Option("--shelf-life", help="Shelf life in days.")] = None,
    subject: Subject = None, user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Register or change a product (GTIN) in one of the six OCOP groups."""
    from producers import intake

    _record(lambda: intake.product(_env(subject, user, facility, at, event_id, owner), gtin=gtin, owner=owner,
                                   name_vi=name_vi, group=group, name_en=name_en, net_content=net,
                                   shelf_life_days=shelf_life),
            {"payload.gtin": "--gtin", "payload.owner_subject_id": "--owner", "payload.name_vi": "--name-vi",
             "payload.name_en": "--name-en", "payload.ocop_group": "--group", "payload.net_content": "--net",
             "payload.shelf_life_days": "--shelf-life"}, lang, dry_run, quiet)


@register_app.command("rating")
def register_rating(
    gtin: Annotated[str, typer.Option("--gtin", help="The rated product's GTIN.")],
    stars: Annotated[int, typer.Option("--stars", help="3, 4 or 5.")],
    score: Annotated[int, typer.Option("--score", help="Points out of 100.")],
    level: Annotated[str, typer.Option("--level", help="Recognising level (free): central, province, district, commune.")],
    decision: Annotated[str, typer.Option("--decision", help='Decision number, e.g. "1234/QĐ-UBND".')],
    decision_date: Annotated[str, typer.Option("--decision-date", help="Date of the decision.")],
    valid_from: Annotated[Optional[str], typer.Option("--valid-from", help="Default: the decision date.")] = None,
    valid_to: Annotated[Optional[str], typer.Option("--valid-to", help="Default: 36 months after valid-from.")] = None,
    action: Annotated[str, typer.Option("--action", help="granted | renewed | withdrawn.")] = "granted",
    subject: Annotated[Optional[str], typer.Option("--subject", "-s", help="Who records it (default: ocop-office).")] = None,
    user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Record an OCOP rating decision (granted, renewed or withdrawn): it adds to the product's rating history."""
    from producers import intake

    _record(lambda: intake.rating(_env(subject, user, facility, at, event_id, "ocop-office"), gtin=gtin, stars=stars,
                                  score=score, level=level, decision_no=decision, decision_date=decision_date,
                                  valid_from=valid_from, valid_to=valid_to, action=action),
            {"payload.gtin": "--gtin", "payload.stars": "--stars", "payload.score": "--score", "payload.level": "--level",
             "payload.decision_no": "--decision", "payload.decision_date": "--decision-date",
             "payload.valid_from": "--valid-from", "payload.valid_to": "--valid-to", "payload.action": "--action"},
            lang, dry_run, quiet)


@register_app.command("facility")
def register_facility(
    facility_id: Annotated[str, typer.Option("--id", help="Facility id, e.g. HAODAT-XUONG.")],
    owner: Annotated[str, typer.Option("--owner", help="Owning subject id.")],
    name: Annotated[str, typer.Option("--name")],
    kind: Annotated[str, typer.Option("--kind", help="farm | plant | warehouse | point_of_sale (pos) | lab | other.")] = "other",
    address: Annotated[str, typer.Option("--address")] = "",
    location: Annotated[Optional[str], typer.Option("--location", help='"lat,lon".')] = None,
    subject: Subject = None, user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Register or change a facility: a farm, a processing plant, a warehouse, a point of sale, a lab."""
    from producers import intake

    _record(lambda: intake.facility(_env(subject, user, facility, at, event_id, owner), facility_id=facility_id,
                                    owner=owner, name=name, kind=kind, address=address, location=location),
            {"payload.facility_id": "--id", "payload.owner_subject_id": "--owner", "payload.name": "--name",
             "payload.kind": "--kind", "payload.address": "--address", "payload.location": "--location"},
            lang, dry_run, quiet)


# --------------------------------------------------------------------------------------------------------------------
# intake

Lot = Annotated[str, typer.Option("--lot", "-l", help="Lot / batch code (GS1 AI 10).")]
Qty = Annotated[str, typer.Option("--qty", help='Quantity: "120 kg", "12,5kg", or a number with --unit.')]
Unit = Annotated[Optional[str], typer.Option("--unit", help="kg | t | l | unit (also g, tấn, lít, hộp ...).")]
Units = Annotated[int, typer.Option("--units", help="Number of units (packs, boxes, bottles).")]


@intake_app.command("harvest")
def intake_harvest(
    lot: Lot, area: Annotated[str, typer.Option("--area", help="Growing-area code (mã số vùng trồng).")],
    crop: Annotated[str, typer.Option("--crop", help='What was harvested, e.g. "chè".')], qty: Qty, unit: Unit = None,
    crate: Annotated[Optional[list[str]], typer.Option("--crate", help="Crate tag (repeat).")] = None,
    subject: Subject = None, user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Harvest (thu hoạch): a new lot from a growing area."""
    from producers import intake

    _record(lambda: intake.harvest(_env(subject, user, facility, at, event_id), lot=lot, area=area, crop=crop, qty=qty,
                                   unit=unit, crate_tags=crate or []),
            {"payload.lot": "--lot", "payload.area_code": "--area", "payload.crop": "--crop", "payload.quantity": "--qty",
             "payload.quantity.unit": "--qty/--unit", "payload.crate_tags": "--crate"}, lang, dry_run, quiet)


@intake_app.command("receive")
def intake_receive(
    lot: Lot, qty: Qty, unit: Unit = None,
    from_facility: Annotated[Optional[str], typer.Option("--from", help="Facility it came from.")] = None,
    doc: Annotated[Optional[str], typer.Option("--doc", "--crate", help="Crate tag, harvest slip, delivery note.")] = None,
    subject: Subject = None, user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Receive (nhận hàng): raw material or goods arrive at a facility."""
    from producers import intake

    _record(lambda: intake.receive(_env(subject, user, facility, at, event_id), lot=lot, qty=qty, unit=unit,
                                   from_facility=from_facility, document_ref=doc),
            {"payload.lot": "--lot", "payload.quantity": "--qty", "payload.quantity.unit": "--qty/--unit",
             "payload.from_facility": "--from", "payload.document_ref": "--doc"}, lang, dry_run, quiet)


@intake_app.command("transform")
def intake_transform(
    inputs: Annotated[list[str], typer.Option("--input", "-i", help='Input lot: "LOT=QTY[unit]" (repeat).')],
    outputs: Annotated[list[str], typer.Option("--output", "-o", help='Output lot: "LOT=QTY[unit]" (repeat).')],
    process: Annotated[str, typer.Option("--process", "-p", help="blending, fermentation, drying, splitting ...")],
    unit: Unit = None,
    duration: Annotated[Optional[str], typer.Option("--duration", help='"40d", "12h" (number: hours).')] = None,
    subject: Subject = None, user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Processing (chế biến): input lots become output lots (blend, ferment, dry, split ...)."""
    from producers import intake

    _record(lambda: intake.transform(_env(subject, user, facility, at, event_id), process=process, inputs=inputs,
                                     outputs=outputs, unit=unit, duration=duration),
            {"payload.inputs": "--input", "payload.outputs": "--output", "payload.process": "--process",
             "payload.duration_hours": "--duration"}, lang, dry_run, quiet)


@intake_app.command("inspect")
def intake_inspect(
    lot: Lot, lab: Annotated[str, typer.Option("--lab", help="The testing lab.")],
    result: Annotated[str, typer.Option("--result", help="pass | fail (đạt | không đạt).")],
    param: Annotated[Optional[list[str]], typer.Option("--param", help='"name=value[<=limit][;fail]" (repeat).')] = None,
    certificate: Annotated[Optional[str], typer.Option("--certificate", help="Test certificate number.")] = None,
    subject: Subject = None, user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Quality testing (kiểm nghiệm) of a lot."""
    from producers import intake

    _record(lambda: intake.inspect(_env(subject, user, facility, at, event_id), lot=lot, lab=lab, result=result,
                                   params=param or [], certificate_no=certificate),
            {"payload.lot": "--lot", "payload.lab": "--lab", "payload.result": "--result",
             "payload.parameters": "--param", "payload.certificate_no": "--certificate"}, lang, dry_run, quiet)


@intake_app.command("package")
def intake_package(
    lot: Lot, gtin: Annotated[str, typer.Option("--gtin", help="Product GTIN.")], units: Units,
    production_date: Annotated[Optional[str], typer.Option("--production-date", help="NSX (default: the day of --at).")] = None,
    expiry_date: Annotated[Optional[str], typer.Option("--expiry-date", help="HSD.")] = None,
    stamps: Annotated[int, typer.Option("--stamps", help="Traceability stamps to issue.")] = 0,
    qty: Annotated[Optional[str], typer.Option("--qty", help="Bulk quantity consumed, e.g. 25kg.")] = None,
    unit: Unit = None,
    subject: Subject = None, user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Packaging (đóng gói): a lot becomes units of a product, optionally with N stamps."""
    from producers import intake

    _record(lambda: intake.package(_env(subject, user, facility, at, event_id), lot=lot, gtin=gtin, units=units,
                                   production_date=production_date, expiry_date=expiry_date, stamps=stamps, qty=qty,
                                   unit=unit),
            {"payload.lot": "--lot", "payload.gtin": "--gtin", "payload.units": "--units",
             "payload.production_date": "--production-date", "payload.expiry_date": "--expiry-date",
             "payload.stamps_requested": "--stamps", "payload.quantity": "--qty"}, lang, dry_run, quiet)


@intake_app.command("ship")
def intake_ship(
    lot: Lot, units: Units, to: Annotated[str, typer.Option("--to", help="Destination facility / point of sale.")],
    carrier: Annotated[Optional[str], typer.Option("--carrier")] = None,
    doc: Annotated[Optional[str], typer.Option("--doc", help="Delivery note.")] = None,
    subject: Subject = None, user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Shipping (vận chuyển) units of a lot."""
    from producers import intake

    _record(lambda: intake.ship(_env(subject, user, facility, at, event_id), lot=lot, units=units, to=to,
                                carrier=carrier, document_ref=doc),
            {"payload.lot": "--lot", "payload.units": "--units", "payload.to_facility": "--to",
             "payload.carrier": "--carrier", "payload.document_ref": "--doc"}, lang, dry_run, quiet)


@intake_app.command("sell")
def intake_sell(
    lot: Lot, units: Units,
    pos: Annotated[Optional[str], typer.Option("--pos", help="Point of sale (default: --facility).")] = None,
    subject: Subject = None, user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Sale (bán) of units at a point of sale."""
    from producers import intake

    _record(lambda: intake.sell(_env(subject, user, facility, at, event_id), lot=lot, units=units,
                                pos=pos or facility or ""),
            {"payload.lot": "--lot", "payload.units": "--units", "payload.point_of_sale": "--pos"}, lang, dry_run, quiet)


@intake_app.command("recall")
def intake_recall(
    target: Annotated[str, typer.Option("--target", help="The lot or growing-area code recalled.")],
    reason: Annotated[str, typer.Option("--reason", help="Why.")],
    scope: Annotated[str, typer.Option("--scope", help="lot | area.")] = "lot",
    authority: Annotated[str, typer.Option("--authority", help="Who ordered it.")] = "",
    subject: Subject = None, user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Recall (thu hồi) a lot or a growing area: it propagates to every descendant lot."""
    from producers import intake

    _record(lambda: intake.recall(_env(subject, user, facility, at, event_id), scope=scope, target=target,
                                  reason=reason, authority=authority),
            {"payload.scope": "--scope", "payload.target": "--target", "payload.reason": "--reason",
             "payload.authority": "--authority"}, lang, dry_run, quiet)


@intake_app.command("void")
def intake_void(
    lot: Lot, voids: Annotated[str, typer.Option("--voids", help="The event id that no longer counts.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept for auditors).")],
    subject: Subject = None, user: User = "", facility: Facility = None, at: At = None, lang: Lang = None,
    dry_run: DryRun = False, quiet: Quiet = False, event_id: EventId = None,
) -> None:
    """Void (hủy bỏ): an auditable correction; the earlier event stays in the log but no longer counts."""
    from producers import intake

    _record(lambda: intake.void(_env(subject, user, facility, at, event_id), lot=lot, voids=voids, reason=reason),
            {"payload.lot": "--lot", "payload.voided_event_id": "--voids", "payload.reason": "--reason"},
            lang, dry_run, quiet)


@intake_app.command("station")
def intake_station(
    facility: Annotated[str, typer.Option("--facility", "-f", help="Where the station stands.")],
    step: Annotated[str, typer.Option("--step", help="harvest | receive | inspect | package | ship | sell.")],
    subject: Subject = None, user: User = "",
    lot: Annotated[Optional[str], typer.Option("--lot", help="Default lot for crate tags without one.")] = None,
    qty: Annotated[Optional[str], typer.Option("--qty", help="Default quantity (harvest, receive).")] = None,
    unit: Unit = None,
    units: Annotated[Optional[int], typer.Option("--units", help="Default units (package, ship, sell).")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="Default destination (ship).")] = None,
    pos: Annotated[Optional[str], typer.Option("--pos", help="Point of sale (sell; default: --facility).")] = None,
    area: Annotated[Optional[str], typer.Option("--area", help="Growing area (harvest).")] = None,
    crop: Annotated[Optional[str], typer.Option("--crop", help="Crop (harvest).")] = None,
    lab: Annotated[Optional[str], typer.Option("--lab", help="Lab (inspect; default: --facility).")] = None,
    result: Annotated[Optional[str], typer.Option("--result", help="Default result (inspect).")] = None,
    gtin: Annotated[Optional[str], typer.Option("--gtin", help="Product GTIN (package) if codes lack one.")] = None,
    production_date: Annotated[Optional[str], typer.Option("--production-date")] = None,
    expiry_date: Annotated[Optional[str], typer.Option("--expiry-date")] = None,
    stamps: Annotated[Optional[int], typer.Option("--stamps", help="Stamps per packaged lot.")] = None,
    from_facility: Annotated[Optional[str], typer.Option("--from", help="Where goods come from (receive).")] = None,
    lang: Lang = None, dry_run: DryRun = False,
) -> None:
    """Scanner station: one code per line on stdin (lot, crate tag LOT#N, GS1 Digital Link, GS1 element string,
    @photo.jpg). Asks only for what is missing when run at a terminal; in a pipe, give missing values on the same
    line ("LOT-1 12.5 kg", "LOT-1 24", "LOT-1 to=POS-1") or as flags. A blank line or end of input ends it."""
    from producers.station import STEPS, Station, StationConfig

    settings = _settings()
    lang = lang or settings.lang
    err = _console(stderr=True)
    if step not in STEPS:
        err.print(f"[red]✘ --step: {step!r} ∉ {', '.join(STEPS)}[/]")
        raise typer.Exit(2)
    defaults = {k: v for k, v in dict(lot=lot, qty=qty, unit=unit, units=units, to=to, pos=pos, area=area, crop=crop,
                                      lab=lab, result=result, gtin=gtin, production_date=production_date,
                                      expiry_date=expiry_date, stamps=stamps, from_facility=from_facility).items()
                if v is not None}
    interactive = sys.stdin.isatty()
    cfg = StationConfig(step=step, facility=facility, subject_id=subject or facility, user=user,
                        tz=settings.timezone, lang=lang, defaults=defaults, interactive=interactive)
    out = _console()
    producer = None
    if dry_run:
        def send(ev: dict) -> None:
            out.print(json.dumps(ev, ensure_ascii=False))
    else:
        from producers.client import EventProducer

        try:
            producer = EventProducer(settings, client_id="ocop-trace-station")
        except Exception as e:
            from producers.i18n import t

            err.print(f"[red]✘ {_esc(t('send_failed', lang, bootstrap=settings.bootstrap_servers, error=e))}[/]")
            raise typer.Exit(1) from None
        send = producer.send

    def ask(prompt: str) -> Optional[str]:
        try:
            return out.input(f"[cyan]? {_esc(prompt)}:[/] ")
        except EOFError:
            return None

    from producers.i18n import t

    suffix = f" {t('dry_run', lang)}" if dry_run else ""

    def say(ok: bool, message: str) -> None:
        (out if ok else err).print(f"[green]✔[/] {_esc(message)}{suffix}" if ok else f"[red]✘ {_esc(message)}[/]")

    station = Station(cfg, send=send, ask=ask if interactive else None, say=say)
    try:
        if interactive:
            out.print(f"[bold]{_esc(t('station.ready', lang, step=t(f'step.{step}', lang), facility=facility))}[/]")
        summary = station.run(_lines(sys.stdin, (lambda: ask(t("station.ask.scan", lang))) if interactive else None))
    finally:
        if producer is not None:
            producer.close()
    out.print(summary.message(lang))
    raise typer.Exit(0 if summary.rejected == 0 else 1)


def _lines(stream, prompt) -> Any:
    """Lines from stdin (a terminal reads with a prompt so it is clear the station waits for a scan)."""
    if prompt is None:
        for line in stream:
            yield line
        return
    while True:
        line = prompt()
        if line is None:
            return
        yield line


# --------------------------------------------------------------------------------------------------------------------
# generate


def generate_command(
    subjects: Annotated[int, typer.Option("--subjects", help="Subjects (the seeds' three examples first).")] = 3,
    lots: Annotated[int, typer.Option("--lots", help="Lot chains (harvest ... sale).")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same bytes.")] = 1,
    faulty: Annotated[float, typer.Option("--faulty", help="Share of chains with a rule-breaking event.")] = 0.02,
    out: Annotated[Optional[str], typer.Option("--out", help="Write JSONL here ('-' = stdout).")] = None,
    send: Annotated[bool, typer.Option("--send", help="Send to Kafka (validated, acks=all).")] = False,
    demo: Annotated[bool, typer.Option("--demo", help="Only the small named demo chain (Tân Cương tea ...).")] = False,
    lang: Lang = None,
) -> None:
    """Deterministic realistic sample data: the seeds' examples, then synthetic chains across the six OCOP groups."""
    from producers.generator import demo_chain, generate, to_jsonl
    from producers.i18n import t

    settings = _settings()
    lang = lang or settings.lang
    err = _console(stderr=True)
    events = demo_chain() if demo else generate(subjects, lots, seed, faulty)
    err.print(t("generated", lang, n=len(events), subjects=subjects, lots=lots, seed=seed))
    if out and out != "-":
        with open(out, "wb") as fh:
            fh.write(to_jsonl(events))
        err.print(t("generated.out", lang, path=out))
    elif not send or out == "-":
        sys.stdout.buffer.write(to_jsonl(events))
        sys.stdout.flush()
    if send:
        from producers.client import EventProducer
        from producers.intake import describe_invalid
        from schemas.validation import Invalid

        try:
            with EventProducer(settings, client_id="ocop-trace-generator", linger_ms=20) as producer:
                n = producer.send_many(events)
        except Invalid as e:
            err.print(f"[red]✘ {_esc(describe_invalid(e, {}, lang))}[/]")
            raise typer.Exit(2) from None
        except Exception as e:
            err.print(f"[red]✘ {_esc(t('send_failed', lang, bootstrap=settings.bootstrap_servers, error=e))}[/]")
            raise typer.Exit(1) from None
        err.print(t("generated.sent", lang, n=n))
