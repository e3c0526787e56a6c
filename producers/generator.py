"""Deterministic, realistic sample data: master data and lot chains, as schema-valid events.

* :func:`demo_chain` — the small named chain the demo pushes: Hảo Đạt tea cooperative (Tân Cương, Thái Nguyên) with
  its two gardens, roasting, a blend, an inspection, packaging with stamps, shipments and sales; Trường An black
  garlic (Thái Bình, 4 stars) with its ~40-day fermentation and a split into two pack lots; BambooVina bamboo
  kitchenware (Yến Sơn, Hà Trung, Thanh Hóa). Fixed ids (uuid5) and fixed times.
* :func:`generate` — ``subjects`` subjects (the three above first, then synthetic ones across the six OCOP groups)
  and ``lots`` lot chains: harvest (one or two gardens), receive, transformations (multi-input blends, fermentation,
  splits, weaving, brewing ...), inspection, packaging with stamps, shipments to points of sale, sales, an
  occasional recall, and a share ``faulty`` of chains carrying one rule-breaking (but schema-valid) event:
  mass-balance violation, oversold lot, harvest from an unregistered area, packaging while the product's OCOP rating
  has lapsed, shipping after a recall. :func:`generate_detailed` also returns which faults were injected.

Same arguments, same events, same bytes (:func:`to_jsonl`): every id comes from a seeded RNG, every time from the
seed; no wall clock. Events come in a plausible order: master data as registered, then the supply chain by the
time it happened. ``generate`` does not validate (it must make 100k events in seconds); the tests validate every
event it makes.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

from schemas.events import MASTER_TYPES

TZ = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh (no DST): a fixed offset keeps output free of tz-database drift
SOURCE = "generator"
OFFICE = "OCOP-OFFICE"  # provincial OCOP office / council recording ratings and public points of sale
DEMO_NS = uuid.UUID("6f636f70-2d74-7261-6365-2d64656d6f00")


def _check_digit(body: str) -> int:
    try:
        from qr.gtin import check_digit
    except ImportError:  # pragma: no cover - qr.gtin is part of the project
        from biip.checksums import gs1_standard_check_digit as check_digit
    return check_digit(body)


def gtin14(body12: str) -> str:
    """A GTIN-13 from its 12-digit body (GS1 Vietnam prefix 893...), as GTIN-14."""
    return f"0{body12}{_check_digit(body12)}"


# ------------------------------------------------------------------------------------------------------------------
# the seeds' three real examples (names and places from the articles; numbers illustrative)

SEED_SUBJECTS: list[dict] = [
    {
        "subject": {"subject_id": "HTX-CHE-HAODAT", "name": "Hợp tác xã Chè Hảo Đạt", "kind": "cooperative",
                    "tax_id": None, "province_code": "VN-69", "commune_code": "TAN-CUONG",
                    "address": "xã Tân Cương, TP. Thái Nguyên, tỉnh Thái Nguyên", "contact": None},
        "registered": "2020-03-02",
        "areas": [
            {"area_code": "VN-TN-TC-001", "name": "Vùng chè Tân Cương – đồi Hảo Đạt 1", "crops": ["chè Trung du"],
             "area_ha": 5.2, "location": [{"lat": 21.5712, "lon": 105.7651}, {"lat": 21.5731, "lon": 105.7680},
                                          {"lat": 21.5702, "lon": 105.7699}],
             "certifications": [{"scheme": "VietGAP", "number": "VG-TN-0231", "valid_from": "2024-05-01",
                                 "valid_to": "2027-04-30"}],
             "valid_from": "2020-04-01", "valid_to": None, "revoked": False},
            {"area_code": "VN-TN-TC-002", "name": "Vùng chè Tân Cương – đồi Hảo Đạt 2", "crops": ["chè Trung du"],
             "area_ha": 3.8, "location": [{"lat": 21.5655, "lon": 105.7590}],
             "certifications": [{"scheme": "Hữu cơ (TCVN 11041)", "number": "HC-TN-0057", "valid_from": "2024-09-01",
                                 "valid_to": "2027-08-31"}],
             "valid_from": "2020-04-01", "valid_to": None, "revoked": False},
        ],
        "facilities": [
            {"facility_id": "HAODAT-XUONG", "name": "Xưởng chế biến chè Hảo Đạt", "kind": "plant",
             "address": "xã Tân Cương, TP. Thái Nguyên", "location": {"lat": 21.5689, "lon": 105.7633}},
        ],
        "products": [
            {"template": "tea", "gtin_body": "893604520001", "name_vi": "Chè Tân Cương Hảo Đạt",
             "name_en": "Hảo Đạt Tân Cương green tea", "ocop_group": "beverage",
             "net_content": {"value": 0.2, "unit": "kg"}, "shelf_life_days": 540,
             "ratings": [
                 {"action": "granted", "stars": 3, "score": 68, "level": "district", "decision_no": "2107/QĐ-UBND",
                  "decision_date": "2021-06-15", "valid_from": "2021-06-15", "valid_to": "2024-06-14"},
                 {"action": "renewed", "stars": 4, "score": 82, "level": "province", "decision_no": "1532/QĐ-UBND",
                  "decision_date": "2024-07-10", "valid_from": "2024-07-10", "valid_to": "2027-07-09"},
             ]},
        ],
        "lot_prefix": "TC",
    },
    {
        "subject": {"subject_id": "TOIDEN-TRUONGAN", "name": "Cơ sở sản xuất Tỏi đen Trường An", "kind": "sme",
                    "tax_id": None, "province_code": "VN-20", "commune_code": None,
                    "address": "tỉnh Thái Bình", "contact": None},
        "registered": "2020-09-14",
        "areas": [
            {"area_code": "VN-TB-TA-001", "name": "Vùng tỏi Trường An", "crops": ["tỏi"], "area_ha": 12.5,
             "location": [{"lat": 20.4463, "lon": 106.3366}],
             "certifications": [{"scheme": "VietGAP", "number": "VG-TB-0118", "valid_from": "2024-01-15",
                                 "valid_to": "2027-01-14"}],
             "valid_from": "2020-10-01", "valid_to": None, "revoked": False},
        ],
        "facilities": [
            {"facility_id": "TRUONGAN-XUONG", "name": "Xưởng lên men tỏi đen Trường An", "kind": "plant",
             "address": "tỉnh Thái Bình", "location": {"lat": 20.4501, "lon": 106.3402}},
        ],
        "products": [
            {"template": "black_garlic", "gtin_body": "893604520101", "name_vi": "Tỏi đen Trường An",
             "name_en": "Trường An black garlic", "ocop_group": "food", "net_content": {"value": 0.25, "unit": "kg"},
             "shelf_life_days": 730,
             "ratings": [
                 {"action": "granted", "stars": 4, "score": 79, "level": "province", "decision_no": "598/QĐ-UBND",
                  "decision_date": "2024-03-20", "valid_from": "2024-03-20", "valid_to": "2027-03-19"},
             ]},
        ],
        "lot_prefix": "TA",
    },
    {
        "subject": {"subject_id": "CTY-BAMBOOVINA", "name": "Công ty TNHH sản xuất và thương mại BambooVina",
                    "kind": "sme", "tax_id": None, "province_code": "VN-21", "commune_code": "YEN-SON",
                    "address": "xã Yến Sơn, huyện Hà Trung, tỉnh Thanh Hóa", "contact": None},
        "registered": "2019-11-05",
        "areas": [
            {"area_code": "VN-TH-YS-001", "name": "Rừng tre nguyên liệu Yến Sơn", "crops": ["tre", "luồng"],
             "area_ha": 40.0, "location": [{"lat": 20.0583, "lon": 105.8121}], "certifications": [],
             "valid_from": "2020-01-01", "valid_to": None, "revoked": False},
        ],
        "facilities": [
            {"facility_id": "BAMBOOVINA-XUONG", "name": "Xưởng sản xuất đồ gia dụng tre BambooVina", "kind": "plant",
             "address": "xã Yến Sơn, huyện Hà Trung, Thanh Hóa", "location": {"lat": 20.0549, "lon": 105.8087}},
        ],
        "products": [
            {"template": "bamboo", "gtin_body": "893604520201", "name_vi": "Bộ đồ dùng nhà bếp bằng tre BambooVina",
             "name_en": "BambooVina bamboo kitchenware set", "ocop_group": "handicraft",
             "net_content": {"value": 1.0, "unit": "unit"}, "shelf_life_days": None,
             "ratings": [
                 {"action": "granted", "stars": 3, "score": 66, "level": "district", "decision_no": "3675/QĐ-UBND",
                  "decision_date": "2023-12-01", "valid_from": "2023-12-01", "valid_to": "2026-11-30"},
             ]},
            {"template": "bamboo", "gtin_body": "893604520202", "name_vi": "Đũa tre BambooVina",
             "name_en": "BambooVina bamboo chopsticks", "ocop_group": "handicraft",
             "net_content": {"value": 1.0, "unit": "unit"}, "shelf_life_days": None, "lapsed": True,
             "ratings": [
                 {"action": "granted", "stars": 3, "score": 61, "level": "district", "decision_no": "1190/QĐ-UBND",
                  "decision_date": "2021-04-12", "valid_from": "2021-04-12", "valid_to": "2024-04-11"},
             ]},
        ],
        "lot_prefix": "BBV",
    },
]

# public points of sale (registered by the OCOP office)
POINTS_OF_SALE = [
    {"facility_id": "QV-DINHHOA", "name": "Điểm giới thiệu và bán sản phẩm OCOP Quán Vuông", "kind": "point_of_sale",
     "address": "xã Trung Hội, huyện Định Hóa, tỉnh Thái Nguyên", "location": {"lat": 21.9032, "lon": 105.6418}},
    {"facility_id": "POSTMART", "name": "Sàn thương mại điện tử Postmart.vn", "kind": "point_of_sale",
     "address": "postmart.vn", "location": None},
    {"facility_id": "VOSO", "name": "Sàn thương mại điện tử Voso.vn", "kind": "point_of_sale", "address": "voso.vn",
     "location": None},
]

# ------------------------------------------------------------------------------------------------------------------
# provinces and product templates for synthetic subjects

# ISO 3166-2 code, short code, name, communes (name, lat, lon)
PROVINCES = {
    "TN": ("VN-69", "Thái Nguyên", [("La Bằng", 21.6823, 105.6238), ("Phúc Xuân", 21.6105, 105.7402)]),
    "TB": ("VN-20", "Thái Bình", [("Vũ Hội", 20.4210, 106.3011), ("Thụy Trường", 20.5493, 106.5612)]),
    "TH": ("VN-21", "Thanh Hóa", [("Hà Long", 20.1068, 105.7524), ("Cẩm Tú", 20.1782, 105.4711)]),
    "DT": ("VN-45", "Đồng Tháp", [("Hòa Thành", 10.2791, 105.6540), ("Tân Thuận Đông", 10.4512, 105.6218)]),
    "LD": ("VN-35", "Lâm Đồng", [("Lát", 12.0324, 108.3815), ("Xuân Thọ", 11.9588, 108.5102)]),
    "HG": ("VN-03", "Hà Giang", [("Thanh Vân", 23.0711, 104.9935), ("Lũng Cú", 23.3633, 105.3170)]),
    "DL": ("VN-33", "Đắk Lắk", [("Ea Tu", 12.7189, 108.0824), ("Hòa Thắng", 12.6401, 108.0212)]),
    "QNA": ("VN-27", "Quảng Nam", [("Trà Linh", 15.0489, 108.0311), ("Trà Cang", 15.1203, 108.0566)]),
    "YB": ("VN-06", "Yên Bái", [("Đại Sơn", 21.9511, 104.5508), ("Viễn Sơn", 21.8902, 104.6035)]),
    "HB": ("VN-14", "Hòa Bình", [("Cao Phong", 20.7041, 105.3252), ("Thu Phong", 20.6825, 105.3470)]),
    "NB": ("VN-18", "Ninh Bình", [("Kim Chính", 20.0335, 106.0946), ("Quang Thiện", 20.0721, 106.0683)]),
    "ST": ("VN-52", "Sóc Trăng", [("Gia Hòa 1", 9.5514, 105.9817), ("Tham Đôn", 9.5238, 105.9120)]),
    "QN": ("VN-13", "Quảng Ninh", [("Đồng Văn", 21.5321, 107.3944), ("Đạp Thanh", 21.2715, 107.2904)]),
    "HN": ("VN-HN", "Hà Nội", [("Bát Tràng", 20.9771, 105.9126), ("Nhật Tân", 21.0801, 105.8286)]),
    "BT": ("VN-50", "Bến Tre", [("Phú Túc", 10.2861, 106.2795), ("Tân Thạch", 10.3330, 106.3452)]),
    "BG": ("VN-54", "Bắc Giang", [("Phì Điền", 21.3641, 106.6223), ("Hồng Giang", 21.3886, 106.5870)]),
}

# A template is a product and how its lots flow. ``steps`` are transformations after receipt:
# (process, yield lo, yield hi, hours lo, hours hi, output unit or None = same unit)
TEMPLATES: dict[str, dict[str, Any]] = {
    "tea": {"group": "beverage", "name": "Chè xanh {place}", "en": "{place} green tea", "crop": "chè Trung du",
            "provinces": ["TN"], "unit": "kg", "harvest": (60, 260), "blend": True,
            "steps": [("roasting", 0.2, 0.24, 6, 12, None)], "pack": 0.2, "shelf": 540, "inspect": True, "pfx": "CHE"},
    "black_garlic": {"group": "food", "name": "Tỏi đen {place}", "en": "{place} black garlic", "crop": "tỏi",
                     "provinces": ["TB", "QN"], "unit": "kg", "harvest": (200, 900),
                     "steps": [("fermentation", 0.6, 0.7, 912, 1008, None)], "split": True, "pack": 0.25, "shelf": 730,
                     "inspect": True, "pfx": "TD"},
    "bamboo": {"group": "handicraft", "name": "Đồ gia dụng tre {place}", "en": "{place} bamboo homeware", "crop": "tre",
               "provinces": ["TH"], "unit": "t", "harvest": (1, 4), "steps": [("weaving", 0.7, 0.9, 120, 360, "unit")],
               "pack": 1, "shelf": None, "inspect": False, "pfx": "TRE"},
    "rice": {"group": "food", "name": "Gạo ST25 {place}", "en": "{place} ST25 rice", "crop": "lúa ST25",
             "provinces": ["ST"], "unit": "t", "harvest": (3, 9), "steps": [("drying", 0.6, 0.66, 24, 72, None)],
             "pack": 5, "shelf": 365, "inspect": True, "pfx": "ST"},
    "honey": {"group": "food", "name": "Mật ong bạc hà {place}", "en": "{place} mint honey", "crop": "mật ong bạc hà",
              "provinces": ["HG"], "unit": "kg", "harvest": (80, 320), "steps": [], "pack": 0.5, "shelf": 730,
              "inspect": True, "pfx": "MO"},
    "orange": {"group": "food", "name": "Cam {place}", "en": "{place} orange", "crop": "cam", "provinces": ["HB"],
               "unit": "kg", "harvest": (600, 2400), "steps": [("grading", 0.85, 0.95, 4, 10, None)], "pack": 5,
               "shelf": 30, "inspect": True, "pfx": "CAM"},
    "lychee": {"group": "food", "name": "Vải thiều sấy {place}", "en": "{place} dried lychee", "crop": "vải thiều",
               "provinces": ["BG"], "unit": "kg", "harvest": (800, 2600), "steps": [("drying", 0.25, 0.3, 48, 96, None)],
               "pack": 0.5, "shelf": 365, "inspect": True, "pfx": "VT"},
    "mango": {"group": "food", "name": "Xoài cát Hòa Lộc {place}", "en": "{place} Hoa Loc mango", "crop": "xoài cát Hòa Lộc",
              "provinces": ["DT"], "unit": "kg", "harvest": (400, 1800), "steps": [("grading", 0.85, 0.95, 3, 8, None)],
              "pack": 2, "shelf": 21, "inspect": True, "pfx": "XO"},
    "coconut_candy": {"group": "food", "name": "Kẹo dừa {place}", "en": "{place} coconut candy", "crop": "dừa",
                      "provinces": ["BT"], "unit": "kg", "harvest": (300, 1200), "steps": [("cooking", 0.3, 0.45, 6, 12, None)],
                      "pack": 0.4, "shelf": 270, "inspect": True, "pfx": "KD"},
    "coffee": {"group": "beverage", "name": "Cà phê Robusta {place}", "en": "{place} Robusta coffee", "crop": "cà phê",
               "provinces": ["DL"], "unit": "t", "harvest": (1, 4),
               "steps": [("drying", 0.2, 0.22, 120, 240, None), ("roasting", 0.8, 0.85, 2, 4, None)], "pack": 0.5,
               "shelf": 365, "inspect": True, "pfx": "CF"},
    "corn_wine": {"group": "beverage", "name": "Rượu ngô men lá {place}", "en": "{place} leaf-yeast corn wine",
                  "crop": "ngô", "provinces": ["HG"], "unit": "kg", "harvest": (300, 900),
                  "steps": [("brewing", 0.5, 0.7, 480, 720, "l")], "pack": 0.5, "shelf": 1825, "inspect": True,
                  "pfx": "RN"},
    "ginseng": {"group": "herbal", "name": "Sâm Ngọc Linh {place}", "en": "{place} Ngoc Linh ginseng",
                "crop": "sâm Ngọc Linh", "provinces": ["QNA"], "unit": "kg", "harvest": (8, 40),
                "steps": [("drying", 0.25, 0.3, 48, 120, None)], "pack": 0.1, "shelf": 730, "inspect": True, "pfx": "SAM"},
    "cinnamon_oil": {"group": "herbal", "name": "Tinh dầu quế {place}", "en": "{place} cinnamon oil", "crop": "quế",
                     "provinces": ["YB"], "unit": "kg", "harvest": (1000, 3000),
                     "steps": [("distillation", 0.005, 0.01, 8, 16, "l")], "pack": 0.01, "shelf": 1095, "inspect": True,
                     "pfx": "QUE"},
    "artichoke": {"group": "herbal", "name": "Trà atisô {place}", "en": "{place} artichoke tea", "crop": "atisô",
                  "provinces": ["LD"], "unit": "kg", "harvest": (300, 1200), "steps": [("drying", 0.12, 0.15, 24, 48, None)],
                  "pack": 0.2, "shelf": 540, "inspect": True, "pfx": "ATS"},
    "sedge_mat": {"group": "handicraft", "name": "Chiếu cói {place}", "en": "{place} sedge mat", "crop": "cói",
                  "provinces": ["NB"], "unit": "kg", "harvest": (500, 2000), "steps": [("weaving", 0.3, 0.45, 72, 240, "unit")],
                  "pack": 1, "shelf": None, "inspect": False, "pfx": "COI"},
    "orchid": {"group": "ornamental", "name": "Lan hồ điệp {place}", "en": "{place} moth orchid", "crop": "lan hồ điệp",
               "provinces": ["LD"], "unit": "unit", "harvest": (150, 900), "steps": [], "pack": 1, "shelf": None,
               "inspect": False, "pfx": "LAN"},
    "peach": {"group": "ornamental", "name": "Đào cảnh {place}", "en": "{place} ornamental peach", "crop": "đào cảnh",
              "provinces": ["HN"], "unit": "unit", "harvest": (40, 300), "steps": [], "pack": 1, "shelf": None,
              "inspect": False, "pfx": "DAO"},
    "homestay": {"group": "tourism", "name": "Du lịch cộng đồng {place}", "en": "{place} community tourism",
                 "crop": None, "provinces": ["HG", "LD", "QNA"], "unit": None, "harvest": None, "steps": [],
                 "pack": None, "shelf": None, "inspect": False, "pfx": "DL"},
}
BY_GROUP: dict[str, list[str]] = {}
for _k, _tpl in TEMPLATES.items():
    BY_GROUP.setdefault(_tpl["group"], []).append(_k)
GROUPS = ("food", "beverage", "herbal", "handicraft", "ornamental", "tourism")
GROUP_WEIGHTS = (30, 22, 14, 14, 12, 8)

KINDS = (("cooperative", "HTX", "Hợp tác xã", 40), ("sme", "CTY", "Công ty TNHH", 30),
         ("household", "HKD", "Hộ kinh doanh", 15), ("farm", "TT", "Trang trại", 10),
         ("cooperative_group", "THT", "Tổ hợp tác", 5))
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý")
GIVEN = ("Văn Hùng", "Thị Lan", "Văn Minh", "Thị Hoa", "Đức Thắng", "Thị Mai", "Quang Huy", "Thị Hằng", "Văn Toàn",
         "Thị Nga", "Minh Tuấn", "Thu Trang")
LABS = ("Trung tâm Kỹ thuật Tiêu chuẩn Đo lường Chất lượng 1 (QUATEST 1)",
        "Trung tâm Kiểm nghiệm Thuốc - Mỹ phẩm - Thực phẩm", "Viện Kiểm nghiệm An toàn Vệ sinh Thực phẩm Quốc gia",
        "Trung tâm Kỹ thuật Tiêu chuẩn Đo lường Chất lượng 3 (QUATEST 3)")
CARRIERS = ("Bưu điện Việt Nam (VNPost)", "Viettel Post", "Xe của hợp tác xã", "Giao Hàng Nhanh")
RECALL_REASONS = ("Phát hiện dư lượng thuốc bảo vệ thực vật vượt ngưỡng", "Bao bì bị lỗi, nguy cơ mất an toàn",
                  "Nhãn sai hạn sử dụng", "Nghi nhiễm nấm mốc trong quá trình bảo quản")
PARAMS = {
    "food": [("Pb (mg/kg)", 0.02, 0.06, "≤ 0.3"), ("Cd (mg/kg)", 0.005, 0.02, "≤ 0.1"), ("Độ ẩm (%)", 8.0, 12.0, "≤ 14")],
    "beverage": [("Pb (mg/kg)", 0.02, 0.08, "≤ 2"), ("Độ ẩm (%)", 5.0, 7.5, "≤ 8"),
                 ("Dư lượng thuốc BVTV", None, None, "KPH")],
    "herbal": [("Pb (mg/kg)", 0.05, 0.4, "≤ 1"), ("Độ ẩm (%)", 9.0, 11.5, "≤ 12")],
}


# ------------------------------------------------------------------------------------------------------------------
# the builder


@dataclass
class Generated:
    events: list[dict]
    faults: list[dict] = field(default_factory=list)  # {"rule", "lot", "event_id", "kind"}
    recalls: list[dict] = field(default_factory=list)  # {"lot", "event_id"}


def _dt(day: str, hour: int = 8, minute: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=TZ)


def _floor1(x: float) -> float:
    return math.floor(x * 10 + 1e-9) / 10


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    import calendar
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


class _Builder:
    def __init__(self, seed: int | None, *, ids: str = "random"):
        self.rng = random.Random(seed)
        self.ids = ids
        self.events: list[dict] = []
        self.faults: list[dict] = []
        self.recalls: list[dict] = []
        self._n = 0

    # -- envelope ------------------------------------------------------------------------------------------------
    def uid(self) -> str:
        if self.ids == "demo":
            self._n += 1
            return str(uuid.uuid5(DEMO_NS, f"demo-{self._n}"))
        n = self.rng.getrandbits(128) & _UUID_CLEAR | _UUID_SET  # a version-4 UUID, as uuid.UUID(version=4) sets it
        h = "%032x" % n
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def emit(self, typ: str, payload: dict, subject: str, at: datetime, facility: str | None = None,
             user: str = "") -> dict:
        delay = 2 + (self._n * 7) % 23 if self.ids == "demo" else _ri(self.rng, 1, 30)
        if at.microsecond:
            at = at.replace(microsecond=0)
        ev = {"event_id": self.uid(), "event_type": typ, "occurred_at": at.isoformat(),
              "recorded_at": (at + timedelta(minutes=delay)).isoformat(),
              "actor": {"subject_id": subject, "user": user}, "facility": facility, "source": SOURCE,
              "schema_version": 2, "payload": payload}
        self.events.append(ev)
        return ev

    # -- master data ---------------------------------------------------------------------------------------------
    def register_seed(self, s: dict, user: str = "so-nnptnt") -> dict:
        sub = s["subject"]
        sid = sub["subject_id"]
        day = _dt(s["registered"], 9)
        self.emit("subject", dict(sub), OFFICE, day, user=user)
        for i, a in enumerate(s["areas"]):
            self.emit("area", dict(a, owner_subject_id=sid), sid, day + timedelta(days=20 + i, hours=1))
        for i, f in enumerate(s["facilities"]):
            self.emit("facility", dict(f, owner_subject_id=sid), sid, day + timedelta(days=25 + i, hours=2))
        products = []
        for i, p in enumerate(s["products"]):
            gtin = gtin14(p["gtin_body"])
            self.emit("product", {"gtin": gtin, "owner_subject_id": sid, "name_vi": p["name_vi"], "name_en": p["name_en"],
                                  "ocop_group": p["ocop_group"], "net_content": p["net_content"],
                                  "shelf_life_days": p["shelf_life_days"]}, sid, day + timedelta(days=30 + i, hours=3))
            for r in p["ratings"]:
                self.emit("rating", dict(r, gtin=gtin), OFFICE, _dt(r["decision_date"], 14), user="hoi-dong-ocop")
            products.append({"gtin": gtin, "template": p["template"], "lapsed": p.get("lapsed", False),
                             "shelf": p["shelf_life_days"], "group": p["ocop_group"],
                             "valid_to": p["ratings"][-1]["valid_to"]})
        return {"id": sid, "areas": [a["area_code"] for a in s["areas"]],
                "plant": s["facilities"][0]["facility_id"], "products": products, "pfx": s["lot_prefix"],
                "province": sub["province_code"]}

    def register_points_of_sale(self, day: datetime) -> None:
        for i, f in enumerate(POINTS_OF_SALE):
            self.emit("facility", dict(f, owner_subject_id=OFFICE), OFFICE, day + timedelta(hours=i))


# ------------------------------------------------------------------------------------------------------------------
# the demo chain (fixed)


def demo_chain() -> list[dict]:
    """The named sample chain for the demo (fixed ids and times; every event valid)."""
    b = _Builder(0, ids="demo")
    b.register_points_of_sale(_dt("2020-01-06", 9))
    tea, garlic, bamboo = (b.register_seed(s) for s in SEED_SUBJECTS)
    g_tea, g_garlic, g_bamboo = tea["products"][0]["gtin"], garlic["products"][0]["gtin"], bamboo["products"][0]["gtin"]
    kg = lambda v: {"value": float(v), "unit": "kg"}  # noqa: E731
    units = lambda v: {"value": float(v), "unit": "unit"}  # noqa: E731
    T, H, F = "HTX-CHE-HAODAT", "HAODAT-XUONG", "QV-DINHHOA"

    # Tân Cương tea: two gardens -> roasting -> blend -> inspect -> package (stamps) -> ship -> sell
    b.emit("harvest", {"lot": "TC-2026-001", "area_code": "VN-TN-TC-001", "crop": "chè búp tươi", "quantity": kg(120),
                       "crate_tags": ["TC-001#01", "TC-001#02", "TC-001#03"]}, T, _dt("2026-10-05", 7, 30), user="ba-hao")
    b.emit("harvest", {"lot": "TC-2026-002", "area_code": "VN-TN-TC-002", "crop": "chè búp tươi", "quantity": kg(80),
                       "crate_tags": ["TC-002#01", "TC-002#02"]}, T, _dt("2026-10-05", 8, 15), user="ba-hao")
    for lot, q, m in (("TC-2026-001", 120, 10), ("TC-2026-002", 80, 40)):
        b.emit("receive", {"lot": lot, "quantity": kg(q), "from_facility": None, "document_ref": f"PHIEU-{lot}"}, T,
               _dt("2026-10-05", 10, m), facility=H, user="tram-can")
    b.emit("transform", {"process": "roasting", "inputs": [{"lot": "TC-2026-001", "quantity": kg(120)}],
                         "outputs": [{"lot": "TC-2026-001-S", "quantity": kg(26.5)}], "duration_hours": 9.0},
           T, _dt("2026-10-05", 20), facility=H)
    b.emit("transform", {"process": "roasting", "inputs": [{"lot": "TC-2026-002", "quantity": kg(80)}],
                         "outputs": [{"lot": "TC-2026-002-S", "quantity": kg(17.5)}], "duration_hours": 8.0},
           T, _dt("2026-10-05", 21), facility=H)
    b.emit("transform", {"process": "blending", "inputs": [{"lot": "TC-2026-001-S", "quantity": kg(26.5)},
                                                           {"lot": "TC-2026-002-S", "quantity": kg(17.5)}],
                         "outputs": [{"lot": "TC-2026-T01", "quantity": kg(44)}], "duration_hours": 2.0},
           T, _dt("2026-10-06", 9), facility=H)
    b.emit("inspect", {"lot": "TC-2026-T01", "lab": LABS[0], "result": "pass",
                       "parameters": [{"name": "Pb (mg/kg)", "value": "0.04", "limit": "≤ 2", "passed": True},
                                      {"name": "Độ ẩm (%)", "value": "6.1", "limit": "≤ 8", "passed": True},
                                      {"name": "Dư lượng thuốc BVTV", "value": "KPH", "limit": "KPH", "passed": True}],
                       "certificate_no": "KQ-2026-10-0871"}, T, _dt("2026-10-08", 15))
    b.emit("package", {"lot": "TC-2026-T01", "gtin": g_tea, "units": 200, "quantity": kg(40),
                       "production_date": "2026-10-09", "expiry_date": "2028-04-01", "stamps_requested": 200},
           T, _dt("2026-10-09", 8), facility=H)
    b.emit("ship", {"lot": "TC-2026-T01", "units": 120, "to_facility": F, "carrier": CARRIERS[2], "document_ref": "PX-0412"},
           T, _dt("2026-10-10", 7), facility=H)
    b.emit("ship", {"lot": "TC-2026-T01", "units": 60, "to_facility": "POSTMART", "carrier": CARRIERS[0],
                    "document_ref": "PX-0413"}, T, _dt("2026-10-10", 9), facility=H)
    b.emit("sell", {"lot": "TC-2026-T01", "units": 35, "point_of_sale": F}, T, _dt("2026-10-18", 17), facility=F)
    b.emit("sell", {"lot": "TC-2026-T01", "units": 20, "point_of_sale": "POSTMART"}, T, _dt("2026-10-20", 12),
           facility="POSTMART")

    # Trường An black garlic: harvest -> receive -> fermentation (40 days) -> split -> package -> ship -> sell
    G, GX = "TOIDEN-TRUONGAN", "TRUONGAN-XUONG"
    b.emit("harvest", {"lot": "TA-2026-001", "area_code": "VN-TB-TA-001", "crop": "tỏi", "quantity": kg(500),
                       "crate_tags": []}, G, _dt("2026-08-18", 6, 30))
    b.emit("receive", {"lot": "TA-2026-001", "quantity": kg(500), "from_facility": None, "document_ref": None}, G,
           _dt("2026-08-18", 14), facility=GX)
    b.emit("transform", {"process": "fermentation", "inputs": [{"lot": "TA-2026-001", "quantity": kg(500)}],
                         "outputs": [{"lot": "TA-2026-F01", "quantity": kg(320)}], "duration_hours": 960.0},
           G, _dt("2026-09-27", 14), facility=GX)
    b.emit("transform", {"process": "splitting", "inputs": [{"lot": "TA-2026-F01", "quantity": kg(315)}],
                         "outputs": [{"lot": "TA-2026-F01-A", "quantity": kg(150)},
                                     {"lot": "TA-2026-F01-B", "quantity": kg(165)}], "duration_hours": 3.0},
           G, _dt("2026-09-28", 9), facility=GX)
    b.emit("inspect", {"lot": "TA-2026-F01", "lab": LABS[2], "result": "pass",
                       "parameters": [{"name": "Pb (mg/kg)", "value": "0.03", "limit": "≤ 0.3", "passed": True}],
                       "certificate_no": "KN-TB-2026-331"}, G, _dt("2026-09-29", 10))
    for lot, n, d in (("TA-2026-F01-A", 600, "2026-10-01"), ("TA-2026-F01-B", 660, "2026-10-02")):
        b.emit("package", {"lot": lot, "gtin": g_garlic, "units": n, "quantity": kg(n * 0.25), "production_date": d,
                           "expiry_date": (date.fromisoformat(d) + timedelta(days=730)).isoformat(),
                           "stamps_requested": n}, G, _dt(d, 9), facility=GX)
    b.emit("ship", {"lot": "TA-2026-F01-A", "units": 300, "to_facility": "VOSO", "carrier": CARRIERS[1],
                    "document_ref": None}, G, _dt("2026-10-04", 8), facility=GX)
    b.emit("sell", {"lot": "TA-2026-F01-A", "units": 48, "point_of_sale": "VOSO"}, G, _dt("2026-10-15", 20),
           facility="VOSO")

    # BambooVina: bamboo harvest -> receive -> weaving -> package -> ship -> sell
    B, BX = "CTY-BAMBOOVINA", "BAMBOOVINA-XUONG"
    b.emit("harvest", {"lot": "BBV-2026-001", "area_code": "VN-TH-YS-001", "crop": "tre",
                       "quantity": {"value": 2.0, "unit": "t"}, "crate_tags": []}, B, _dt("2026-09-08", 7))
    b.emit("receive", {"lot": "BBV-2026-001", "quantity": {"value": 2.0, "unit": "t"}, "from_facility": None,
                       "document_ref": "PN-BBV-0908"}, B, _dt("2026-09-08", 16), facility=BX)
    b.emit("transform", {"process": "weaving", "inputs": [{"lot": "BBV-2026-001", "quantity": {"value": 2.0, "unit": "t"}}],
                         "outputs": [{"lot": "BBV-2026-W01", "quantity": units(400)}], "duration_hours": 240.0},
           B, _dt("2026-09-22", 17), facility=BX)
    b.emit("package", {"lot": "BBV-2026-W01", "gtin": g_bamboo, "units": 400, "quantity": None,
                       "production_date": "2026-09-23", "expiry_date": None, "stamps_requested": 400},
           B, _dt("2026-09-23", 9), facility=BX)
    b.emit("ship", {"lot": "BBV-2026-W01", "units": 150, "to_facility": "POSTMART", "carrier": CARRIERS[0],
                    "document_ref": None}, B, _dt("2026-09-25", 8), facility=BX)
    b.emit("sell", {"lot": "BBV-2026-W01", "units": 37, "point_of_sale": "POSTMART"}, B, _dt("2026-10-12", 19),
           facility="POSTMART")
    return _ordered(b.events)


def _ordered(events: list[dict]) -> list[dict]:
    """Master data first, as registered (subject by subject, the seeds' examples first), then the supply chain in
    the order it happened (stable: ties keep creation order)."""
    master = [e for e in events if e["event_type"] in MASTER_TYPES]
    supply = [e for e in events if e["event_type"] not in MASTER_TYPES]
    supply.sort(key=lambda e: e["occurred_at"])
    return master + supply


# ------------------------------------------------------------------------------------------------------------------
# synthetic subjects and chains


FAULT_KINDS = ("mass_balance", "oversold", "area_unregistered", "rating_invalid", "ship_after_recall")
FAULT_RULE = {"mass_balance": "mass_balance", "oversold": "oversold", "area_unregistered": "area_unregistered",
              "rating_invalid": "rating_invalid", "ship_after_recall": "impossible_sequence"}


class _Synth(_Builder):
    def __init__(self, seed: int, faulty: float):
        super().__init__(seed)
        self.seed = seed
        self.faulty = faulty
        r = self.rng
        # the window the chains happen in: a year starting mid-2025, shifted by the seed (all in the past)
        self.start = date(2025, 6, 1) + timedelta(days=seed % 61)
        self.span_days = 300
        self.tag = _base36(seed % 36**4)
        self.showrooms: dict[str, str] = {}
        self.subjects: list[dict] = []
        self._r = r

    def showroom(self, short: str) -> str:
        fid = f"OCOP-SR-{short}"
        if fid not in self.showrooms:
            iso, name, communes = PROVINCES[short]
            _, lat, lon = communes[0]
            self.showrooms[fid] = fid
            self.emit("facility", {"facility_id": fid, "owner_subject_id": OFFICE,
                                   "name": f"Trung tâm giới thiệu và bán sản phẩm OCOP tỉnh {name}",
                                   "kind": "point_of_sale", "address": f"tỉnh {name}",
                                   "location": {"lat": lat, "lon": lon}},
                      OFFICE, _dt((self.start - timedelta(days=400)).isoformat(), 10))
        return fid

    def synthetic_subject(self, i: int) -> dict:
        r = self.rng
        group = r.choices(GROUPS, GROUP_WEIGHTS)[0]
        key = r.choice(BY_GROUP[group])
        tpl = TEMPLATES[key]
        short = r.choice(tpl["provinces"])
        iso, pname, communes = PROVINCES[short]
        commune, lat0, lon0 = r.choice(communes)
        kind, kshort, kname, _ = r.choices(KINDS, [k[3] for k in KINDS])[0]
        place = commune
        product_name = tpl["name"].format(place=place)
        if kind in ("household", "farm"):
            name = f"{kname} {r.choice(FAMILY)} {r.choice(GIVEN)}"
        else:
            name = f"{kname} {product_name}"
        sid = f"{kshort}-{short}-{i:05d}"
        comm_code = _slug(commune)
        # dates: ratings first decided, then the subject registered before that
        r1 = self.start - timedelta(days=_ri(r, 30, 600))
        has_history = r.random() < 0.3
        r0 = r1 - timedelta(days=_ri(r, 1000, 1150)) if has_history else None
        rl = self.start - timedelta(days=_ri(r, 1200, 1500))  # a second product's rating that lapsed
        reg = min(r0 or r1, rl) - timedelta(days=_ri(r, 60, 300))
        regt = _dt(reg.isoformat(), 9, _ri(r, 0, 59))
        self.emit("subject", {"subject_id": sid, "name": name, "kind": kind, "tax_id": f"{_ri(r, 10**9, 10**10 - 1)}",
                              "province_code": iso, "commune_code": comm_code,
                              "address": f"xã {commune}, tỉnh {pname}",
                              "contact": f"0{r.choice('39785')}{_ri(r, 10**7, 10**8 - 1)}"},
                  OFFICE, regt, user="so-nnptnt")
        lat, lon = lat0 + r.uniform(-0.02, 0.02), lon0 + r.uniform(-0.02, 0.02)
        areas = []
        if tpl["crop"]:
            for k in range(r.choice((1, 1, 2, 2, 3))):
                code = f"VN-{short}-{i:05d}-{k + 1:02d}"
                certs = []
                if r.random() < 0.6:
                    vf = reg + timedelta(days=_ri(r, 0, 200))
                    certs.append({"scheme": r.choice(("VietGAP", "VietGAP", "Hữu cơ (TCVN 11041)", "GlobalG.A.P.")),
                                  "number": f"CN-{short}-{_ri(r, 100, 9999)}", "valid_from": vf.isoformat(),
                                  "valid_to": _add_months(vf, 36).isoformat()})
                pts = [{"lat": round(lat + r.uniform(-0.01, 0.01), 5), "lon": round(lon + r.uniform(-0.01, 0.01), 5)}]
                if r.random() < 0.4:  # a polygon
                    c = pts[0]
                    pts = [{"lat": round(c["lat"] + dy, 5), "lon": round(c["lon"] + dx, 5)}
                           for dy, dx in ((0, 0), (0.002, 0.001), (0.001, 0.003), (-0.001, 0.002))]
                self.emit("area", {"area_code": code, "owner_subject_id": sid, "name": f"Vùng {tpl['crop']} {commune} {k + 1}",
                                   "crops": [tpl["crop"]], "area_ha": round(r.uniform(0.5, 30), 2), "location": pts,
                                   "certifications": certs, "valid_from": (reg + timedelta(days=10)).isoformat(),
                                   "valid_to": None, "revoked": False},
                          sid, regt + timedelta(days=10, hours=1))
                areas.append(code)
        plant = f"{sid}-XUONG"
        self.emit("facility", {"facility_id": plant, "owner_subject_id": sid,
                               "name": f"Cơ sở sản xuất {product_name}", "kind": "plant",
                               "address": f"xã {commune}, tỉnh {pname}",
                               "location": {"lat": round(lat, 5), "lon": round(lon, 5)}},
                  sid, regt + timedelta(days=12))
        products = []
        n_products = 2 if r.random() < 0.25 else 1
        company = 10000 + (i * 7919 + self.seed * 104729) % 49999  # 10000..59998: never a seed example's 60452
        for k in range(n_products):
            gtin = gtin14(f"893{company:05d}{k + 1:04d}")
            lapsed = k == 1 and r.random() < 0.5
            net = {"value": float(tpl["pack"]), "unit": ("unit" if tpl["unit"] in ("unit", None) or
                                                        (tpl["steps"] and tpl["steps"][-1][5] == "unit")
                                                        else "l" if tpl["steps"] and tpl["steps"][-1][5] == "l" else "kg")} \
                if tpl["pack"] else None
            suffix = "" if k == 0 else " (loại đặc biệt)"
            self.emit("product", {"gtin": gtin, "owner_subject_id": sid, "name_vi": product_name + suffix,
                                  "name_en": tpl["en"].format(place=_ascii(place)) + ("" if k == 0 else " (premium)"),
                                  "ocop_group": group, "net_content": net, "shelf_life_days": tpl["shelf"]},
                      sid, regt + timedelta(days=15 + k))
            stars = r.choices((3, 4, 5), (55, 38, 7))[0]
            if lapsed:
                dd = rl
                self._rating(gtin, "granted", 3, dd, short)
                valid_to = _add_months(dd, 36) - timedelta(days=1)
            else:
                if r0 is not None:
                    self._rating(gtin, "granted", max(3, stars - 1), r0, short)
                self._rating(gtin, "renewed" if r0 is not None else "granted", stars, r1, short)
                valid_to = _add_months(r1, 36) - timedelta(days=1)
            products.append({"gtin": gtin, "template": key, "lapsed": lapsed, "shelf": tpl["shelf"], "group": group,
                             "valid_to": valid_to.isoformat()})
        return {"id": sid, "areas": areas, "plant": plant, "products": products, "pfx": tpl["pfx"], "short": short,
                "template": key}

    def _rating(self, gtin: str, action: str, stars: int, day: date, short: str) -> None:
        r = self.rng
        score = {3: _ri(r, 50, 69), 4: _ri(r, 70, 89), 5: _ri(r, 90, 100)}[stars]
        level = {3: r.choice(("district", "commune")), 4: "province", 5: "central"}[stars]
        decision = f"{_ri(r, 100, 4999)}/QĐ-{'BNN-KTHT' if stars == 5 else 'UBND'}"
        self.emit("rating", {"gtin": gtin, "action": action, "stars": stars, "score": score, "level": level,
                             "decision_no": decision, "decision_date": day.isoformat(), "valid_from": day.isoformat(),
                             "valid_to": (_add_months(day, 36) - timedelta(days=1)).isoformat()},
                  OFFICE, _dt(day.isoformat(), 14), user="hoi-dong-ocop")

    # -- one lot chain -------------------------------------------------------------------------------------------
    def chain(self, n: int, s: dict) -> None:
        r = self.rng
        fault = None
        if self.faulty > 0 and r.random() < self.faulty:
            fault = r.choice(FAULT_KINDS)
            if fault == "rating_invalid" and not any(p["lapsed"] for p in s["products"]):
                lapsed = [x for x in self.subjects if x["areas"] and any(p["lapsed"] for p in x["products"])]
                if lapsed:
                    s = r.choice(lapsed)
                else:
                    fault = r.choice(FAULT_KINDS[:3])
        good = [p for p in s["products"] if not p["lapsed"]]
        product = good[0] if len(good) == 1 else r.choice(good)
        tpl = TEMPLATES[product["template"]]
        if fault == "mass_balance" and not tpl["steps"]:
            fault = "oversold"
        if fault == "rating_invalid":
            product = next(p for p in s["products"] if p["lapsed"])
        sid, plant = s["id"], s["plant"]
        base = f"{s['pfx']}-{self.tag}-{n:05d}"
        t = _dt((self.start + timedelta(days=_ri(r, 0, self.span_days))).isoformat(), _ri(r, 6, 9),
                r.choice((0, 15, 30, 45)))
        unit = tpl["unit"]
        lo, hi = tpl["harvest"]

        def amount() -> float:
            v = r.uniform(lo, hi)
            return float(round(v)) if unit == "unit" else (round(v, 2) if unit == "t" else round(v * 2) / 2)

        # harvest from one garden, or two (a blend) when the template blends and there are two gardens
        gardens = s["areas"][:]
        r.shuffle(gardens)
        n_h = 2 if tpl.get("blend") and len(gardens) >= 2 and r.random() < 0.7 else 1
        harvested = []
        for k in range(n_h):
            lot = f"{base}-H{k + 1}"
            area = gardens[k] if gardens else f"VN-{s.get('short', 'XX')}-NOAREA"
            if fault == "area_unregistered" and k == 0:
                area = f"VN-{s.get('short', 'XX')}-KDK-{n:05d}"  # never registered
            q = {"value": amount(), "unit": unit}
            crates = [f"{lot}#{c + 1:02d}" for c in range(_ri(r, 0, 4))]
            ev = self.emit("harvest", {"lot": lot, "area_code": area, "crop": tpl["crop"], "quantity": q,
                                       "crate_tags": crates}, sid, t + timedelta(minutes=40 * k), user=_user(r))
            if fault == "area_unregistered" and k == 0:
                self._fault(fault, lot, ev)
            harvested.append((lot, q))
        t += timedelta(hours=_ri(r, 2, 6))
        for lot, q in harvested:
            self.emit("receive", {"lot": lot, "quantity": dict(q), "from_facility": None,
                                  "document_ref": f"PN-{lot}" if r.random() < 0.5 else None},
                      sid, t, facility=plant, user=_user(r))
            t += timedelta(minutes=_ri(r, 5, 40))

        # processing: each step per lot; a blend joins the lots after the first step
        current = harvested
        for si, (process, ylo, yhi, hlo, hhi, out_unit) in enumerate(tpl["steps"]):
            nxt = []
            hours = r.uniform(hlo, hhi)
            for k, (lot, q) in enumerate(current):
                out_lot = f"{base}-{process[0].upper()}{si + 1}{k + 1 if len(current) > 1 else ''}"
                ou = out_unit or q["unit"]
                in_base = q["value"] * (1000 if q["unit"] == "t" else 1)
                if out_unit is None:
                    ov = _floor1(q["value"] * r.uniform(ylo, yhi)) if q["unit"] != "t" else round(q["value"] * r.uniform(ylo, yhi), 3)
                elif out_unit == "unit":
                    ov = float(max(1, int(in_base * r.uniform(ylo, yhi) / (2.5 if process == "weaving" and
                                                                           tpl["crop"] == "cói" else 5))))
                else:
                    ov = _floor1(in_base * r.uniform(ylo, yhi)) or 0.1
                is_fault = fault == "mass_balance" and si == 0 and k == 0
                if is_fault:
                    ou = q["unit"]
                    # more out than in: well past any yield bound (cooking and brewing add water)
                    ov = round(q["value"] * (r.uniform(8, 10) if process in ("cooking", "brewing") else r.uniform(1.5, 2.5)), 1)
                oq = {"value": ov, "unit": ou}
                ev = self.emit("transform", {"process": process, "inputs": [{"lot": lot, "quantity": dict(q)}],
                                             "outputs": [{"lot": out_lot, "quantity": oq}],
                                             "duration_hours": round(hours, 1)},
                               sid, t + timedelta(hours=hours), facility=plant, user=_user(r))
                if is_fault:
                    self._fault(fault, out_lot, ev)
                nxt.append((out_lot, oq))
            t += timedelta(hours=hours + _ri(r, 1, 12))
            if si == 0 and len(nxt) > 1:  # blend the gardens' lots
                blend = f"{base}-B"
                total = sum(x[1]["value"] for x in nxt)
                bq = {"value": _floor1(total * r.uniform(0.97, 0.995)), "unit": nxt[0][1]["unit"]}
                self.emit("transform", {"process": "blending",
                                        "inputs": [{"lot": lot, "quantity": dict(q)} for lot, q in nxt],
                                        "outputs": [{"lot": blend, "quantity": bq}], "duration_hours": round(r.uniform(1, 3), 1)},
                          sid, t, facility=plant, user=_user(r))
                t += timedelta(hours=_ri(r, 2, 8))
                nxt = [(blend, bq)]
            current = nxt

        # split (black garlic into pack lots)
        if tpl.get("split") and current[0][1]["value"] >= 20:
            lot, q = current[0]
            parts = _ri(r, 2, 3)
            avail = q["value"] * 0.995
            shares = [r.uniform(0.8, 1.2) for _ in range(parts)]
            outs = [(f"{base}-P{k + 1}", {"value": _floor1(avail * w / sum(shares)), "unit": q["unit"]})
                    for k, w in enumerate(shares)]
            used = {"value": round(sum(o[1]["value"] for o in outs), 1), "unit": q["unit"]}
            self.emit("transform", {"process": "splitting", "inputs": [{"lot": lot, "quantity": used}],
                                    "outputs": [{"lot": ol, "quantity": oq} for ol, oq in outs],
                                    "duration_hours": round(r.uniform(1, 4), 1)}, sid, t, facility=plant)
            t += timedelta(hours=_ri(r, 2, 10))
            current = outs

        if tpl["inspect"]:
            self._inspect(current[0][0], product["group"], sid, t)
            t += timedelta(days=_ri(r, 1, 3))

        # package, ship, sell each final lot
        for li, (lot, q) in enumerate(current):
            self._sell_lot(lot, q, tpl, product, sid, plant, s, t + timedelta(hours=3 * li), fault if li == 0 else None)

    def _inspect(self, lot: str, group: str, sid: str, t: datetime) -> None:
        r = self.rng
        params = []
        for name, a, b, limit in PARAMS.get(group, []):
            value = "KPH" if a is None else f"{r.uniform(a, b):.2f}"
            params.append({"name": name, "value": value, "limit": limit, "passed": True})
        self.emit("inspect", {"lot": lot, "lab": r.choice(LABS), "result": "pass", "parameters": params,
                              "certificate_no": f"KQ-{t.year}-{_ri(r, 1000, 99999)}"}, sid, t)

    def _sell_lot(self, lot: str, q: dict, tpl: dict, product: dict, sid: str, plant: str, s: dict, t: datetime,
                  fault: str | None) -> None:
        r = self.rng
        base_v = q["value"] * (1000 if q["unit"] == "t" else 1)
        pack = tpl["pack"] if q["unit"] != "unit" else 1
        units = int(base_v / pack + 1e-9)
        if units < 1:
            return
        prod = t.date()
        if fault == "rating_invalid":  # package after the product's rating lapsed
            prod = max(prod, date.fromisoformat(product["valid_to"]) + timedelta(days=1))
            t = _dt(prod.isoformat(), 8)
        expiry = prod + timedelta(days=product["shelf"]) if product["shelf"] else None
        stamps = units if r.random() < 0.8 else 0
        pq = None
        if q["unit"] != "unit":
            pq = {"value": round(units * pack / (1000 if q["unit"] == "t" else 1), 3), "unit": q["unit"]}
        ev = self.emit("package", {"lot": lot, "gtin": product["gtin"], "units": units, "quantity": pq,
                                   "production_date": prod.isoformat(),
                                   "expiry_date": expiry.isoformat() if expiry else None, "stamps_requested": stamps},
                       sid, t, facility=plant, user=_user(r))
        if fault == "rating_invalid":
            self._fault(fault, lot, ev)
        t += timedelta(days=_ri(r, 1, 3), hours=_ri(r, 0, 6))
        # ship to 1-3 points of sale
        destinations = [self.showroom(s["short"]) if "short" in s else "QV-DINHHOA"] + ["POSTMART", "VOSO"]
        r.shuffle(destinations)
        destinations = destinations[:_ri(r, 1, 3)]
        shippable = int(units * r.uniform(0.6, 1.0))
        last_day = (expiry - timedelta(days=1)) if expiry else None
        shipments = []
        left = shippable
        for k, dest in enumerate(destinations):
            n = left if k == len(destinations) - 1 else int(left * r.uniform(0.3, 0.7))
            if n < 1:
                continue
            left -= n
            ev = self.emit("ship", {"lot": lot, "units": n, "to_facility": dest, "carrier": r.choice(CARRIERS),
                                    "document_ref": f"PX-{_ri(r, 1000, 99999)}"}, sid, t + timedelta(hours=2 * k),
                           facility=plant, user=_user(r))
            shipments.append((dest, n, t + timedelta(hours=2 * k)))
        if fault == "ship_after_recall" and shipments:
            rt = shipments[-1][2] + timedelta(days=_ri(r, 1, 4))
            rec = self.emit("recall", {"scope": "lot", "target": lot, "reason": r.choice(RECALL_REASONS),
                                       "authority": "Chi cục Quản lý chất lượng Nông Lâm sản và Thủy sản"}, OFFICE, rt)
            self.recalls.append({"lot": lot, "event_id": rec["event_id"]})
            ev = self.emit("ship", {"lot": lot, "units": max(1, units - shippable), "to_facility": shipments[0][0],
                                    "carrier": r.choice(CARRIERS), "document_ref": None}, sid,
                           rt + timedelta(hours=_ri(r, 2, 30)), facility=plant)
            self._fault(fault, lot, ev)
            return
        sold_total, last_sell = 0, None
        for dest, n, st in shipments:
            remaining = int(n * r.uniform(0.4, 1.0))
            day = st
            while remaining > 0:
                day = day + timedelta(days=_ri(r, 1, 9), hours=_ri(r, 0, 8))
                if last_day and day.date() > last_day:
                    break
                k = min(remaining, max(1, int(n * r.uniform(0.1, 0.5))))
                ev = self.emit("sell", {"lot": lot, "units": k, "point_of_sale": dest}, sid, day, facility=dest)
                if last_sell is None or ev["occurred_at"] > last_sell["occurred_at"]:
                    last_sell = ev
                remaining -= k
                sold_total += k
        if fault == "oversold":
            day = (last_sell and datetime.fromisoformat(last_sell["occurred_at"]) or t) + timedelta(days=1)
            if last_day and day.date() > last_day:
                day = _dt(last_day.isoformat(), 12)
            extra = units - sold_total + _ri(r, 1, 20)
            ev = self.emit("sell", {"lot": lot, "units": extra, "point_of_sale": shipments[0][0] if shipments else "POSTMART"},
                           sid, day, facility=shipments[0][0] if shipments else "POSTMART")
            self._fault(fault, lot, ev)
        elif fault is None and r.random() < 0.01 and last_sell is not None:  # an occasional recall, after the sales
            rt = datetime.fromisoformat(last_sell["occurred_at"]) + timedelta(days=_ri(r, 1, 10))
            rec = self.emit("recall", {"scope": "lot", "target": lot, "reason": r.choice(RECALL_REASONS),
                                       "authority": "Chi cục Quản lý chất lượng Nông Lâm sản và Thủy sản"}, OFFICE, rt)
            self.recalls.append({"lot": lot, "event_id": rec["event_id"]})

    def _fault(self, kind: str, lot: str, ev: dict) -> None:
        self.faults.append({"rule": FAULT_RULE[kind], "kind": kind, "lot": lot, "event_id": ev["event_id"]})


_UUID_CLEAR = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_UUID_SET = (0x8000 << 48) | (4 << 76)


def _ri(r: random.Random, a: int, b: int) -> int:
    """A uniform integer in [a, b] (faster than randint, same determinism)."""
    return a + int(r.random() * (b - a + 1))


def _user(r: random.Random) -> str:
    return f"nv{_ri(r, 1, 40):02d}"


def _base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, d = divmod(n, 36)
        out = digits[d] + out
        if n == 0:
            return out


_ASCII = str.maketrans("àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ"
                       "ÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬÈÉẺẼẸÊỀẾỂỄỆÌÍỈĨỊÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢÙÚỦŨỤƯỪỨỬỮỰỲÝỶỸỴĐ",
                       "aaaaaaaaaaaaaaaaaeeeeeeeeeeeiiiiiooooooooooooooooouuuuuuuuuuuyyyyyd"
                       "AAAAAAAAAAAAAAAAAEEEEEEEEEEEIIIIIOOOOOOOOOOOOOOOOOUUUUUUUUUUUYYYYYD")


def _ascii(s: str) -> str:
    return s.translate(_ASCII)


def _slug(s: str) -> str:
    return "-".join(_ascii(s).upper().split())


def generate_detailed(subjects: int = 3, lots: int = 10, seed: int = 1, faulty: float = 0.02) -> Generated:
    """Like :func:`generate`, also telling which faults (rule, lot, event id) and recalls were injected."""
    if subjects < 1:
        raise ValueError("subjects must be ≥ 1")
    if lots < 0:
        raise ValueError("lots must be ≥ 0")
    if not 0 <= faulty <= 1:
        raise ValueError("faulty must be within 0..1")
    g = _Synth(seed, faulty)
    g.register_points_of_sale(_dt((g.start - timedelta(days=1500)).isoformat(), 9))
    subs = []
    for s in SEED_SUBJECTS[:subjects]:
        d = g.register_seed(s)
        d["short"] = {"VN-69": "TN", "VN-20": "TB", "VN-21": "TH"}[d["province"]]
        subs.append(d)
    for i in range(len(subs), subjects):
        subs.append(g.synthetic_subject(i))
    g.subjects = subs
    producing = [s for s in subs if s["areas"] and any(not p["lapsed"] for p in s["products"])]
    for n in range(lots):
        s = producing[n] if n < min(len(SEED_SUBJECTS), len(producing)) else g.rng.choice(producing)
        g.chain(n + 1, s)
    return Generated(_ordered(g.events), g.faults, g.recalls)


def generate(subjects: int = 3, lots: int = 10, seed: int = 1, faulty: float = 0.02) -> list[dict]:
    """Events of ``subjects`` subjects and ``lots`` lot chains, in the order they happened. Deterministic."""
    return generate_detailed(subjects, lots, seed, faulty).events


def to_jsonl(events: Iterable[dict]) -> bytes:
    """One JSON object per line, UTF-8 (Vietnamese as is), keys in schema order: the same events give the same bytes."""
    enc = _ENCODER.encode
    return "".join([enc(ev) + "\n" for ev in events]).encode("utf-8")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def from_jsonl(data: bytes | str) -> list[dict]:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return [json.loads(line) for line in text.splitlines() if line.strip()]
