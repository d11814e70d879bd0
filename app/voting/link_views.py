"""The page a vote button in an announcement email opens: GET shows the proposal with the option pre-filled and
changes nothing; the form's POST casts (see app/voting/links.py for what the signed link allows)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import web
from app.actions.services import note_view
from app.db import run_db
from app.templating import render
from app.voting import links
from app.voting.services import VotingError

# The link is in the URL: no Referer carries it to another site, and no cache keeps the page.
PRIVATE = {"referrer-policy": "no-referrer", "cache-control": "no-store"}


async def vote_link(request: Request) -> Response:
    token = request.path_params["token"]
    settings = web.settings(request)
    if request.method == "GET":
        def load() -> links.LinkPage:
            with web.db(request).read() as s:
                return links.link_page(s, settings, token)

        try:
            page = await run_db(load)
        except VotingError as exc:
            return _problem(request, exc)
        # The funnel's "opened": this page shows the proposal, reached from the announcement email.
        await run_db(note_view, web.db(request), links.read_vote_token(settings, token).member_id,
                     proposal_id=page.proposal.id, via="email")
        return render(request, "voting/link_vote.html", {"page": page, "error": None}, headers=PRIVATE)

    data = await web.form(request)
    choice = web.text(data, "choice", 20)

    def do() -> tuple[links.LinkPage, str]:
        with web.db(request).begin() as s:
            page, result = links.vote_by_link(s, settings, token, choice)
            return page, result.receipt

    try:
        page, receipt = await run_db(do)
    except VotingError as exc:
        return _problem(request, exc)
    # The receipt is shown once, in this answer to the POST; it is never stored or mailed.
    return render(request, "voting/link_voted.html",
                  {"page": page, "receipt": receipt, "choice_label": dict(page.choices).get(page.chosen, "")},
                  headers=PRIVATE)


def _problem(request: Request, exc: VotingError) -> Response:
    return render(request, "voting/link_problem.html", {"error": str(exc)}, status_code=exc.status,
                  headers=PRIVATE)
