"""Pages for action steps: "I'm in", withdraw and done (each a form that works without JavaScript; htmx swaps
the step's fragment), campaign pages, and the admins' steps, roster (with CSV), messages and funnels."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app import htmx, web
from app.actions import funnel, services
from app.actions.models import ActionStep, Campaign, Kind
from app.actions.services import ActionError, StepData
from app.db import run_db, utcnow
from app.templating import render, see_other
from app.voting.views import _cell


def _tz(request: Request) -> str:
    return getattr(request.app.state, "org_tz", None) or "UTC"


def _back(request: Request, step: ActionStep) -> str:
    if step.proposal_id is not None:
        return request.url_for("proposals:detail", proposal_id=step.proposal_id).path + f"#step-{step.id}"
    return request.url_for("actions:campaign", campaign_id=step.campaign_id).path + f"#step-{step.id}"


async def _member_action(request: Request, step_id: int | None, change: Any, done: str) -> Response:
    me = web.require_member(request)
    data = await web.form(request)
    settings = web.settings(request)

    def do() -> tuple[ActionStep, str | None]:
        error = None
        try:
            with web.db(request).begin() as s:
                change(s, settings, me, data)
        except ActionError as exc:
            if exc.status == 404:
                raise
            error = str(exc)
        except IntegrityError:  # the same member twice at once: the unique (step, member) said no
            error = "You have already signed up for this."
        with web.db(request).read() as s:
            sid = step_id if step_id is not None else services.own_step_id(s, me, _cid(request))
            return s.get(ActionStep, sid), error

    try:
        step, error = await run_db(do)
    except ActionError:
        raise HTTPException(404) from None
    if htmx.is_partial(request):
        def load() -> Any:
            with web.db(request).read() as s:
                return services.step_view(s, me, step.id)
        sv = await run_db(load)
        return render(request, "actions/_step.html", {"sv": sv, "error": error, "tz": _tz(request)},
                      status_code=409 if error else 200)
    return see_other(_back(request, step), error or done)


def _cid(request: Request) -> int:
    return int(request.path_params["commitment_id"])


async def commit(request: Request) -> Response:
    step_id = int(request.path_params["step_id"])

    def change(s: Any, settings: Any, me: Any, data: Any) -> ActionStep:
        c = services.commit(s, settings, me, step_id, quantity=web.text(data, "quantity", 20))
        return c.step_id

    return await _member_action(request, step_id, change, "You're in. A confirmation is on its way by email.")


async def withdraw(request: Request) -> Response:
    def change(s: Any, settings: Any, me: Any, data: Any) -> None:
        services.withdraw(s, settings, me, _cid(request))

    return await _member_action(request, None, change, "You have withdrawn.")


async def done(request: Request) -> Response:
    def change(s: Any, settings: Any, me: Any, data: Any) -> None:
        services.mark_done(s, me, _cid(request), note=web.text(data, "note", 2000))

    return await _member_action(request, None, change, "Thank you! Reported done.")


# --- campaigns --------------------------------------------------------------------------------------------------

async def campaign(request: Request) -> Response:
    me = web.require_member(request)
    campaign_id = int(request.path_params["campaign_id"])

    def load() -> tuple[Campaign, list[services.StepView]]:
        with web.db(request).read() as s:
            c = services.get_campaign(s, me, campaign_id)
            return c, services.steps_for(s, me, campaign_id=c.id), services.seen(s, me.id, campaign_id=c.id)

    try:
        c, steps, seen = await run_db(load)
    except ActionError:
        raise HTTPException(404) from None
    if not seen:
        await run_db(_record, request, me.id, None, campaign_id)
    return render(request, "actions/campaign.html", {"c": c, "steps": steps, "tz": _tz(request)})


def _record(request: Request, member_id: int, proposal_id: int | None, campaign_id: int | None) -> None:
    with web.db(request).begin() as s:
        services.record_view(s, member_id, proposal_id=proposal_id, campaign_id=campaign_id)


def proposal_steps(request: Request, session: Any, me: Any, proposal_id: int) -> list[services.StepView]:
    """For the proposal's page (called inside its read unit of work)."""
    return services.steps_for(session, me, proposal_id=proposal_id)


async def record_proposal_view(request: Request, member_id: int, proposal_id: int) -> None:
    """The funnel's "opened the page": one indexed look-up, and a write only on the first view."""
    def first() -> bool:
        with web.db(request).read() as s:
            return not services.seen(s, member_id, proposal_id=proposal_id)

    if await run_db(first):
        await run_db(_record, request, member_id, proposal_id, None)


async def campaign_list(request: Request) -> Response:
    me = web.require_member(request)

    def load() -> list[Campaign]:
        with web.db(request).read() as s:
            return services.list_campaigns(s, me)

    return render(request, "actions/campaigns.html", {"campaigns": await run_db(load)})


async def campaign_new(request: Request) -> Response:
    me = web.require_admin(request)
    if request.method == "GET":
        return render(request, "actions/campaign_form.html", {"errors": {}, "values": {}})
    data = await web.form(request)
    values = {k: web.text(data, k, 20_000) for k in ("title", "body", "publish")}

    def do() -> int:
        with web.db(request).begin() as s:
            return services.create_campaign(s, title=values["title"], body_md=values["body"], group_id=None,
                                            published=values["publish"] == "1", actor_id=me.id).id

    try:
        cid = await run_db(do)
    except ActionError as exc:
        return render(request, "actions/campaign_form.html", {"errors": {exc.field or "form": str(exc)},
                                                               "values": values}, status_code=400)
    return see_other(request.url_for("actions:campaign", campaign_id=cid).path, "Campaign saved.")


