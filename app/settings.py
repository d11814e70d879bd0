"""Every setting Plenary reads, from the environment (and an optional `.env` file), once at start-up.

The README's configuration table lists exactly these variables; `tests/unit/test_settings.py` checks that the
table and `FIELDS` agree, so a new setting cannot go undocumented.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


class SettingsError(ValueError):
    """A setting has a value Plenary refuses to start with."""


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in {"1", "true", "yes", "on"}:
        return True
    if v in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"not a boolean: {value!r}")


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def _dev_secret(var_dir: Path) -> str:
    """A per-installation secret kept under var/ so dev sessions survive a restart."""
    path = var_dir / "secret_key"
    if path.is_file():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


@dataclass(frozen=True)
class Settings:
    """Plenary's configuration. Build it with `Settings.from_env()`; tests pass values directly."""

    database_url: str = ""
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = ""
    env: str = "dev"
    smtp_url: str = ""
    mail_from: str = "Plenary <plenary@localhost>"
    trusted_hosts: tuple[str, ...] = ()
    run_worker: bool = True
    rate_limit_count: int = 10
    rate_limit_window_s: int = 900
    password_hash_rounds: int = 2
    password_hash_memory_kib: int = 19456
    session_days: int = 30
    reminder_hours: int = 24
    # Replies by email: the domain of the reply addresses ("" = the base URL's host, "off" = no replies)
    reply_domain: str = ""
    inbound_host: str = "127.0.0.1"
    inbound_port: int = 2525
    inbound_secret: str = ""  # the webhook's shared secret; "" = webhook off
    inbound_max_kb: int = 5120
    var_dir: Path = field(default=VAR)
    log_level: str = "INFO"
    db_threads: int = 0  # at most at once; 0: twice the cores, at least 4 (app/db.py, Lanes)

    # env var name -> (field name, parser); the README's table must list the same names
    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(_read_dotenv(ROOT / ".env"))
        env.update(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for var, (name, parse) in FIELDS.items():
            if var in env and env[var] != "":
                try:
                    values[name] = parse(env[var])
                except (ValueError, SettingsError) as exc:
                    raise SettingsError(f"{var}: {exc}") from exc
        return cls(**values).resolved()  # type: ignore[arg-type]

    def resolved(self) -> Settings:
        """Fill derived defaults and refuse insecure combinations outside dev."""
        var_dir = Path(self.var_dir)
        changes: dict[str, object] = {}
        if not self.database_url:
            changes["database_url"] = f"sqlite:///{var_dir / 'plenary.db'}"
        if self.env not in {"dev", "test", "production"}:
            raise SettingsError(f"PLENARY_ENV must be dev, test or production, not {self.env!r}")
        parts = urlsplit(self.base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise SettingsError(f"PLENARY_BASE_URL must be an http(s) URL, not {self.base_url!r}")
        if not self.secret_key:
            if self.env == "production":
                raise SettingsError("PLENARY_SECRET_KEY must be set in production")
            changes["secret_key"] = _dev_secret(var_dir)
        elif len(self.secret_key) < 32:
            raise SettingsError("PLENARY_SECRET_KEY must be at least 32 characters")
        if self.env == "production" and parts.scheme != "https":
            raise SettingsError("PLENARY_BASE_URL must be https in production")
        if self.smtp_url:
            from app.mail.sender import SmtpConfig

            try:
                SmtpConfig.from_url(self.smtp_url)
            except ValueError as exc:
                raise SettingsError(str(exc)) from exc
        if not self.trusted_hosts:
            changes["trusted_hosts"] = (parts.hostname,)
        if self.reply_domain and self.reply_domain.lower() != "off" and not _is_domain(self.reply_domain):
            raise SettingsError(f"PLENARY_REPLY_DOMAIN must be a domain name (or off), not {self.reply_domain!r}")
        if self.inbound_secret and len(self.inbound_secret) < 32:
            raise SettingsError("PLENARY_INBOUND_SECRET must be at least 32 characters")
        return _replace(self, **changes) if changes else self

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def base_origin(self) -> str:
        p = urlsplit(self.base_url)
        return f"{p.scheme}://{p.netloc}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def reply_to_domain(self) -> str | None:
        """The domain of reply addresses (`reply+TOKEN@domain`), or None when members cannot reply by email.
        Off unless set: a Reply-To that no `plenary inbound` or webhook answers would bounce every reply."""
        if not self.reply_domain or self.reply_domain.lower() == "off":
            return None
        return self.reply_domain.lower()

    def url(self, path: str) -> str:
        """An absolute link for emails and the console: always built from the base URL, never the Host header."""
        return self.base_url.rstrip("/") + path


def _replace(s: Settings, **changes: object) -> Settings:
    data = {f.name: getattr(s, f.name) for f in fields(s)}
    data.update(changes)
    return Settings(**data)  # type: ignore[arg-type]


_DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$",
                     re.IGNORECASE)


def _is_domain(value: str) -> bool:
    """A DNS name with at least one dot whose last label is not a number (so not an IP address)."""
    return bool(_DOMAIN.match(value)) and value.lower() != "localhost"


def _db_threads(value: str) -> int:
    n = int(value)
    if not 1 <= n <= 256:
        raise SettingsError(f"must be a whole number from 1 to 256, not {value!r}")
    return n


def _port(value: str) -> int:
    n = int(value)
    if not 1 <= n <= 65535:
        raise SettingsError(f"must be a port number from 1 to 65535, not {value!r}")
    return n


def _hosts(value: str) -> tuple[str, ...]:
    return tuple(h.strip() for h in value.split(",") if h.strip())


def _whole_number(value: str) -> int:
    n = int(value)
    if n < 0:
        raise SettingsError(f"must be 0 or a positive whole number, not {value!r}")
    return n


def _positive_int(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise SettingsError(f"must be a positive whole number, not {value!r}")
    return n


FIELDS: dict[str, tuple[str, object]] = {
    "PLENARY_DATABASE_URL": ("database_url", str),
    "PLENARY_BASE_URL": ("base_url", lambda v: v.rstrip("/")),
    "PLENARY_SECRET_KEY": ("secret_key", str),
    "PLENARY_ENV": ("env", str),
    "PLENARY_SMTP_URL": ("smtp_url", str),
    "PLENARY_MAIL_FROM": ("mail_from", str),
    "PLENARY_TRUSTED_HOSTS": ("trusted_hosts", _hosts),
    "PLENARY_RUN_WORKER": ("run_worker", _bool),
    "PLENARY_RATE_LIMIT": ("rate_limit_count", _positive_int),
    "PLENARY_RATE_LIMIT_WINDOW": ("rate_limit_window_s", _positive_int),
    "PLENARY_PASSWORD_ROUNDS": ("password_hash_rounds", _positive_int),
    "PLENARY_PASSWORD_MEMORY_KIB": ("password_hash_memory_kib", _positive_int),
    "PLENARY_SESSION_DAYS": ("session_days", _positive_int),
    "PLENARY_REMINDER_HOURS": ("reminder_hours", _whole_number),
    "PLENARY_REPLY_DOMAIN": ("reply_domain", str.strip),
    "PLENARY_INBOUND_HOST": ("inbound_host", str.strip),
    "PLENARY_INBOUND_PORT": ("inbound_port", _port),
    "PLENARY_INBOUND_SECRET": ("inbound_secret", str),
    "PLENARY_INBOUND_MAX_KB": ("inbound_max_kb", _positive_int),
    "PLENARY_VAR_DIR": ("var_dir", Path),
    "PLENARY_LOG_LEVEL": ("log_level", str.upper),
    "PLENARY_DB_THREADS": ("db_threads", _db_threads),
}
