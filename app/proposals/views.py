"""Pages for proposals: the members' list, a proposal, its history, and the admin's form and actions.

Every handler asks `queries` (which applies `can_see`) for the proposal named in the URL, so an id is never
trusted on its own; what a member may not see answers 404, exactly like what does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app import live, web
from app.actions.services import is_first_view, record_first_view
from app.actions.views import proposal_steps as action_steps
from app.comments.queries import section_for as comment_section
from app.db import run_db, utcnow
from app.middleware import CurrentMember, current_member
from app.proposals import queries, services
from app.proposals.diff import word_diff
from app.proposals.display import display_context
from app.proposals.forms import ParsedForm, blank_values, parse_proposal_form, values_from_proposal
from app.proposals.models import Kind, Proposal, State
from app.proposals.queries import NotFound
from app.proposals.services import ProposalError
from app.templating import page_or_fragment, plural, render, see_other
from app.voting.scrub import erase_residue
from app.voting.views import pop_receipt, receipt_from_cookie


def _tz(request: Request) -> str:
    return getattr(request.app.state, "org_tz", None) or "UTC"


def _ctx(request: Request, **extra: Any) -> dict[str, Any]:
    return {**display_context(_tz(request)), **extra}


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 else None


def _pid(request: Request) -> int:
    return int(request.path_params["proposal_id"])


# --- members' pages -----------------------------------------------------------------------------------------

async def proposal_list(request: Request) -> Response:
    me = web.require_member(request)
    qp = request.query_params
    state, group_id, page = qp.get("state", "")[:20], _int(qp.get("group")), _int(qp.get("page")) or 1

    def load() -> queries.Listing:
        with web.db(request).read() as s:
            return queries.list_proposals(s, me, state=state, group_id=group_id, page=page)

    listing = await run_db(load)
    return page_or_fragment(request, "proposals/list.html", "proposals/_list.html",
                            _ctx(request, listing=listing))


async def detail(request: Request, *, errors: dict[str, str] | None = None,
                 values: dict[str, str] | None = None, status: int = 200) -> Response:
    me = web.require_member(request)
    proposal_id = _pid(request)

    def load() -> tuple[queries.Detail, Any, Any]:
        db = web.db(request)
        with db.read() as s:
            d = queries.detail(s, me, proposal_id)
            first_view = is_first_view(s, me.id, d.proposal)  # the funnel's "opened the page"
            loaded = d, comment_section(s, me, d.proposal), action_steps(request, s, me, proposal_id)
        if first_view:
            record_first_view(db, me.id, proposal_id=proposal_id)
        return loaded

    try:
        d, comments, steps = await run_db(load)
    except NotFound:
        raise HTTPException(404) from None
    p = d.proposal
    if d.panel is not None:
        d.panel.receipt = receipt_from_cookie(request)  # shown once, after a vote sent without htmx
    policy_diff = word_diff(p.current_text, p.proposed_text) if p.kind == Kind.POLICY else None
    response = render(request, "proposals/detail.html",
                      _ctx(request, d=d, p=p, panel=d.panel, policy_diff=policy_diff, errors=errors or {},
                           values=values or {}, comments=comments, steps=steps), status_code=status)
    pop_receipt(request, response)
    return response


async def events(request: Request) -> Response:
    """The page's live updates (Server-Sent Events): bare signals that tell an open page which of its parts to
    fetch again. Authorized like the page; a browser that is refused (403, 404) does not retry at once."""
    me = current_member(request)
    if me is None:
        raise HTTPException(403, "Sign in to follow this proposal.")
    proposal_id = _pid(request)

    def load() -> Proposal:
        with web.db(request).read() as s:
            return queries.get_visible(s, me, proposal_id)

    try:
        p = await run_db(load)
    except NotFound:
        raise HTTPException(404) from None
    hub = request.app.state.live
    if hub.streams_of(me.id) >= live.MAX_STREAMS_PER_MEMBER:
        raise HTTPException(429, "Too many pages are following proposals from your account: close some tabs.")
    return live.response(hub, p.id, me.id, is_open=p.state == State.OPEN,
                         resumed=bool(request.headers.get("last-event-id")))


async def history(request: Request) -> Response:
    me = web.require_member(request)
    proposal_id, tz = _pid(request), _tz(request)

    def load() -> Any:
        with web.db(request).read() as s:
            return queries.history(s, me, proposal_id, tz)

    try:
        p, versions = await run_db(load)
    except NotFound:
        raise HTTPException(404) from None
    return render(request, "proposals/history.html", _ctx(request, p=p, versions=versions))


# --- the admin's form ---------------------------------------------------------------------------------------

async def _form_page(request: Request, form: ParsedForm, *, proposal: Any = None,
                     status: int = 200) -> Response:
    def load() -> Any:
        with web.db(request).read() as s:
            return queries.audience_choices(s)

    everyone, groups = await run_db(load)
    return render(request, "proposals/form.html",
                  _ctx(request, form=form, values=form.values, errors=form.errors, proposal=proposal,
                       everyone=everyone, groups=groups), status_code=status)


async def new(request: Request) -> Response:
    me = web.require_admin(request)
    if request.method == "GET":
        return await _form_page(request, ParsedForm(values=blank_values()))
    form = parse_proposal_form(await web.form(request), tz=_tz(request), now=utcnow())
    if form.data is None:
        return await _form_page(request, form, status=400)
    data = form.data

    def do() -> int:
        with web.db(request).begin() as s:
            return services.create_proposal(s, data, actor_id=me.id, ip=web.client_ip(request)).id

    try:
        proposal_id = await run_db(do)
    except ProposalError as exc:
        form.errors[exc.field or "form"] = str(exc)
        return await _form_page(request, form, status=exc.status)
    return see_other(request.url_for("proposals:detail", proposal_id=proposal_id).path,
                     "Draft saved. This is how members will see it once you publish it.")


async def edit(request: Request) -> Response:
    me = web.require_admin(request)
    proposal_id, tz = _pid(request), _tz(request)

    def load() -> Any:
        with web.db(request).read() as s:
            try:
                return queries.get_visible(s, me, proposal_id)
            except NotFound:
                return None

    p = await run_db(load)
    if p is None:
        raise HTTPException(404)
    if p.state not in services.EDITABLE:
        return render(request, "errors/error.html", {
            "status": 409, "title": "This proposal can no longer be edited",
            "message": "Voting has opened, so its text, options, audience and rules are frozen. "
                       "You can add a dated clarification on the proposal's page."}, status_code=409)
    if request.method == "GET":
        return await _form_page(request, ParsedForm(values=values_from_proposal(p, tz)), proposal=p)
    form = parse_proposal_form(await web.form(request), tz=tz, now=utcnow())
    if form.data is None:
        return await _form_page(request, form, proposal=p, status=400)
    data = form.data

    def do() -> list[str]:
        with web.db(request).begin() as s:
            return services.update_proposal(s, proposal_id, data, actor_id=me.id, ip=web.client_ip(request))

    try:
        changed = await run_db(do)
    except ProposalError as exc:
        if exc.status == 404:
            raise HTTPException(404) from exc
        form.errors[exc.field or "form"] = str(exc)
        return await _form_page(request, form, proposal=p, status=exc.status)
    done = "Saved: " + ", ".join(changed).lower() + " changed." if changed else "Nothing was changed."
    return see_other(request.url_for("proposals:detail", proposal_id=proposal_id).path, done)


# --- the admin's actions on a proposal's page ---------------------------------------------------------------

Change = Callable[[Session, CurrentMember, int, dict[str, str]], str | None]


async def _action(request: Request, action: str, fields: tuple[str, ...], change: Change,
                  done: str) -> Response:
    """Run one admin action; `change` may return a message that replaces `done`. A refusal shows the
    proposal's page again with the message beside the form that caused it (`action` names that form)."""
    me = web.require_admin(request)
    proposal_id = _pid(request)
    data = await web.form(request)
    values = {name: web.text(data, name, 30_000) for name in fields}

    def do() -> str | None:
        with web.db(request).begin() as s:
            return change(s, me, proposal_id, values)

    try:
        message = await run_db(do)
    except ProposalError as exc:
        if exc.status == 404:
            raise HTTPException(404) from exc
        return await detail(request, errors={action: str(exc)}, values=values, status=exc.status)
    return see_other(request.url_for("proposals:detail", proposal_id=proposal_id).path, message or done)


