"""One settings object for the whole project.

Every knob is an ``OCOP_*`` environment variable (or a ``.env`` file in the project root), overridable by CLI
flags. No other module reads ``os.environ``: they take a :class:`Settings` (usually from :func:`get_settings`).
Secrets are ``SecretStr`` so they never show in logs or reprs.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OCOP_", env_file=".env", extra="ignore")

    # --- Kafka -----------------------------------------------------------------------------------------------
    bootstrap: str | None = Field(
        default=None,
        description="Kafka bootstrap servers. Unset: the project's local broker (ocop-trace broker up).",
    )
    topic_prefix: str = Field(default="", description="Prefix for every topic name (tests use a unique one).")
    partitions: int = Field(default=6, ge=1, description="Default partition count for catalog topics.")
    replication_factor: int = Field(default=1, ge=1)

    # --- local broker ------------------------------------------------------------------------------------------
    data_dir: Path = Field(default=PROJECT_ROOT / "var", description="Project-local state (broker, db, tables).")
    kafka_home: Path = Field(default=PROJECT_ROOT / ".kafka", description="Where mvn puts the Kafka jars.")
    broker_port: int = 19092
    controller_port: int = 19093
    broker_heap: str = "512m"

    # --- workers -----------------------------------------------------------------------------------------------
    app_id: str = "ocop-trace"
    worker_web_port: int = 6066
    sink_metrics_port: int = Field(default=6067, ge=0, description="The sink's /metrics and /healthz (0: off).")
    table_store: str = Field(default="rocksdb://", description="faust table store URL (rocksdb:// or memory://).")
    worker_batch_max: int = Field(default=1000, ge=1, description="Most input messages the lots agent folds in one "
                                  "batch (a lot changed by several of them is derived and written once).")
    worker_batch_ms: int = Field(default=50, ge=1, description="How long the lots agent gathers a batch (ms): "
                                 "the most a message waits before its batch starts.")

    # --- read side ---------------------------------------------------------------------------------------------
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; unset: SQLite under data_dir.")

    # --- web ---------------------------------------------------------------------------------------------------
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    resolver_base: str = Field(default="http://127.0.0.1:8000", description="Base URL printed in QR codes.")
    max_body_bytes: int = 256 * 1024
    scan_rate_per_minute: int = 60
    client_salt: SecretStr = SecretStr("ocop-dev-salt-change-me")
    provincial_token: SecretStr | None = None

    # --- stamps ------------------------------------------------------------------------------------------------
    # {"k1": "<hex secret>", ...}; the active key id signs new stamps, all keys verify.
    stamp_keys: SecretStr = SecretStr('{"dev1": "6f636f702d6465762d6b65792d6e6f742d666f722d70726f64756374696f6e"}')
    stamp_active_key: str = "dev1"
    stamp_tag_len: int = Field(default=8, ge=6, le=16, description="Base32 characters of truncated MAC in a serial.")

    # --- copy detection ----------------------------------------------------------------------------------------
    copy_window_seconds: int = 3600
    copy_max_regions: int = 1
    copy_max_devices: int = 8

    # --- audit -------------------------------------------------------------------------------------------------
    audit_key_file: Path | None = Field(
        default=None, description="Ed25519 private key (PEM) signing audit checkpoints; unset: "
                                  "<data_dir>/audit/checkpoint-ed25519.pem (ocop-trace audit keygen).")
    audit_public_key_file: Path | None = Field(
        default=None, description="Ed25519 public key (PEM) the auditor checks checkpoints with; unset: beside "
                                  "the private key (<name>.pub.pem).")

    # --- locale ------------------------------------------------------------------------------------------------
    lang: str = "vi"
    timezone: str = "Asia/Ho_Chi_Minh"
    log_json: bool = False

    @field_validator("lang")
    @classmethod
    def _lang(cls, v: str) -> str:
        if v not in ("vi", "en"):
            raise ValueError("lang must be 'vi' or 'en'")
        return v

    # --- derived -----------------------------------------------------------------------------------------------
    @property
    def local_broker(self) -> bool:
        return not self.bootstrap

    @property
    def bootstrap_servers(self) -> str:
        return self.bootstrap or f"127.0.0.1:{self.broker_port}"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'ocop.sqlite3'}"

    def stamp_key_map(self) -> dict[str, bytes]:
        raw = json.loads(self.stamp_keys.get_secret_value())
        return {kid: bytes.fromhex(secret) for kid, secret in raw.items()}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
