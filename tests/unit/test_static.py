"""Vendored files are the ones their checksums name, and the pages load only what exists."""

from __future__ import annotations

import hashlib
import re

import pytest

from app.settings import ROOT


@pytest.mark.parametrize("folder", [ROOT / "static" / "vendor", ROOT / "tests" / "browser" / "vendor"])
def test_vendored_checksums(folder):
    lines = (folder / "SHA256SUMS").read_text().split("\n")
    entries = [line.split() for line in lines if line.strip()]
    assert entries
    for digest, name in entries:
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_base_template_references_existing_static_files():
    base = (ROOT / "templates" / "base.html").read_text()
    for path in re.findall(r"url_for\('static', path='([^']+)'\)", base):
        assert (ROOT / "static" / path).is_file(), path


def test_templates_never_mark_unsanitized_values_safe():
    for path in (ROOT / "templates").rglob("*.html"):
        assert "|safe" not in path.read_text().replace(" ", ""), path
