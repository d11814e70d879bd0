"""Settings: every variable is documented in the README table, values are checked, production is strict."""

from __future__ import annotations

import re

import pytest

from app.settings import FIELDS, ROOT, Settings, SettingsError


def readme_vars() -> set[str]:
    text = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `(PLENARY_[A-Z_]+)` \|", text, flags=re.M))


def test_readme_table_lists_exactly_the_settings():
    assert readme_vars() == set(FIELDS)


def test_defaults_for_dev(tmp_path):
    s = Settings.from_env({"PLENARY_VAR_DIR": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path}/plenary.db"
    assert len(s.secret_key) >= 32 and (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert Settings.from_env({"PLENARY_VAR_DIR": str(tmp_path)}).secret_key == s.secret_key
    assert s.trusted_hosts == ("127.0.0.1",) and not s.secure_cookies


def test_production_refuses_insecure_values(tmp_path):
    base = {"PLENARY_VAR_DIR": str(tmp_path), "PLENARY_ENV": "production"}
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        Settings.from_env({**base, "PLENARY_BASE_URL": "https://vote.example.org"})
    with pytest.raises(SettingsError, match="https"):
        Settings.from_env({**base, "PLENARY_SECRET_KEY": "k" * 40})
    s = Settings.from_env({**base, "PLENARY_SECRET_KEY": "k" * 40, "PLENARY_BASE_URL": "https://vote.example.org/"})
    assert s.secure_cookies and s.base_url == "https://vote.example.org" and s.trusted_hosts == ("vote.example.org",)


@pytest.mark.parametrize(("var", "value"), [("PLENARY_RATE_LIMIT", "0"), ("PLENARY_RATE_LIMIT", "ten"),
                                            ("PLENARY_RUN_WORKER", "maybe"), ("PLENARY_ENV", "staging"),
                                            ("PLENARY_BASE_URL", "ftp://x"), ("PLENARY_SECRET_KEY", "short")])
def test_bad_values_name_the_variable(tmp_path, var, value):
    with pytest.raises(SettingsError, match=var.removeprefix("PLENARY_") if var != "PLENARY_ENV" else "ENV"):
        Settings.from_env({"PLENARY_VAR_DIR": str(tmp_path), var: value})
