"""Operator messages in Vietnamese (first) and English: one dict and :func:`t`.

    >>> t("harvest.ok", "en", lot="L1", qty="120 kg", crop="tea", area="A1")
    'Recorded harvest of lot L1: 120 kg of tea from growing area A1'

Keys are ``<topic>.<what>``. A key missing in a language falls back to Vietnamese, then to the key itself, so a
message is never lost. Anyone may add keys (the HTTP API, the web pages); keep it a plain dict.
:func:`reason` translates the English reasons of :class:`schemas.validation.Invalid` for people at a terminal.
"""

from __future__ import annotations

import re

LANGS = ("vi", "en")

MESSAGES: dict[str, dict[str, str]] = {
    # --- supply events -------------------------------------------------------------------------------------------
    "harvest.ok": {
        "vi": "Đã ghi nhận thu hoạch lô {lot}: {qty} {crop} từ vùng trồng {area}",
        "en": "Recorded harvest of lot {lot}: {qty} of {crop} from growing area {area}",
    },
    "receive.ok": {
        "vi": "Đã ghi nhận nhận hàng lô {lot}: {qty}{where}",
        "en": "Recorded receipt of lot {lot}: {qty}{where}",
    },
    "receive.at": {"vi": " tại {facility}", "en": " at {facility}"},
    "transform.ok": {
        "vi": "Đã ghi nhận chế biến ({process}): {inputs} → {outputs}",
        "en": "Recorded processing ({process}): {inputs} → {outputs}",
    },
    "inspect.ok": {
        "vi": "Đã ghi nhận kiểm nghiệm lô {lot} tại {lab}: {result}",
        "en": "Recorded inspection of lot {lot} by {lab}: {result}",
    },
    "inspect.pass": {"vi": "đạt", "en": "pass"},
    "inspect.fail": {"vi": "không đạt", "en": "fail"},
    "package.ok": {
        "vi": "Đã ghi nhận đóng gói lô {lot}: {units} đơn vị sản phẩm {gtin}, NSX {production}{expiry}{stamps}",
        "en": "Recorded packaging of lot {lot}: {units} units of product {gtin}, produced {production}{expiry}{stamps}",
    },
    "package.expiry": {"vi": ", HSD {expiry}", "en": ", expires {expiry}"},
    "package.stamps": {"vi": ", yêu cầu {stamps} tem truy xuất", "en": ", {stamps} traceability stamps requested"},
    "ship.ok": {
        "vi": "Đã ghi nhận vận chuyển lô {lot}: {units} đơn vị đến {to}",
        "en": "Recorded shipment of lot {lot}: {units} units to {to}",
    },
    "sell.ok": {
        "vi": "Đã ghi nhận bán lô {lot}: {units} đơn vị tại điểm bán {pos}",
        "en": "Recorded sale of lot {lot}: {units} units at point of sale {pos}",
    },
    "recall.ok": {
        "vi": "Đã ghi nhận thu hồi {scope} {target}: {reason}",
        "en": "Recorded recall of {scope} {target}: {reason}",
    },
    "recall.lot": {"vi": "lô", "en": "lot"},
    "recall.area": {"vi": "vùng trồng", "en": "growing area"},
    "void.ok": {
        "vi": "Đã ghi nhận hủy bỏ sự kiện {voided} của lô {lot}: {reason}",
        "en": "Recorded that event {voided} of lot {lot} no longer counts: {reason}",
    },
    # --- master data ---------------------------------------------------------------------------------------------
    "subject.ok": {"vi": "Đã đăng ký chủ thể {id}: {name} ({kind})", "en": "Registered subject {id}: {name} ({kind})"},
    "area.ok": {
        "vi": "Đã đăng ký vùng trồng {code}: {crops}, {ha} ha, chủ thể {owner}",
        "en": "Registered growing area {code}: {crops}, {ha} ha, owned by {owner}",
    },
    "product.ok": {
        "vi": "Đã đăng ký sản phẩm {gtin}: {name} (nhóm {group}), chủ thể {owner}",
        "en": "Registered product {gtin}: {name} ({group} group), owned by {owner}",
    },
    "rating.ok": {
        "vi": "Đã ghi nhận xếp hạng OCOP {stars} sao ({score} điểm) cho sản phẩm {gtin}, "
              "quyết định {decision}, hiệu lực {valid_from} → {valid_to}",
        "en": "Recorded OCOP rating of {stars} stars ({score} points) for product {gtin}, "
              "decision {decision}, valid {valid_from} → {valid_to}",
    },
    "facility.ok": {"vi": "Đã đăng ký cơ sở {id}: {name} ({kind})", "en": "Registered facility {id}: {name} ({kind})"},
    # --- common --------------------------------------------------------------------------------------------------
    "event_id": {"vi": "mã sự kiện {event_id}", "en": "event id {event_id}"},
    "dry_run": {"vi": "(chạy thử: chưa gửi)", "en": "(dry run: not sent)"},
    "invalid": {"vi": "Dữ liệu không hợp lệ — {field}: {reason}", "en": "Invalid input — {field}: {reason}"},
    "nothing_sent": {"vi": "Không có gì được gửi.", "en": "Nothing was sent."},
    "send_failed": {"vi": "Không gửi được sự kiện tới Kafka ({bootstrap}): {error}",
                    "en": "Could not send the event to Kafka ({bootstrap}): {error}"},
    "generated": {"vi": "Đã tạo {n} sự kiện ({subjects} chủ thể, {lots} chuỗi lô, seed {seed})",
                  "en": "Generated {n} events ({subjects} subjects, {lots} lot chains, seed {seed})"},
    "generated.out": {"vi": "Đã ghi vào {path}", "en": "Written to {path}"},
    "generated.sent": {"vi": "Đã gửi {n} sự kiện tới Kafka", "en": "Sent {n} events to Kafka"},
    # --- scanner station -----------------------------------------------------------------------------------------
    "station.ready": {
        "vi": "Trạm quét mã – {step} tại {facility}: quét mã (lô, thẻ thùng, mã QR/GS1), dòng trống để kết thúc.",
        "en": "Scanner station – {step} at {facility}: scan a code (lot, crate tag, QR/GS1), blank line to finish.",
    },
    "station.ask.scan": {"vi": "Quét mã", "en": "Scan"},
    "station.ask.qty": {"vi": "Khối lượng cho lô {lot} (vd. 12,5 kg)", "en": "Quantity for lot {lot} (e.g. 12.5 kg)"},
    "station.ask.unit": {"vi": "Đơn vị (kg, t, l, unit)", "en": "Unit (kg, t, l, unit)"},
    "station.ask.units": {"vi": "Số đơn vị (gói, hộp, cái) của lô {lot}", "en": "Number of units of lot {lot}"},
    "station.ask.to": {"vi": "Chuyển đến cơ sở/điểm bán", "en": "Ship to facility / point of sale"},
    "station.ask.area": {"vi": "Mã vùng trồng của lô {lot}", "en": "Growing-area code of lot {lot}"},
    "station.ask.crop": {"vi": "Cây trồng / nguyên liệu", "en": "Crop / raw material"},
    "station.ask.result": {"vi": "Kết quả kiểm nghiệm lô {lot} (pass/fail)", "en": "Inspection result of lot {lot} (pass/fail)"},
    "station.ask.gtin": {"vi": "GTIN sản phẩm của lô {lot}", "en": "Product GTIN of lot {lot}"},
    "station.ask.lot": {"vi": "Mã lô của thẻ {tag}", "en": "Lot code of tag {tag}"},
    "station.missing": {
        "vi": "Thiếu {what} cho mã {code} (thêm vào cùng dòng, vd. \"{example}\", hoặc dùng {flag})",
        "en": "Missing {what} for code {code} (add it on the same line, e.g. \"{example}\", or use {flag})",
    },
    "station.what.qty": {"vi": "khối lượng", "en": "quantity"},
    "station.what.units": {"vi": "số đơn vị", "en": "units"},
    "station.what.to": {"vi": "nơi nhận", "en": "destination"},
    "station.what.area": {"vi": "mã vùng trồng", "en": "growing-area code"},
    "station.what.crop": {"vi": "cây trồng", "en": "crop"},
    "station.what.result": {"vi": "kết quả kiểm nghiệm", "en": "inspection result"},
    "station.what.gtin": {"vi": "GTIN sản phẩm", "en": "product GTIN"},
    "station.what.lot": {"vi": "mã lô", "en": "lot code"},
    "station.what.lab": {"vi": "phòng kiểm nghiệm", "en": "lab"},
    "station.what.pos": {"vi": "điểm bán", "en": "point of sale"},
    "station.bad_code": {"vi": "Mã không đọc được \"{code}\": {reason}", "en": "Unreadable code \"{code}\": {reason}"},
    "station.gtin_only": {"vi": "mã chỉ có GTIN, không có số lô (AI 10)",
                          "en": "the code has a GTIN but no lot (AI 10)"},
    "station.no_decoder": {"vi": "chưa có bộ giải mã ảnh (qr.decode)", "en": "no image decoder (qr.decode) installed"},
    "station.no_qr_in_photo": {"vi": "không tìm thấy mã QR trong ảnh", "en": "no QR code found in the photo"},
    "station.bad_token": {"vi": "không hiểu \"{token}\"", "en": "cannot understand \"{token}\""},
    "station.rejected": {"vi": "Từ chối: {message}", "en": "Rejected: {message}"},
    "station.summary": {"vi": "Kết thúc: đã ghi nhận {ok}, từ chối {rejected}.",
                        "en": "Done: {ok} recorded, {rejected} rejected."},
    # --- words ---------------------------------------------------------------------------------------------------
    "step.harvest": {"vi": "thu hoạch", "en": "harvest"},
    "step.receive": {"vi": "nhận hàng", "en": "receiving"},
    "step.inspect": {"vi": "kiểm nghiệm", "en": "inspection"},
    "step.package": {"vi": "đóng gói", "en": "packaging"},
    "step.ship": {"vi": "vận chuyển", "en": "shipping"},
    "step.sell": {"vi": "bán hàng", "en": "sales"},
    "unit.kg": {"vi": "kg", "en": "kg"},
    "unit.t": {"vi": "tấn", "en": "t"},
    "unit.l": {"vi": "lít", "en": "l"},
    "unit.unit": {"vi": "đơn vị", "en": "units"},
    "kind.cooperative": {"vi": "hợp tác xã", "en": "cooperative"},
    "kind.cooperative_group": {"vi": "tổ hợp tác", "en": "cooperative group"},
    "kind.sme": {"vi": "doanh nghiệp nhỏ và vừa", "en": "SME"},
    "kind.farm": {"vi": "trang trại", "en": "farm"},
    "kind.household": {"vi": "hộ sản xuất kinh doanh", "en": "household business"},
    "group.food": {"vi": "thực phẩm", "en": "food"},
    "group.beverage": {"vi": "đồ uống", "en": "beverage"},
    "group.herbal": {"vi": "thảo dược", "en": "herbal"},
    "group.handicraft": {"vi": "thủ công mỹ nghệ", "en": "handicraft"},
    "group.ornamental": {"vi": "sinh vật cảnh", "en": "ornamental"},
    "group.tourism": {"vi": "du lịch cộng đồng", "en": "community tourism"},
    "facility.farm": {"vi": "nông trại", "en": "farm"},
    "facility.plant": {"vi": "cơ sở chế biến", "en": "processing plant"},
    "facility.warehouse": {"vi": "kho", "en": "warehouse"},
    "facility.point_of_sale": {"vi": "điểm bán", "en": "point of sale"},
    "facility.lab": {"vi": "phòng kiểm nghiệm", "en": "lab"},
    "facility.other": {"vi": "khác", "en": "other"},
}