async def publish(request: Request) -> Response:
    def change(s: Session, me: CurrentMember, proposal_id: int, values: dict[str, str]) -> str:
        p = services.publish(s, web.settings(request), proposal_id, when=values["when"], actor_id=me.id,
                             ip=web.client_ip(request))
        if p.state == State.OPEN:
            return f"Voting is open: {plural(p.eligible_count, 'eligible member')} can vote now."
        return "Scheduled. Voting opens at the set time."

    return await _action(request, "publish", ("when",), change, "")


async def close(request: Request) -> Response:
    def change(s: Session, me: CurrentMember, proposal_id: int, values: dict[str, str]) -> None:
        services.close_early(s, web.settings(request), proposal_id, reason=values["reason"], actor_id=me.id,
                             org_name=web.org_name(request))

    response = await _action(request, "reason", ("reason",), change,
                             "Voting is closed and the result is counted.")
    if response.status_code == 303:
        # Once the close has committed and the admin has their answer: the deleted ballot key and ballots
        # leave the database files too (docs/SECRET_BALLOTS.md).
        response.background = BackgroundTask(erase_residue, web.db(request))
    return response


async def clarify(request: Request) -> Response:
    def change(s: Session, me: CurrentMember, proposal_id: int, values: dict[str, str]) -> None:
        services.add_clarification(s, proposal_id, values["clarification"], actor_id=me.id,
                                   ip=web.client_ip(request))

    return await _action(request, "clarification", ("clarification",), change, "Clarification added.")


async def outcome(request: Request) -> Response:
    def change(s: Session, me: CurrentMember, proposal_id: int, values: dict[str, str]) -> str | None:
        notify = values["notify"] == "1"
        n = services.set_outcome(s, proposal_id, values["outcome"], actor_id=me.id, ip=web.client_ip(request),
                                 settings=web.settings(request), send_update=notify)
        return f"Outcome saved and emailed to {plural(n, 'member')}." if notify else None

    return await _action(request, "outcome", ("outcome", "notify"), change, "Outcome saved.")
