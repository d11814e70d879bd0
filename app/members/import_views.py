"""The admin's CSV import pages: upload a file (or paste rows), check the preview, confirm.

Nothing is stored between the two steps: the preview page carries the file itself, compressed and
base64-encoded, in a hidden field, and the confirm step parses and checks it all again inside its write
transaction, because the members may have changed in between. An admin could edit that field, but
confirming runs every check an upload does, with the admin's own rights, so editing it gains nothing.

Template contexts:
- admin/import.html: `error` (str or None), `csv_text` (pasted rows to show again), `limits` (max rows, MB).
- admin/import_preview.html: `preview` (importing.Preview), `content` (the packed file for the confirm form),
  `shown` (rows listed per table at most), `error` (str or None, e.g. why a confirm changed nothing).
"""

from __future__ import annotations

import base64
import binascii
import zlib

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from app import web
from app.db import run_db
from app.members import importing
from app.members.importing import ImportFileError, ImportRefused, ParsedFile, Preview
from app.members.services import MemberError
from app.templating import render, see_other

SHOWN = 500
# The pasted rows and the packed file are single form fields, larger than web.FORM_LIMITS' 1 MB per field;
# the middleware's 6 MB body limit still bounds the whole request.
FIELD_LIMIT = 8 * 1024 * 1024
LIMITS = {"rows": importing.MAX_ROWS, "megabytes": importing.MAX_BYTES // (1024 * 1024)}
DAMAGED = "The import form arrived incomplete or damaged. Upload the file again."


async def admin_import(request: Request) -> Response:
    """GET: the upload form. POST: parse the file and show what importing it would do; nothing is written."""
    web.require_admin(request)
    if request.method == "GET":
        return _upload_page(request)
    data = await _form(request)
    csv_text = web.text(data, "csv_text", FIELD_LIMIT)
    try:
        raw = await _uploaded(data)
    except ImportFileError as exc:
        return _upload_page(request, str(exc), csv_text)
    finally:
        await data.close()  # the upload's temporary file

    def check() -> Preview:
        parsed = importing.parse_csv(raw)
        with web.db(request).read() as s:
            return importing.preview(s, parsed)

    try:
        plan = await run_db(check)
    except ImportFileError as exc:
        return _upload_page(request, str(exc), csv_text)
    return _preview_page(request, plan, raw)


async def admin_import_confirm(request: Request) -> Response:
    """Apply the import in one transaction, then go to the members directory with a summary."""
    me = web.require_admin(request)
    data = await _form(request)
    await data.close()  # only text fields are expected; close any file sent anyway
    skip_errors = web.text(data, "skip_errors", 10) == "1"
    try:
        raw = unpack(web.text(data, "content", FIELD_LIMIT))
    except ImportFileError as exc:
        return _upload_page(request, str(exc))
    settings, ip, org_name = web.settings(request), web.client_ip(request), web.org_name(request)

    def do() -> importing.ImportResult:
        parsed: ParsedFile = importing.parse_csv(raw)
        with web.db(request).begin() as s:
            return importing.apply(s, settings, parsed, actor_id=me.id, ip=ip, org_name=org_name,
                                   skip_errors=skip_errors)

    try:
        result = await run_db(do)
    except ImportFileError as exc:
        return _upload_page(request, str(exc))
    except ImportRefused as exc:
        return _preview_page(request, exc.preview, raw, error=str(exc))
    except MemberError as exc:
        # Another admin changed a member or group between this transaction's checks and its writes.
        return _upload_page(request, f"Nothing was imported: {exc} Upload the file again to see the changes.")
    return see_other(request.url_for("admin:members").path, result.message)


def pack(raw: bytes) -> str:
    """The file as a form field value: zlib-compressed (member lists shrink about 4x) and base64-encoded."""
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def unpack(value: str) -> bytes:
    """The file back from `pack`; ImportFileError if the value is damaged or inflates past the size limit."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(value, validate=True), importing.MAX_BYTES + 1)
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise ImportFileError(DAMAGED) from exc
    if not inflater.eof:
        raise ImportFileError(DAMAGED)
    return raw


async def _form(request: Request) -> FormData:
    # A whole file travels in one field to the confirm step: allow parts up to the request limit.
    return await web.form(request, max_part_size=FIELD_LIMIT)


async def _uploaded(data: FormData) -> bytes:
    """The chosen file's bytes (even if empty, so the parser can say so), else the pasted rows."""
    upload = data.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        return await upload.read(importing.MAX_BYTES + 1)
    pasted = web.text(data, "csv_text", FIELD_LIMIT)
    if pasted.strip():
        return pasted.encode("utf-8")
    raise ImportFileError("Choose a CSV file to upload, or paste the rows.")


def _upload_page(request: Request, error: str | None = None, csv_text: str = "") -> Response:
    return render(request, "admin/import.html", {"error": error, "csv_text": csv_text, "limits": LIMITS},
                  status_code=400 if error else 200)


def _preview_page(request: Request, plan: Preview, raw: bytes, error: str | None = None) -> Response:
    return render(request, "admin/import_preview.html",
                  {"preview": plan, "content": pack(raw), "shown": SHOWN, "error": error},
                  status_code=400 if error else 200)
