"""Casting a ballot (full page or htmx fragment), the results page, downloads and receipt checks."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from app import htmx, web
from app.db import run_db
from app.proposals.models import Option, Proposal, State
from app.proposals.queries import NotFound, get_visible
from app.templating import render, see_other
from app.voting import ballots as ballot_rules
from app.voting import notify, services
from app.voting.breakdown import for_display
from app.voting.results import score_table
from app.voting.services import VotingError

RECEIPT_COOKIE = "plenary_receipt"


def _visible(session: Any, request: Request, proposal_id: int) -> Proposal:
    """The proposal, with its options, if the signed-in member may see it; 404 otherwise (drafts and other
    audiences included). One prebuilt statement checks both (proposals.queries.get_visible)."""
    try:
        return get_visible(session, web.require_member(request), int(proposal_id), groups=False)
    except NotFound:
        raise HTTPException(404) from None


async def cast(request: Request) -> Response:
    me = web.require_member(request)
    proposal_id = request.path_params["proposal_id"]
    data = await web.form(request)
    settings = web.settings(request)
    db = web.db(request)

    def do() -> tuple[services.VotePanel, str | None, str | None, int]:
        # The proposal with its options, visibility checked in the same query; then the cast's own three
        # statements and the confirmation's two, in one transaction.
        with db.begin() as s:
            try:
                p = get_visible(s, me, proposal_id, groups=False)
            except NotFound:
                raise HTTPException(404) from None
            options = list(p.options)
            option_ids = [o.id for o in options]
            try:
                raw = ballot_rules.choice_from_form(p.method, option_ids, data, data.getlist)
                result = services.cast_ballot(s, settings, proposal_id=p.id, member_id=me.id, raw_choice=raw,
                                              option_ids=option_ids)
                notify.confirm_vote(s, settings, p, member_id=me.id, choice=raw, options=options,
                                    member=(me.email, me.name))
            except ballot_rules.BallotError as exc:
                error, status, receipt = str(exc), 400, None
            except VotingError as exc:
                error, status, receipt = str(exc), exc.status, None
            else:
                error, status, receipt = None, 200, result.receipt
        if error is None:
            with db.read_connection() as conn:
                return services.panel_after_cast(conn, p, options, result.choice), None, receipt, status
        with db.read() as s:
            p = s.get(Proposal, proposal_id)
            panel = services.vote_panel(s, p, me.id)
        return panel, error, receipt, status

    panel, error, receipt, status = await run_db(do)
    panel.error, panel.receipt = error, receipt
    if error and not panel.voted:
        panel.form = {k: v for k, v in data.items() if isinstance(v, str) and k != "csrf_token"}
    if htmx.is_partial(request):
        return render(request, "voting/_vote_panel.html", {"panel": panel}, status_code=status)
    if error:
        return render(request, "voting/vote_error.html", {"panel": panel, "error": error}, status_code=status)
    response = see_other(request.url_for("proposals:detail", proposal_id=proposal_id).path + "#vote-panel",
                         "Your vote is recorded.")
    # The receipt is shown once on the next page; it lives in a short cookie scoped to this proposal.
    response.set_cookie(RECEIPT_COOKIE, receipt or "", max_age=120, httponly=True, samesite="lax",
                        secure=web.settings(request).secure_cookies, path=f"/proposals/{proposal_id}")
    return response


async def tally(request: Request) -> Response:
    """The turnout and tally part of the vote panel, for an open page whose event stream said "tally". What it
    shows is decided here as on the page (`tally_visible`), whoever asks. Without htmx: the page itself."""
    me = web.require_member(request)
    proposal_id = request.path_params["proposal_id"]
    if not htmx.is_partial(request):
        url = request.url_for("proposals:detail", proposal_id=proposal_id).path + "#vote-panel"
        return RedirectResponse(url, status_code=303)

    def load() -> services.TallyView:
        with web.db(request).read() as s:
            p = _visible(s, request, proposal_id)
            return services.tally_view(s, p, me.id)

    return render(request, "voting/_tally.html", {"panel": await run_db(load)})


def pop_receipt(request: Request, response: Response) -> None:
    """For the proposal page: move a just-issued receipt from its cookie into the page, once."""
    if request.cookies.get(RECEIPT_COOKIE):
        response.delete_cookie(RECEIPT_COOKIE, path=request.url.path)


def receipt_from_cookie(request: Request) -> str | None:
    value = request.cookies.get(RECEIPT_COOKIE, "")
    return value if len(value) == 19 else None


async def results(request: Request) -> Response:
    proposal_id = request.path_params["proposal_id"]
    me = web.require_member(request)

    def load() -> dict[str, Any]:
        from app.actions.services import is_first_view, record_first_view

        db = web.db(request)
        with db.read() as s:
            p = _visible(s, request, proposal_id)
            first_view = is_first_view(s, me.id, p)  # the funnel's "opened": reading the results is seeing it
            ctx = _results_context(s, p)
        if first_view:
            record_first_view(db, me.id, proposal_id=p.id)
        return ctx

    def _results_context(s: Any, p: Proposal) -> dict[str, Any]:
        if p.state != State.CLOSED:
            panel = services.vote_panel(s, p, me.id)
            result = panel.tally if panel.show_tally else None
            return {"proposal": p, "panel": panel, "result": result, "breakdown": [],
                    "scores": score_table(result), "receipts": [], "open_ballot_count": 0, "groups": {}}
        from app.actions.services import steps_for
        from app.members.models import Group

        groups = {g.id: g.name for g in s.query(Group)}
        # Served from the stored result: what the page shows does not grow with the number of ballots.
        # A long list of receipts gets pages of its own, and an open ballot's list is the CSV download.
        inline = p.ballots_counted <= services.INLINE_RECEIPTS
        return {"proposal": p, "panel": None, "result": p.result,
                "breakdown": for_display(p.result or {}, p.secret), "scores": score_table(p.result),
                "steps": steps_for(s, me, proposal_id=p.id), "tz": request.app.state.org_tz or "UTC",
                "receipts": services.receipts(s, p) if inline else None,
                "open_ballot_count": 0 if p.secret else p.ballots_counted, "groups": groups}

    return render(request, "voting/results.html", await run_db(load))


async def receipts(request: Request) -> Response:
    """Every counted ballot's receipt fingerprint, a thousand a page, in fingerprint order."""
    proposal_id = request.path_params["proposal_id"]
    raw = request.query_params.get("page", "1")
    page = int(raw) if raw.isdigit() and len(raw) < 7 else 1

    def load() -> dict[str, Any]:
        with web.db(request).read() as s:
            p = _visible(s, request, proposal_id)
            if p.state != State.CLOSED:
                raise HTTPException(404, "Receipts are published when voting closes.")
            pages = max(1, -(-p.ballots_counted // services.RECEIPTS_PAGE))
            current = min(max(1, page), pages)
            return {"proposal": p, "receipts": services.receipts(s, p, page=current), "page": current,
                    "pages": pages, "first": (current - 1) * services.RECEIPTS_PAGE + 1}

    return render(request, "voting/receipts.html", await run_db(load))


async def results_json(request: Request) -> Response:
    p, result, groups = await _closed_result(request)
    result["breakdown"] = [g | {"group": groups.get(g["group_id"], "Former group")}
                           for g in for_display(result, p.secret)]
    return JSONResponse({"proposal": {"id": p.id, "public_id": p.public_id, "title": p.title,
                                      "method": p.method, "secret": p.secret,
                                      "closed_at": p.closed_at.isoformat() if p.closed_at else None},
                         "final": p.state == State.CLOSED, "result": result},
                        headers={"content-disposition": f'attachment; filename="result-{p.id}.json"'})


async def results_csv(request: Request) -> Response:
    """The counts; for score voting each score's ballots; then the breakdown by group, suppressed as on the
    page (a hidden cell is "<5", a hidden group "hidden")."""
    p, result, groups = await _closed_result(request)
    buf = io.StringIO()
    w = csv.writer(buf)
    scores = score_table(result)
    if scores:
        top = len(scores[0]["distribution"]) if scores else 0
        w.writerow(["option", "ballots", "average", *(f"score {n}" for n in range(top)), "not scored"])
        for row, dist in zip(result.get("rows", []), scores, strict=True):
            w.writerow([_cell(row["label"]), row["count"], row["average"], *dist["distribution"], dist["unscored"]])
    else:
        w.writerow(["option", "votes", "percent"])
        for row in result.get("rows", []):
            w.writerow([_cell(row["label"]), row["count"], row["percent"]])
    breakdown = for_display(result, p.secret)
    if breakdown:
        labels = next(([c["label"] for c in g["cells"]] for g in breakdown if g["cells"]), [])
        w.writerow([])
        w.writerow(["group", "ballots", *(_cell(label) for label in labels)])
        for g in breakdown:
            name = _cell(groups.get(g["group_id"], "Former group"))
            if g["hidden"]:
                w.writerow([name, "hidden", *("" for _ in labels)])
            else:
                w.writerow([name, g["ballots"], *("<5" if c["count"] is None else c["count"] for c in g["cells"])])
    return _csv(buf.getvalue(), f"result-{p.id}.csv")


def _open_ballots(request: Request) -> tuple[Proposal, list[tuple[str, str]]]:
    """Who voted what, in words: open ballots only, after close only, for members who may see the proposal."""
    proposal_id = request.path_params["proposal_id"]
    with web.db(request).read() as s:
        p = _visible(s, request, proposal_id)
        if p.secret or p.state != State.CLOSED:
            raise HTTPException(404)
        labels = {str(o.id): o.label for o in s.query(Option).filter(Option.proposal_id == p.id)}
        return p, [(name, ballot_rules.describe(choice, labels, p.method))
                   for name, choice in services.open_ballots(s, p)]


async def ballots_csv(request: Request) -> Response:
    p, rows = await run_db(_open_ballots, request)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["member", "choice"])
    for name, choice in rows:
        w.writerow([_cell(name), _cell(choice)])
    return _csv(buf.getvalue(), f"ballots-{p.id}.csv")


async def ballots_json(request: Request) -> Response:
    p, rows = await run_db(_open_ballots, request)
    return JSONResponse({"proposal": {"id": p.id, "public_id": p.public_id, "title": p.title, "method": p.method},
                         "ballots": [{"member": name, "choice": choice} for name, choice in rows]},
                        headers={"content-disposition": f'attachment; filename="ballots-{p.id}.json"'})


async def check_receipt(request: Request) -> Response:
    proposal_id = request.path_params["proposal_id"]
    data = await web.form(request)
    code = web.text(data, "receipt", 100)

    def do() -> tuple[Proposal, bool, str]:
        with web.db(request).read() as s:
            p = _visible(s, request, proposal_id)
            found, choice = services.check_receipt(s, p, code)
            labels = {str(o.id): o.label for o in s.query(Option).filter(Option.proposal_id == p.id)}
            return p, found, ballot_rules.describe(choice, labels, p.method) if choice is not None else ""

    p, found, choice = await run_db(do)
    ctx = {"proposal": p, "found": found, "choice": choice, "checked": True}
    name = "voting/_receipt_check.html" if htmx.is_partial(request) else "voting/receipt.html"
    return render(request, name, ctx, status_code=200 if found else 404)


async def _closed_result(request: Request) -> tuple[Proposal, dict[str, Any], dict[int, str]]:
    """The proposal, a copy of the result this member may see now, and the names of the groups: the stored
    result after close; before close the tally so far only where the proposal's page shows it (an open ballot
    with a live tally, or shown after voting to a member who has voted); otherwise 404."""
    from app.members.models import Group

    proposal_id = request.path_params["proposal_id"]
    me = web.require_member(request)

    def load() -> tuple[Proposal, dict[str, Any], dict[int, str]]:
        with web.db(request).read() as s:
            p = _visible(s, request, proposal_id)
            groups = {g.id: g.name for g in s.query(Group)}
            if p.state == State.CLOSED and p.result is not None:
                return p, p.result, groups
            if p.state == State.OPEN and services.tally_visible(
                    p, bool(services.voted_proposal_ids(s, me.id, [p.id]))):
                options = list(s.query(Option).filter(Option.proposal_id == p.id).order_by(Option.position))
                return p, services.live_result(s, p, options), groups
            raise HTTPException(404, "Results are published when voting closes.")

    p, result, groups = await run_db(load)
    return p, json.loads(json.dumps(result)), groups


def _cell(value: str) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas; a leading quote keeps them text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv(text: str, filename: str) -> Response:
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{filename}"'})