# English reasons of schemas.validation.Invalid (and of the intake parsers) -> Vietnamese. First match wins.
_REASONS_VI: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^is required$"), "bắt buộc phải có"),
    (re.compile(r"^must be ≥ (?P<a>\S+), got (?P<b>.+)$"), "phải ≥ {a}, nhận được {b}"),
    (re.compile(r"^must be ≤ (?P<a>\S+), got (?P<b>.+)$"), "phải ≤ {a}, nhận được {b}"),
    (re.compile(r"^(?P<v>.+) is not one of (?P<opts>.+)$"), "{v} không thuộc các giá trị: {opts}"),
    (re.compile(r"^bad check digit (?P<a>\d), expected (?P<b>\d)$"), "sai số kiểm tra {a}, phải là {b}"),
    (re.compile(r"^wrong check digit \(last digit\) (?P<a>\d), expected (?P<b>\d)$"), "sai số kiểm tra {a}, phải là {b}"),
    (re.compile(r"^must be 8, 12, 13 or 14 digits.*$"), "phải gồm 8, 12, 13 hoặc 14 chữ số"),
    (re.compile(r"^must not be before (?P<f>\S+) \((?P<v>.+)\)$"), "không được trước {f} ({v})"),
    (re.compile(r"^must be a date YYYY-MM-DD$"), "phải là ngày dạng YYYY-MM-DD hoặc DD/MM/YYYY"),
    (re.compile(r"^must not be empty$"), "không được để trống"),
    (re.compile(r"^must be 1-20 characters of the GS1 set.*$"),
     "phải gồm 1–20 ký tự của bộ ký tự GS1 (chữ, số, ! \" % & ' ( ) * + , - . / : ; < = > ? _), không dấu cách"),
    (re.compile(r"^must be 1-64 printable characters.*$"), "phải gồm 1–64 ký tự in được, không có dấu cách ở đầu/cuối"),
    (re.compile(r"^not a number: (?P<v>.+)$"), "không phải là số: {v}"),
    (re.compile(r"^unknown unit (?P<u>.+?) \(use (?P<opts>.+)\)$"), "đơn vị {u} không hợp lệ (dùng {opts})"),
    (re.compile(r"^needs a unit \(use (?P<opts>.+)\)$"), "cần đơn vị (dùng {opts})"),
    (re.compile(r"^must be a whole number: (?P<v>.+)$"), "phải là số nguyên: {v}"),
    (re.compile(r"^not a date-time: (?P<v>.+?)( \(.*\))?$"), "không phải thời điểm hợp lệ: {v} (vd. 2026-11-20 07:30)"),
    (re.compile(r"^not a date: (?P<v>.+)$"), "không phải ngày hợp lệ: {v} (vd. 2026-11-20 hoặc 20/11/2026)"),
    (re.compile(r"^is in the future.*$"), "ở thời điểm tương lai"),
    (re.compile(r"^needs at least (?P<n>\d+) item\(s\)$"), "cần ít nhất {n} mục"),
    (re.compile(r"^expected LOT=QUANTITY.*$"), "phải có dạng LÔ=SỐ_LƯỢNG[đơn vị], vd. TC-001=120kg"),
    (re.compile(r"^expected NAME=VALUE.*$"), "phải có dạng TÊN=GIÁ_TRỊ, vd. \"Pb=0.05<=0.3\""),
    (re.compile(r"^expected LAT,LON.*$"), "phải có dạng VĨ_ĐỘ,KINH_ĐỘ, vd. 21.5672,105.7703"),
    (re.compile(r"^lot (?P<l>\S+) is both an input and an output$"), "lô {l} vừa là đầu vào vừa là đầu ra"),
]


def t(key: str, lang: str = "vi", /, **kw: object) -> str:
    """The message ``key`` in ``lang`` (vi|en), formatted with ``kw``."""
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry.get("vi") or key
    return text.format(**kw) if kw else text


def reason(text: str, lang: str = "vi") -> str:
    """A validation reason (English, from :class:`schemas.validation.Invalid`) in ``lang``, best effort."""
    if lang != "vi":
        return text
    for pattern, vi in _REASONS_VI:
        m = pattern.match(text)
        if m:
            return vi.format(**m.groupdict())
    return text


def unit_name(unit: str, lang: str = "vi") -> str:
    return t(f"unit.{unit}", lang) if f"unit.{unit}" in MESSAGES else unit
