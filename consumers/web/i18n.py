"""The scan page's words, Vietnamese first, English second, and the small formatting helpers the templates use.

:func:`t` looks a key up in :data:`TEXT`; a key missing in English falls back to Vietnamese, then to the key itself.
:func:`pick_lang` chooses the page language: ``?lang=`` wins, then the ``Accept-Language`` header (q-values
honoured), then the settings' default.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

LANGS = ("vi", "en")

TEXT: dict[str, dict[str, str]] = {
    # --- page chrome -----------------------------------------------------------------------------------------------
    "site": {"vi": "Truy xuất nguồn gốc OCOP", "en": "OCOP traceability"},
    "site.sub": {"vi": "Mỗi xã một sản phẩm", "en": "One Commune One Product"},
    "lang.switch": {"vi": "English", "en": "Tiếng Việt"},
    "lang.switch.label": {"vi": "Xem bằng tiếng Anh", "en": "Xem bằng tiếng Việt (view in Vietnamese)"},
    "footer": {"vi": "Thông tin do hệ thống truy xuất nguồn gốc sản phẩm OCOP cung cấp, dựa trên dữ liệu của "
                     "chủ thể sản xuất và cơ quan quản lý.",
               "en": "Information from the OCOP product traceability system, based on records of the producer and "
                     "the authorities."},
    "footer.json": {"vi": "Dữ liệu cho phần mềm (JSON)", "en": "Data for programs (JSON)"},
    "footer.links": {"vi": "Các liên kết (GS1 linkset)", "en": "All links (GS1 linkset)"},
    "skip": {"vi": "Bỏ qua đến nội dung", "en": "Skip to content"},

    # --- verdicts ----------------------------------------------------------------------------------------------------
    "v.genuine": {"vi": "Chính hãng", "en": "Genuine"},
    "v.unknown": {"vi": "Không xác định", "en": "Unknown"},
    "v.forged": {"vi": "Hàng giả", "en": "Counterfeit"},
    "v.suspicious": {"vi": "Nghi vấn tem sao chép", "en": "Suspected copied stamp"},
    "v.recalled": {"vi": "Sản phẩm bị thu hồi", "en": "Product recalled"},
    "v.expired": {"vi": "Hết hạn sử dụng", "en": "Expired"},
    "v.info": {"vi": "Thông tin lô hàng", "en": "Batch information"},

    "vm.genuine": {"vi": "Tem truy xuất hợp lệ: mã bảo mật khớp và tem nằm trong dải tem đã cấp cho lô {lot}.",
                   "en": "This traceability stamp is valid: its security code matches and it belongs to the stamps "
                         "issued for batch {lot}."},
    "vm.unknown": {"vi": "Mã tem đúng định dạng nhưng không có trong hệ thống: chưa từng được cấp cho sản phẩm này.",
                   "en": "The code is well formed but the system never issued it for this product."},
    "vm.forged": {"vi": "Mã bảo mật trên tem không khớp: tem này không do hệ thống truy xuất OCOP phát hành.",
                  "en": "The security code on this stamp does not match: it was not issued by the OCOP "
                        "traceability system."},
    "vm.suspicious": {"vi": "Tem này là tem thật nhưng đã được quét ở nhiều nơi hoặc bởi nhiều thiết bị hơn mức một "
                            "gói hàng có thể có. Tem có thể đã bị sao chép.",
                      "en": "This stamp is genuine, but it was scanned in more places or by more devices than one "
                            "package can explain. It may have been copied."},
    "vm.recalled": {"vi": "Lô hàng này đã bị thu hồi.", "en": "This batch has been recalled."},
    "vm.expired": {"vi": "Sản phẩm đã quá hạn sử dụng ({expiry}).", "en": "This product is past its expiry date "
                                                                           "({expiry})."},
    "vm.info": {"vi": "Đường dẫn này chỉ có mã lô, không có mã tem, nên không kiểm tra được từng gói sản phẩm.",
                "en": "This link names a batch but no stamp, so no individual package can be checked."},

    "va.genuine": {"vi": "Bạn có thể yên tâm sử dụng. Hãy kiểm tra bao bì còn nguyên vẹn.",
                   "en": "You can use it with confidence. Check that the packaging is intact."},
    "va.unknown": {"vi": "Hãy hỏi lại điểm bán hoặc liên hệ nhà sản xuất trước khi sử dụng.",
                   "en": "Ask the shop or contact the producer before using it."},
    "va.forged": {"vi": "Không nên mua hoặc sử dụng. Hãy báo cho điểm bán hoặc cơ quan quản lý thị trường.",
                  "en": "Do not buy or use it. Tell the shop or the market surveillance authority."},
    "va.suspicious": {"vi": "Kiểm tra kỹ bao bì, chỉ mua tại điểm bán uy tín và báo cho nhà sản xuất nếu nghi ngờ.",
                      "en": "Check the packaging carefully, buy only from trusted shops and tell the producer if "
                            "in doubt."},
    "va.recalled": {"vi": "Ngừng sử dụng, liên hệ điểm bán hoặc nhà sản xuất để được hướng dẫn đổi trả.",
                    "en": "Stop using it and contact the shop or the producer for a return or refund."},
    "va.expired": {"vi": "Không nên sử dụng sản phẩm đã hết hạn.", "en": "Do not use an expired product."},
    "va.info": {"vi": "Quét mã QR trên tem của từng gói để kiểm tra hàng thật.",
                "en": "Scan the QR code on each package's stamp to check it is genuine."},

    # reasons (machine codes in Verdict.reasons)
    "r.tag_ok": {"vi": "Mã bảo mật của tem hợp lệ.", "en": "The stamp's security code is valid."},
    "r.bad_tag": {"vi": "Mã bảo mật không khớp với sản phẩm và lô hàng.",
                  "en": "The security code does not match the product and batch."},
    "r.unknown_key": {"vi": "Tem ký bằng một khóa không có trong hệ thống.",
                      "en": "The stamp is signed with a key the system does not know."},
    "r.malformed": {"vi": "Số sê-ri không đúng cấu trúc tem OCOP.",
                    "en": "The serial number does not have the OCOP stamp format."},
    "r.not_issued": {"vi": "Số thứ tự tem {index} nằm ngoài các dải tem đã cấp cho lô này.",
                     "en": "Stamp number {index} is outside every range issued for this batch."},
    "r.lot_unknown": {"vi": "Lô hàng {lot} không có trong hệ thống.", "en": "Batch {lot} is not in the system."},
    "r.lot_unresolved": {"vi": "Không tìm thấy lô hàng nào đã được cấp tem này.",
                         "en": "No batch was found that this stamp was issued to."},
    "r.gtin_mismatch": {"vi": "Mã lô không thuộc sản phẩm có mã GTIN này.",
                        "en": "The batch does not belong to the product with this GTIN."},
    "r.recalled": {"vi": "Lô hàng hoặc nguyên liệu của lô đã bị thu hồi.",
                   "en": "The batch or one of its raw materials was recalled."},
    "r.suspicious_copy": {"vi": "Tem bị quét bất thường (nhiều tỉnh hoặc nhiều thiết bị).",
                          "en": "Unusual scans of this stamp (several provinces or many devices)."},
    "r.expired": {"vi": "Đã quá hạn sử dụng.", "en": "Past its expiry date."},
    "r.expiry_mismatch": {"vi": "Hạn sử dụng in trên tem ({printed}) khác với hồ sơ lô hàng.",
                          "en": "The expiry printed on the stamp ({printed}) differs from the batch record."},

    # recall
    "recall.reason": {"vi": "Lý do thu hồi", "en": "Reason"},
    "recall.authority": {"vi": "Cơ quan ra quyết định", "en": "Decided by"},
    "recall.date": {"vi": "Ngày thu hồi", "en": "Recalled on"},
    "recall.via.lot": {"vi": "Thu hồi do lô nguyên liệu {target} bị thu hồi.",
                       "en": "Recalled because raw-material batch {target} was recalled."},
    "recall.via.area": {"vi": "Thu hồi do vùng trồng {target} bị thu hồi.",
                        "en": "Recalled because growing area {target} was recalled."},
    "recall.todo": {"vi": "Cần làm gì", "en": "What to do"},

    # --- sections -----------------------------------------------------------------------------------------------------
    "h.product": {"vi": "Sản phẩm", "en": "Product"},
    "h.rating": {"vi": "Xếp hạng OCOP", "en": "OCOP rating"},
    "h.producer": {"vi": "Chủ thể sản xuất", "en": "Producer"},
    "h.origins": {"vi": "Vùng nguyên liệu", "en": "Growing areas"},
    "h.journey": {"vi": "Hành trình sản phẩm", "en": "Journey"},
    "h.inspections": {"vi": "Kiểm nghiệm chất lượng", "en": "Quality tests"},
    "h.scans": {"vi": "Lịch sử quét tem", "en": "Scan history"},
    "h.codes": {"vi": "Mã truy xuất", "en": "Identifiers"},
    "h.claimed": {"vi": "Sản phẩm ghi trên tem", "en": "Product named on the stamp"},
    "h.owner": {"vi": "Chủ sở hữu mã sản phẩm", "en": "Owner of the product code"},
    "claimed.note": {"vi": "Mã sản phẩm trên tem thuộc sản phẩm dưới đây. Hệ thống không xác nhận gói hàng bạn "
                           "đang cầm là sản phẩm này.",
                     "en": "The product code on the stamp belongs to the product below. The system does not confirm "
                           "that the package in your hand is this product."},

    "photo.alt": {"vi": "Ảnh minh họa sản phẩm {name} (chưa có ảnh thật)",
                  "en": "Placeholder picture of {name} (no photo yet)"},
    "f.gtin": {"vi": "Mã sản phẩm (GTIN)", "en": "Product code (GTIN)"},
    "f.lot": {"vi": "Lô sản xuất", "en": "Batch"},
    "f.serial": {"vi": "Số sê-ri tem", "en": "Stamp serial"},
    "f.production": {"vi": "Ngày sản xuất", "en": "Production date"},
    "f.expiry": {"vi": "Hạn sử dụng", "en": "Expiry date"},
    "f.group": {"vi": "Nhóm sản phẩm", "en": "Product group"},
    "f.net": {"vi": "Khối lượng/thể tích", "en": "Net content"},
    "f.status": {"vi": "Tình trạng lô", "en": "Batch status"},
    "unknown.product": {"vi": "Sản phẩm chưa xác định", "en": "Unidentified product"},

    "rating.stars": {"vi": "{stars} sao OCOP", "en": "{stars}-star OCOP"},
    "rating.score": {"vi": "{score}/100 điểm", "en": "{score}/100 points"},
    "rating.level": {"vi": "Cấp công nhận", "en": "Recognised by"},
    "rating.decision": {"vi": "Quyết định số {no} ngày {date}", "en": "Decision no. {no} of {date}"},
    "rating.valid": {"vi": "Hiệu lực: {start} – {end}", "en": "Valid {start} – {end}"},
    "rating.none": {"vi": "Sản phẩm chưa có xếp hạng OCOP còn hiệu lực vào ngày đóng gói.",
                    "en": "The product had no valid OCOP rating on its packaging date."},
    "rating.lapsed": {"vi": "Chứng nhận đã hết hiệu lực từ {date}.", "en": "The rating lapsed on {date}."},

    "level.central": {"vi": "Trung ương", "en": "central government"},
    "level.national": {"vi": "Trung ương", "en": "central government"},
    "level.province": {"vi": "Tỉnh", "en": "province"},
    "level.district": {"vi": "Huyện", "en": "district"},
    "level.commune": {"vi": "Xã", "en": "commune"},

    "kind.cooperative": {"vi": "Hợp tác xã", "en": "Cooperative"},
    "kind.cooperative_group": {"vi": "Tổ hợp tác", "en": "Cooperative group"},
    "kind.sme": {"vi": "Doanh nghiệp nhỏ và vừa", "en": "Small or medium enterprise"},
    "kind.farm": {"vi": "Trang trại", "en": "Farm"},
    "kind.household": {"vi": "Hộ sản xuất kinh doanh", "en": "Household business"},

    "group.food": {"vi": "Thực phẩm", "en": "Food"},
    "group.beverage": {"vi": "Đồ uống", "en": "Beverages"},
    "group.herbal": {"vi": "Thảo dược", "en": "Herbal products"},
    "group.handicraft": {"vi": "Thủ công mỹ nghệ", "en": "Handicrafts"},
    "group.ornamental": {"vi": "Sinh vật cảnh", "en": "Ornamental plants and animals"},
    "group.tourism": {"vi": "Du lịch cộng đồng", "en": "Community tourism"},

    "status.active": {"vi": "Đang lưu hành", "en": "On sale"},
    "status.recalled": {"vi": "Đã thu hồi", "en": "Recalled"},
    "status.sold_out": {"vi": "Đã bán hết", "en": "Sold out"},
    "status.expired": {"vi": "Hết hạn", "en": "Expired"},

    "area.code": {"vi": "Mã số vùng trồng", "en": "Growing-area code"},
    "area.crops": {"vi": "Cây trồng", "en": "Crops"},
    "area.size": {"vi": "Diện tích", "en": "Area"},
    "area.coords": {"vi": "Tọa độ", "en": "Coordinates"},
    "area.map": {"vi": "Xem trên bản đồ OpenStreetMap", "en": "View on OpenStreetMap"},
    "area.map.label": {"vi": "Xem vị trí {name} trên bản đồ OpenStreetMap (mở trang mới)",
                       "en": "View {name} on OpenStreetMap (opens a new page)"},
    "area.cert": {"vi": "Chứng nhận", "en": "Certification"},
    "area.revoked": {"vi": "Mã vùng trồng đã bị thu hồi", "en": "Growing-area code revoked"},
    "origins.none": {"vi": "Chưa có thông tin vùng nguyên liệu.", "en": "No growing area recorded."},

    "step.harvest": {"vi": "Thu hoạch", "en": "Harvest"},
    "step.receive": {"vi": "Nhận hàng", "en": "Receiving"},
    "step.transform": {"vi": "Chế biến", "en": "Processing"},
    "step.inspect": {"vi": "Kiểm nghiệm", "en": "Quality testing"},
    "step.package": {"vi": "Đóng gói", "en": "Packaging"},
    "step.ship": {"vi": "Vận chuyển", "en": "Shipping"},
    "step.sell": {"vi": "Điểm bán", "en": "Point of sale"},
    "step.recall": {"vi": "Thu hồi", "en": "Recall"},
    "step.at": {"vi": "Tại {place}", "en": "At {place}"},
    "step.to": {"vi": "Đến {place}", "en": "To {place}"},
    "step.from": {"vi": "Từ {place}", "en": "From {place}"},
    "step.area": {"vi": "{crop} · vùng trồng {area}", "en": "{crop} · growing area {area}"},
    "step.lot": {"vi": "Lô {lot}", "en": "Batch {lot}"},
    "step.units": {"vi": "{units} đơn vị", "en": "{units} units"},
    "journey.none": {"vi": "Chưa có bước nào được ghi nhận.", "en": "No steps recorded yet."},

    "insp.pass": {"vi": "Đạt", "en": "Pass"},
    "insp.fail": {"vi": "Không đạt", "en": "Fail"},
    "insp.cert": {"vi": "Phiếu kết quả số {no}", "en": "Certificate no. {no}"},
    "insp.none": {"vi": "Chưa có kết quả kiểm nghiệm được ghi nhận.", "en": "No test results recorded."},

    "scans.first": {"vi": "Đây là lần quét đầu tiên của tem này.", "en": "This is the first scan of this stamp."},
    "scans.count": {"vi": "Tem này đã được quét {count} lần trước đây.",
                    "en": "This stamp was scanned {count} times before."},
    "scans.count1": {"vi": "Tem này đã được quét 1 lần trước đây.", "en": "This stamp was scanned once before."},
    "scans.since": {"vi": "Lần quét đầu tiên: {when}.", "en": "First scan: {when}."},
    "scans.hint": {"vi": "Nếu bạn vừa mở gói hàng mới mà tem đã được quét nhiều lần, hãy thận trọng.",
                   "en": "If you just opened a new package and its stamp was scanned many times, be careful."},

    # --- errors -------------------------------------------------------------------------------------------------------
    "e.title.400": {"vi": "Mã QR không hợp lệ", "en": "Invalid QR code"},
    "e.title.404": {"vi": "Không tìm thấy", "en": "Not found"},
    "e.title.414": {"vi": "Đường dẫn quá dài", "en": "Link too long"},
    "e.title.429": {"vi": "Quá nhiều lượt quét", "en": "Too many scans"},
    "e.title.503": {"vi": "Hệ thống tạm thời gián đoạn", "en": "Temporarily unavailable"},
    "e.title.500": {"vi": "Đã xảy ra lỗi", "en": "Something went wrong"},
    "e.body.400": {"vi": "Đường dẫn này không phải là một mã truy xuất OCOP hợp lệ ({where}: {why}).",
                   "en": "This link is not a valid OCOP traceability code ({where}: {why})."},
    "e.body.404.product": {"vi": "Không có sản phẩm nào mang mã GTIN {gtin} trong hệ thống.",
                           "en": "No product with GTIN {gtin} is in the system."},
    "e.body.404.lot": {"vi": "Không có lô hàng {lot} của sản phẩm {gtin} trong hệ thống.",
                       "en": "Batch {lot} of product {gtin} is not in the system."},
    "e.body.414": {"vi": "Đường dẫn hoặc tham số quá dài hay quá nhiều. Mã trên tem OCOP luôn ngắn.",
                   "en": "The link or its parameters are too long or too many. OCOP stamp codes are always short."},
    "e.body.429": {"vi": "Bạn đã quét quá nhiều lần trong một phút. Vui lòng thử lại sau {seconds} giây.",
                   "en": "Too many scans in a minute. Please try again in {seconds} seconds."},
    "e.body.503": {"vi": "Không đọc được dữ liệu truy xuất lúc này. Vui lòng thử lại sau ít phút.",
                   "en": "Traceability data cannot be read right now. Please try again in a few minutes."},
    "e.body.500": {"vi": "Vui lòng thử lại sau.", "en": "Please try again later."},
    "e.hint": {"vi": "Hãy quét lại mã QR trên tem bằng camera điện thoại, hoặc kiểm tra lại đường dẫn đã nhập.",
               "en": "Scan the QR code on the stamp again with your phone camera, or check the link you typed."},
    "e.where.gtin": {"vi": "mã sản phẩm GTIN", "en": "product code (GTIN)"},
    "e.where.lot": {"vi": "mã lô", "en": "batch"},
    "e.where.serial": {"vi": "số sê-ri tem", "en": "stamp serial"},
    "e.where.expiry": {"vi": "hạn sử dụng (?17=)", "en": "expiry date (?17=)"},
    "e.where.path": {"vi": "đường dẫn", "en": "path"},
    "e.where.uri": {"vi": "đường dẫn", "en": "link"},
    "e.where.query": {"vi": "tham số", "en": "query"},
    "e.where.lang": {"vi": "ngôn ngữ", "en": "language"},
    "e.where.region": {"vi": "vùng", "en": "region"},
    "e.where.location": {"vi": "vị trí", "en": "location"},
    "e.why.bad_check_digit": {"vi": "sai số kiểm tra", "en": "wrong check digit"},
    "e.why.bad_gtin": {"vi": "không phải mã GTIN", "en": "not a GTIN"},
    "e.why.bad_char": {"vi": "có ký tự không được phép", "en": "contains a character that is not allowed"},
    "e.why.too_long": {"vi": "quá dài", "en": "too long"},
    "e.why.empty": {"vi": "bị trống", "en": "is empty"},
    "e.why.missing": {"vi": "bị thiếu", "en": "is missing"},
    "e.why.bad_percent": {"vi": "mã hóa phần trăm sai", "en": "malformed percent-encoding"},
    "e.why.bad_date": {"vi": "ngày không hợp lệ", "en": "not a valid date"},
    "e.why.ai_order": {"vi": "các thành phần sai thứ tự hoặc lặp lại", "en": "parts out of order or repeated"},
    "e.why.dangling": {"vi": "thiếu giá trị", "en": "a value is missing"},
    "e.why.unknown_ai": {"vi": "có thành phần không dùng trên tem OCOP", "en": "a part OCOP stamps never use"},
    "e.why.unsupported_ai": {"vi": "có thành phần không dùng trên tem OCOP", "en": "a part OCOP stamps never use"},
    "e.why.bad_uri": {"vi": "có ký tự điều khiển hoặc khoảng trắng", "en": "control characters or spaces"},
    "e.why.not_ascii": {"vi": "có byte không hợp lệ", "en": "invalid bytes"},
    "e.why.too_many": {"vi": "quá nhiều tham số", "en": "too many parameters"},
    "e.why.bad_value": {"vi": "giá trị không hợp lệ", "en": "invalid value"},
    "e.home": {"vi": "Về trang chủ", "en": "Home"},
}


def t(key: str, lang: str = "vi", /, **kw: object) -> str:
    """The text of ``key`` in ``lang`` with ``{fields}`` filled in (missing fields are left as they are)."""
    entry = TEXT.get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry.get("vi") or key
    if kw:
        try:
            return text.format(**kw)
        except (KeyError, IndexError, ValueError):
            return text
    return text


_LANG_TAG = re.compile(r"^\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*$")


def parse_accept_language(header: str | None) -> list[str]:
    """Primary language subtags of an ``Accept-Language`` header, best first (q=0 dropped, junk ignored)."""
    if not header or len(header) > 512:
        return []
    out: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.partition(";")
        m = _LANG_TAG.match(tag)
        if not m:
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
            if not 0 <= q <= 1:
                continue
        if q > 0:
            out.append((-q, i, m.group(1).lower()))
    return [lang for _, _, lang in sorted(out)]


def pick_lang(query_lang: str | None, accept_language: str | None, default: str = "vi") -> str:
    """``?lang=`` if it names a supported language, else the best supported ``Accept-Language``, else default."""
    if query_lang:
        q = query_lang.strip().lower()[:8]
        if q in LANGS:
            return q
    for lang in parse_accept_language(accept_language):
        if lang in LANGS:
            return lang
    return default if default in LANGS else "vi"


@lru_cache(maxsize=8)
def zone(name: str) -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # no tz database: Vietnam has had +07:00 without DST since 1975
        return timezone(timedelta(hours=7))


def fmt_date(value: object, lang: str = "vi") -> str:
    """``2026-11-20`` → ``20/11/2026`` (vi) or ``20 Nov 2026`` (en); unparseable text is shown as it is."""
    d: date | None = None
    if isinstance(value, datetime):
        d = value.date()
    elif isinstance(value, date):
        d = value
    elif isinstance(value, str) and len(value) >= 10:
        try:
            d = date.fromisoformat(value[:10])
        except ValueError:
            d = None
    if d is None:
        return "" if value is None else str(value)
    return d.strftime("%d/%m/%Y") if lang == "vi" else d.strftime("%-d %b %Y")


def fmt_datetime(value: object, lang: str = "vi", tz: str = "Asia/Ho_Chi_Minh") -> str:
    """An ISO instant shown in local time: ``20/11/2026 07:30`` (vi) or ``20 Nov 2026, 07:30`` (en)."""
    if value is None:
        return ""
    dt: datetime | None = None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return value
    if dt is None:
        return str(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(zone(tz))
    return dt.strftime("%d/%m/%Y %H:%M") if lang == "vi" else dt.strftime("%-d %b %Y, %H:%M")


def fmt_number(value: object, lang: str = "vi") -> str:
    """``12.5`` → ``12,5`` (vi) or ``12.5`` (en); integers without decimals."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4f}".rstrip("0").rstrip(".")
    if lang == "vi":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


def label(prefix: str, value: object, lang: str = "vi") -> str:
    """The word for a code (``label("kind", "cooperative")`` → ``Hợp tác xã``); an unknown code is shown as is."""
    if value is None:
        return ""
    key = f"{prefix}.{value}"
    return t(key, lang) if key in TEXT else str(value)
