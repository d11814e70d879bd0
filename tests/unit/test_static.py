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


def test_templates_reference_existing_static_files():
    found = set()
    for template in (ROOT / "templates").rglob("*.html"):
        for path in re.findall(r"url_for\('static', path='([^']+)'\)", template.read_text()):
            assert (ROOT / "static" / path).is_file(), (template.name, path)
            found.add(path)
    assert {"vendor/htmx-2.0.11.min.js", "vendor/htmx-ext-sse-2.2.4.min.js", "live.js"} <= found


def test_every_vendored_file_is_listed_in_the_readme():
    folder = ROOT / "static" / "vendor"
    readme = (folder / "README.md").read_text()
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            name = line.split()[1]
            assert f"`{name}`" in readme, name
            version = re.search(r"-(\d+\.\d+\.\d+)\.min\.", name)
            assert version and version.group(1) in readme, name


def test_templates_never_mark_unsanitized_values_safe():
    for path in (ROOT / "templates").rglob("*.html"):
        assert "|safe" not in path.read_text().replace(" ", ""), path