# --- admins: steps, roster, messages, funnels ---------------------------------------------------------------------

def _parse_step(data: Any, tz: str) -> StepData:
    kind = web.text(data, "kind", 16)
    d = StepData(kind=kind, title=web.text(data, "title", 200).strip(), description=web.text(data, "description"),
                 place=web.text(data, "place", 300).strip(), link=web.text(data, "link", 500).strip(),
                 unit=web.text(data, "unit", 40).strip())
    if kind not in {k.value for k in Kind}:
        d.errors["kind"] = "Choose what kind of step this is."
    if not d.title:
        d.errors["title"] = "Give the step a title."
    if d.link and not d.link.startswith(("https://", "http://")):
        d.errors["link"] = "A link starts with https://."
    for name in ("capacity", "goal"):
        raw = web.text(data, name, 10).strip()
        if raw:
            if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
                d.errors[name] = "A whole number from 1 to 100,000."
            else:
                setattr(d, name, int(raw))
    if kind == Kind.SHIFT:
        try:
            day = dt.date.fromisoformat(web.text(data, "date", 10))
            start = dt.time.fromisoformat(web.text(data, "start", 5))
            end = dt.time.fromisoformat(web.text(data, "end", 5))
        except ValueError:
            d.errors["date"] = "A shift needs a date, a start time and an end time."
        else:
            zone = ZoneInfo(tz)
            d.starts_at = dt.datetime.combine(day, start, zone).astimezone(dt.UTC)
            d.ends_at = dt.datetime.combine(day, end, zone).astimezone(dt.UTC)
            if d.ends_at <= d.starts_at:
                d.errors["date"] = "The shift must end after it starts."
    return d


async def step_new(request: Request) -> Response:
    web.require_admin(request)
    parent = request.path_params.get("proposal_id"), request.path_params.get("campaign_id")
    data = _parse_step(await web.form(request), _tz(request))

    def do() -> ActionStep:
        with web.db(request).begin() as s:
            return services.create_step(s, data, proposal_id=parent[0], campaign_id=parent[1])

    if data.errors:
        message = " ".join(data.errors.values())
        back = (request.url_for("proposals:detail", proposal_id=parent[0]).path if parent[0] is not None
                else request.url_for("actions:campaign", campaign_id=parent[1]).path)
        return see_other(back + "#step-form", "The step was not added: " + message)
    try:
        step = await run_db(do)
    except ActionError:
        raise HTTPException(404) from None
    return see_other(_back(request, step), "Action step added.")


def _roster(request: Request) -> Any:
    web.require_admin(request)
    step_id = int(request.path_params["step_id"])

    def load() -> Any:
        with web.db(request).read() as s:
            return services.roster(s, step_id)

    return run_db(load)


async def roster(request: Request) -> Response:
    try:
        step, rows = await _roster(request)
    except ActionError:
        raise HTTPException(404) from None
    return render(request, "actions/roster.html", {"step": step, "rows": rows, "tz": _tz(request),
                                                   "back": _back(request, step)})


async def roster_csv(request: Request) -> Response:
    try:
        step, rows = await _roster(request)
    except ActionError:
        raise HTTPException(404) from None
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["name", "email", "status", "waitlist_position", "quantity", "note", "signed_up", "done_at"])
    for c, m in rows:
        w.writerow([_cell(m.name), _cell(m.email), c.status, c.position if c.status == "waitlisted" else "",
                    c.quantity or "", _cell(c.note), c.created_at.isoformat(),
                    c.done_at.isoformat() if c.done_at else ""])
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="step-{step.id}-roster.csv"'})


async def message(request: Request) -> Response:
    web.require_admin(request)
    step_id = int(request.path_params["step_id"])
    data = await web.form(request)
    settings = web.settings(request)

    def do() -> int:
        with web.db(request).begin() as s:
            step = s.get(ActionStep, step_id)
            if step is None:
                raise services.NotFound()
            return services.message_committed(s, settings, step, subject=web.text(data, "subject", 200),
                                              body=web.text(data, "body", 10_000))

    back = request.url_for("actions:roster", step_id=step_id).path
    try:
        n = await run_db(do)
    except services.NotFound:
        raise HTTPException(404) from None
    except ActionError as exc:
        return see_other(back, str(exc))
    return see_other(back, f"Message queued for {n} member(s).")


async def proposal_funnel(request: Request) -> Response:
    web.require_admin(request)
    pid = int(request.path_params["proposal_id"])

    def load() -> Any:
        with web.db(request).read() as s:
            return funnel.for_proposal(s, pid)

    f = await run_db(load)
    if f is None:
        raise HTTPException(404)
    return render(request, "actions/funnel.html", {"f": f, "back": request.url_for(
        "proposals:detail", proposal_id=pid).path})


async def campaign_funnel(request: Request) -> Response:
    web.require_admin(request)
    cid = int(request.path_params["campaign_id"])

    def load() -> Any:
        with web.db(request).read() as s:
            return funnel.for_campaign(s, cid)

    f = await run_db(load)
    if f is None:
        raise HTTPException(404)
    return render(request, "actions/funnel.html", {"f": f, "back": request.url_for(
        "actions:campaign", campaign_id=cid).path})


async def dashboard(request: Request) -> Response:
    web.require_admin(request)

    def load() -> list[funnel.Month]:
        with web.db(request).read() as s:
            return funnel.dashboard(s, now=utcnow())

    return render(request, "actions/dashboard.html", {"months": await run_db(load)})
