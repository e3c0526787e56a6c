"""Per-subject API tokens for the HTTP intake API, and who may write what.

* A token is ``ocop_<id>_<secret>``: 8 hex characters naming it (for listing and revoking) and 256 random bits.
  It is shown once, when created; ``<data_dir>/tokens.json`` keeps only its SHA-256 (a plain hash is enough for a
  high-entropy secret: there is nothing to brute-force), the subject it belongs to, and its role.
* Roles: ``subject`` (an OCOP subject's own token: its lots, growing areas, products, facilities) and
  ``provincial`` (the provincial OCOP office: registers subjects and ratings, any master data, and recalls).
  ``settings.provincial_token``, when set, is one more provincial token that needs no file entry.
* :func:`check_write` is the pure rule "may this principal write this event?"; lot ownership (which subject created
  a lot) needs the history and lives in the intake store (:mod:`producers.intake_store`).

``ocop-trace token create --subject S`` / ``--provincial``, ``token list``, ``token revoke ID``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import typer

from ocop_trace.config import Settings
from schemas.events import MASTER_TYPES

SUBJECT = "subject"
PROVINCIAL = "provincial"
ROLES = (SUBJECT, PROVINCIAL)
PROVINCIAL_SUBJECT = "provincial"
"""The actor subject id written by the provincial office's tokens unless one was given at creation."""
TOKEN_PREFIX = "ocop_"
FILE_NAME = "tokens.json"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the subject the token belongs to and its role."""

    subject_id: str
    role: str
    token_id: str

    @property
    def provincial(self) -> bool:
        return self.role == PROVINCIAL


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    subject_id: str
    role: str
    sha256: str
    created_at: str
    note: str = ""
    revoked_at: str | None = None


class Forbidden(Exception):
    """A principal may not write an event: ``field`` names what is not theirs, ``reason`` says why."""

    def __init__(self, field: str, reason: str, message_vi: str | None = None):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.message_vi = message_vi or reason


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """The token file. Reads it again when it changes on disk, so tokens created by the CLI work in a running
    server; writes are atomic (temp file + rename) and the file is private to its owner (0600)."""

    def __init__(self, path: Path, *, provincial_token: str | None = None):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._by_hash: dict[str, TokenRecord] = {}
        self._records: list[TokenRecord] = []
        self._provincial_hash = _digest(provincial_token) if provincial_token else None

    @classmethod
    def from_settings(cls, settings: Settings) -> "TokenStore":
        secret = settings.provincial_token.get_secret_value() if settings.provincial_token else None
        return cls(Path(settings.data_dir) / FILE_NAME, provincial_token=secret)

    # --- reading ----------------------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._records, self._by_hash = None, [], {}
            return
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._stamp:
            return
        raw = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        self._records = [TokenRecord(**r) for r in raw.get("tokens", [])]
        self._by_hash = {r.sha256: r for r in self._records if r.revoked_at is None}
        self._stamp = stamp

    def records(self) -> list[TokenRecord]:
        with self._lock:
            self._load()
            return list(self._records)

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal of a presented token, or None if it is unknown or revoked."""
        if not token:
            return None
        digest = _digest(token)
        if self._provincial_hash and hmac.compare_digest(digest, self._provincial_hash):
            return Principal(PROVINCIAL_SUBJECT, PROVINCIAL, "settings")
        with self._lock:
            self._load()
            rec = self._by_hash.get(digest)
        if rec is None:
            return None
        return Principal(rec.subject_id, rec.role, rec.token_id)

    # --- writing ----------------------------------------------------------------------------------------------
    def _save(self, records: list[TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": 1, "tokens": [asdict(r) for r in records]}
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False, indent=2)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._stamp = None

    def create(self, subject_id: str | None, role: str = SUBJECT, note: str = "") -> tuple[str, TokenRecord]:
        """Make a new token; returns ``(token, record)``. The token itself is not kept anywhere."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        subject = (subject_id or "").strip() or (PROVINCIAL_SUBJECT if role == PROVINCIAL else "")
        if not subject:
            raise ValueError("a subject token needs --subject")
        token_id = secrets.token_hex(4)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        rec = TokenRecord(token_id, subject, role, _digest(token),
                          datetime.now(timezone.utc).isoformat(timespec="seconds"), note)
        with self._lock:
            self._stamp = None
            self._load()
            self._save([*self._records, rec])
        return token, rec

    def revoke(self, token_id: str) -> bool:
        with self._lock:
            self._stamp = None
            self._load()
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            found = False
            out = []
            for r in self._records:
                if r.token_id == token_id and r.revoked_at is None:
                    r = TokenRecord(**{**asdict(r), "revoked_at": now})
                    found = True
                out.append(r)
            if found:
                self._save(out)
            return found


# --------------------------------------------------------------------------------------------------------------------
# who may write what (pure)

# master data a subject may register for itself: event type -> the payload field naming the owner
OWNED_MASTER = {"area": "owner_subject_id", "product": "owner_subject_id", "facility": "owner_subject_id"}
PROVINCIAL_ONLY = frozenset({"subject", "rating"})
PROVINCIAL_SUPPLY = frozenset({"recall"})
_VI_KIND = {"subject": "chủ thể", "rating": "xếp hạng OCOP", "area": "vùng trồng", "product": "sản phẩm",
            "facility": "cơ sở"}


def check_write(principal: Principal, ev: dict) -> None:
    """Raise :class:`Forbidden` unless ``principal`` may write ``ev`` (its actor, its role). Lot and entity ownership
    learned from earlier events is checked by the intake store."""
    actor = (ev.get("actor") or {}).get("subject_id")
    if actor != principal.subject_id:
        raise Forbidden("actor.subject_id",
                        f"a token of subject {principal.subject_id} cannot write events of subject {actor}",
                        f"mã truy cập của chủ thể {principal.subject_id} không được ghi sự kiện của chủ thể {actor}")
    t = ev["event_type"]
    if t in PROVINCIAL_ONLY and not principal.provincial:
        raise Forbidden("event_type", f"only the provincial office may register {t}s",
                        f"chỉ văn phòng OCOP tỉnh mới được đăng ký {_VI_KIND.get(t, t)}")
    if t in MASTER_TYPES:
        if t in OWNED_MASTER and not principal.provincial:
            owner = ev["payload"].get(OWNED_MASTER[t])
            if owner != principal.subject_id:
                raise Forbidden(f"payload.{OWNED_MASTER[t]}",
                                f"a token of subject {principal.subject_id} may only register its own {t}s",
                                f"mã truy cập của chủ thể {principal.subject_id} chỉ được đăng ký "
                                f"{_VI_KIND.get(t, t)} của chính mình")
        return
    if principal.provincial and t not in PROVINCIAL_SUPPLY:
        raise Forbidden("event_type", f"the provincial token may record recalls, not {t} events: use the subject's token",
                        f"mã của tỉnh chỉ ghi được sự kiện thu hồi; sự kiện {t} cần mã của chủ thể")


# --------------------------------------------------------------------------------------------------------------------
# CLI: ocop-trace token ...

token_app = typer.Typer(no_args_is_help=True, help="API tokens of the HTTP intake API / Mã truy cập API.")


@token_app.command("create")
def token_create(
    subject: str = typer.Option(None, "--subject", help="OCOP subject id the token writes for / Mã chủ thể."),
    provincial: bool = typer.Option(False, "--provincial", help="A provincial-office token (subjects, ratings)."),
    note: str = typer.Option("", "--note", help="Free text kept beside the token (who holds it)."),
) -> None:
    """Create a token and print it ONCE (stdout); only its hash is stored / Tạo mã, chỉ hiện một lần."""
    from ocop_trace.config import get_settings

    if not subject and not provincial:
        typer.echo("Cần --subject S hoặc --provincial / Give --subject S or --provincial", err=True)
        raise typer.Exit(2)
    store = TokenStore.from_settings(get_settings())
    token, rec = store.create(subject, PROVINCIAL if provincial else SUBJECT, note)
    typer.echo(token)
    typer.echo(f"Mã {rec.token_id} cho {rec.subject_id} ({rec.role}) — lưu lại ngay, sẽ không hiện lại. "
               f"/ Token {rec.token_id} for {rec.subject_id} ({rec.role}): store it now, it is not shown again. "
               f"Use: Authorization: Bearer <token>", err=True)


@token_app.command("list")
def token_list() -> None:
    """List tokens (ids, subjects, roles; never the secrets) / Danh sách mã."""
    from ocop_trace.config import get_settings

    for r in TokenStore.from_settings(get_settings()).records():
        state = f"revoked {r.revoked_at}" if r.revoked_at else "active"
        typer.echo(f"{r.token_id}\t{r.subject_id}\t{r.role}\t{r.created_at}\t{state}\t{r.note}")


@token_app.command("revoke")
def token_revoke(token_id: str = typer.Argument(..., help="The token id (8 hex characters) from `token list`.")) -> None:
    """Revoke a token / Thu hồi mã."""
    from ocop_trace.config import get_settings

    if not TokenStore.from_settings(get_settings()).revoke(token_id):
        typer.echo(f"Không có mã {token_id} / No active token {token_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Đã thu hồi / Revoked {token_id}")
