"""Pages for action steps: "I'm in", withdraw and done (each a form that works without JavaScript; htmx swaps
the step's fragment), campaign pages, and the admins' steps (add, change, delete), campaigns, roster (with CSV),
messages and funnels. A refused admin form comes back filled in with what is wrong (400), as the form's fragment
when htmx sent it."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app import htmx, web
from app.actions import campaigns, forms, funnel, services
from app.actions.models import ActionStep, Campaign, CommitmentStatus
from app.actions.services import ActionError
from app.db import run_db, utcnow
from app.templating import plural, render, see_other, set_flash
from app.voting.views import _cell


def _tz(request: Request) -> str:
    return getattr(request.app.state, "org_tz", None) or "UTC"


def _parent_path(request: Request, proposal_id: int | None, campaign_id: int | None) -> str:
    if proposal_id is not None:
        return request.url_for("proposals:detail", proposal_id=proposal_id).path
    return request.url_for("actions:campaign", campaign_id=campaign_id).path


def _back(request: Request, step: ActionStep) -> str:
    return _parent_path(request, step.proposal_id, step.campaign_id) + f"#step-{step.id}"


def _done(request: Request, url: str, flash: str) -> Response:
    """After a successful admin form: 303 to the page, or for htmx a redirect it follows (the flash goes along)."""
    if htmx.is_partial(request):
        response = htmx.go_to(request, Response(status_code=204), url)
        set_flash(response, flash)
        return response
    return see_other(url, flash)


async def _member_action(request: Request, step_id: int | None, change: Any, done: str) -> Response:
    me = web.require_member(request)
    data = await web.form(request)
    settings = web.settings(request)

    def do() -> tuple[ActionStep, str | None, int]:
        error, status = None, 200
        try:
            with web.db(request).begin() as s:
                change(s, settings, me, data)
        except ActionError as exc:
            if exc.status == 404:
                raise
            error, status = str(exc), exc.status
        except IntegrityError:  # the same member twice at once: the unique (step, member) said no
            error, status = "You have already signed up for this.", 409
        with web.db(request).read() as s:
            sid = step_id if step_id is not None else services.own_step_id(s, me, _cid(request))
            step = s.get(ActionStep, sid)
            if step is None:
                raise services.NotFound()
            return step, error, status

    try:
        step, error, status = await run_db(do)
    except ActionError:
        raise HTTPException(404) from None
    if htmx.is_partial(request):
        def load() -> Any:
            with web.db(request).read() as s:
                return services.step_view(s, me, step.id)
        sv = await run_db(load)
        return render(request, "actions/_step.html", {"sv": sv, "error": error, "tz": _tz(request)},
                      status_code=status)
    return see_other(_back(request, step), error or done)


def _cid(request: Request) -> int:
    return int(request.path_params["commitment_id"])


async def commit(request: Request) -> Response:
    step_id = int(request.path_params["step_id"])

    def change(s: Any, settings: Any, me: Any, data: Any) -> None:
        services.commit(s, settings, me, step_id, quantity=web.text(data, "quantity", 40))

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

    def load() -> tuple[Campaign, list[services.StepView], Any]:
        with web.db(request).read() as s:
            c = services.get_campaign(s, me, campaign_id)
            group = _group_name(s, c)
            return c, services.steps_for(s, me, campaign_id=c.id), group

    try:
        c, steps, group = await run_db(load)
    except ActionError:
        raise HTTPException(404) from None
    if c.published:
        await run_db(services.note_view, web.db(request), me.id, campaign_id=c.id)
    return render(request, "actions/campaign.html", {"c": c, "steps": steps, "tz": _tz(request), "group": group})


def _group_name(s: Any, c: Campaign) -> str | None:
    from app.members.models import Group

    if c.group_id is None:
        return None
    g = s.get(Group, c.group_id)
    return g.name if g else None


def proposal_steps(request: Request, session: Any, me: Any, proposal_id: int) -> list[services.StepView]:
    """For the proposal's page (called inside its read unit of work)."""
    return services.steps_for(session, me, proposal_id=proposal_id)


async def campaign_list(request: Request) -> Response:
    me = web.require_member(request)

    def load() -> list[Campaign]:
        with web.db(request).read() as s:
            return campaigns.list_campaigns(s, me)

    return render(request, "actions/campaigns.html", {"campaigns": await run_db(load)})


async def _campaign_form(request: Request, form: forms.CampaignForm, *, c: Campaign | None = None,
                         status: int = 200) -> Response:
    from app.proposals.queries import audience_choices

    def load() -> Any:
        with web.db(request).read() as s:
            return audience_choices(s)

    everyone, groups = await run_db(load)
    choices = [("all", f"Every member ({plural(everyone, 'member')})", None)] + [
        (str(g.id), f"The members of {g.name} ({plural(n, 'member')})", None) for g, n in groups]
    return render(request, "actions/campaign_form.html",
                  {"values": form.values, "errors": form.errors, "c": c, "audience_choices": choices},
                  status_code=status)


async def campaign_new(request: Request) -> Response:
    me = web.require_admin(request)
    if request.method == "GET":
        return await _campaign_form(request, forms.CampaignForm(values=forms.blank_campaign_values()))
    form = forms.parse_campaign(await web.form(request))
    if form.data is None:
        return await _campaign_form(request, form, status=400)
    data, settings, ip = form.data, web.settings(request), web.client_ip(request)

    def do() -> int:
        with web.db(request).begin() as s:
            return campaigns.create_campaign(s, settings, data, actor_id=me.id, ip=ip).id

    try:
        cid = await run_db(do)
    except ActionError as exc:
        form.errors[exc.field or "form"] = str(exc)
        return await _campaign_form(request, form, status=400)
    flash = "Campaign published: its members are told by email." if data.publish else \
        "Campaign saved as a draft: add its action steps, then publish it."
    return see_other(request.url_for("actions:campaign", campaign_id=cid).path, flash)


async def _load_campaign(request: Request, campaign_id: int) -> Campaign:
    def load() -> Campaign | None:
        with web.db(request).read() as s:
            return s.get(Campaign, campaign_id)

    c = await run_db(load)
    if c is None:
        raise HTTPException(404)
    return c


async def campaign_edit(request: Request) -> Response:
    me = web.require_admin(request)
    campaign_id = int(request.path_params["campaign_id"])
    c = await _load_campaign(request, campaign_id)
    if request.method == "GET":
        return await _campaign_form(request, forms.CampaignForm(values=forms.campaign_values(c)), c=c)
    form = forms.parse_campaign(await web.form(request))
    if form.data is None:
        return await _campaign_form(request, form, c=c, status=400)
    data, settings, ip = form.data, web.settings(request), web.client_ip(request)

    def do() -> Campaign:
        with web.db(request).begin() as s:
            return campaigns.update_campaign(s, settings, campaign_id, data, actor_id=me.id, ip=ip)

    try:
        saved = await run_db(do)
    except ActionError as exc:
        if exc.status == 404:
            raise HTTPException(404) from None
        form.errors[exc.field or "form"] = str(exc)
        return await _campaign_form(request, form, c=c, status=400)
    flash = "Campaign published: its members are told by email." if data.publish and not c.published else \
        "Campaign saved."
    return see_other(request.url_for("actions:campaign", campaign_id=saved.id).path, flash)


async def campaign_publish(request: Request) -> Response:
    me = web.require_admin(request)
    campaign_id = int(request.path_params["campaign_id"])
    settings, ip = web.settings(request), web.client_ip(request)

    def do() -> Any:
        with web.db(request).begin() as s:
            return campaigns.publish(s, settings, campaign_id, actor_id=me.id, ip=ip)

    back = request.url_for("actions:campaign", campaign_id=campaign_id).path
    try:
        outcome = await run_db(do)
    except ActionError as exc:
        if exc.status == 404:
            raise HTTPException(404) from None
        return see_other(back, str(exc))
    return see_other(back, f"Campaign published: {outcome.sent} announcement(s) queued, {outcome.folded} for "
                           "members' digests.")


# --- admins: steps ----------------------------------------------------------------------------------------------

def _step_page(request: Request, form: forms.StepForm, *, action: str, back: str, parent_title: str,
               step: ActionStep | None = None, status: int = 200) -> Response:
    ctx = {"step_values": form.values, "step_errors": form.errors, "step_action": action, "back": back,
           "parent_title": parent_title, "step": step, "kinds": forms.KIND_LABELS}
    name = "actions/_step_form.html" if htmx.is_partial(request) else "actions/step_form.html"
    return render(request, name, ctx, status_code=status)


def _parent_title(s: Any, proposal_id: int | None, campaign_id: int | None) -> str | None:
    from app.proposals.models import Proposal

    parent = s.get(Proposal, proposal_id) if proposal_id is not None else s.get(Campaign, campaign_id)
    return parent.title if parent is not None else None


async def step_new(request: Request) -> Response:
    me = web.require_admin(request)
    proposal_id, campaign_id = request.path_params.get("proposal_id"), request.path_params.get("campaign_id")
    action = request.url.path

    def load() -> str | None:
        with web.db(request).read() as s:
            return _parent_title(s, proposal_id, campaign_id)

    title = await run_db(load)
    if title is None:
        raise HTTPException(404)
    back = _parent_path(request, proposal_id, campaign_id)
    if request.method == "GET":
        return _step_page(request, forms.StepForm(values=forms.blank_step_values()), action=action, back=back,
                          parent_title=title)
    form = forms.parse_step(await web.form(request), tz=_tz(request), now=utcnow())
    if form.data is None:
        return _step_page(request, form, action=action, back=back, parent_title=title, status=400)
    data, ip = form.data, web.client_ip(request)

    def do() -> ActionStep:
        with web.db(request).begin() as s:
            return services.create_step(s, data, proposal_id=proposal_id, campaign_id=campaign_id, actor_id=me.id,
                                        ip=ip)

    try:
        step = await run_db(do)
    except ActionError:
        raise HTTPException(404) from None
    return _done(request, _back(request, step), "Action step added.")


async def _load_step(request: Request) -> tuple[ActionStep, str]:
    step_id = int(request.path_params["step_id"])

    def load() -> tuple[ActionStep | None, str | None]:
        with web.db(request).read() as s:
            step = s.get(ActionStep, step_id)
            return step, _parent_title(s, step.proposal_id, step.campaign_id) if step else None

    step, title = await run_db(load)
    if step is None:
        raise HTTPException(404)
    return step, title or ""


async def step_edit(request: Request) -> Response:
    me = web.require_admin(request)
    step, title = await _load_step(request)
    action = request.url_for("actions:step_edit", step_id=step.id).path
    back = _back(request, step)
    if request.method == "GET":
        return _step_page(request, forms.StepForm(values=forms.step_values(step, _tz(request))), action=action,
                          back=back, parent_title=title, step=step)
    form = forms.parse_step(await web.form(request), tz=_tz(request), now=utcnow(), step=step)
    if form.data is None:
        return _step_page(request, form, action=action, back=back, parent_title=title, step=step, status=400)
    data, settings, ip = form.data, web.settings(request), web.client_ip(request)

    def do() -> None:
        with web.db(request).begin() as s:
            services.update_step(s, settings, step.id, data, actor_id=me.id, ip=ip)

    try:
        await run_db(do)
    except ActionError as exc:
        if exc.status == 404:
            raise HTTPException(404) from None
        form.errors[exc.field or "form"] = str(exc)
        return _step_page(request, form, action=action, back=back, parent_title=title, step=step, status=400)
    return _done(request, back, "Action step saved.")


async def step_delete(request: Request) -> Response:
    me = web.require_admin(request)
    step, title = await _load_step(request)
    back = _parent_path(request, step.proposal_id, step.campaign_id)
    if request.method == "GET":
        def load() -> services.Progress:
            with web.db(request).read() as s:
                return services.progress(s, [step.id])[step.id]

        return render(request, "actions/step_delete.html", {"step": step, "parent_title": title,
                                                             "progress": await run_db(load),
                                                             "back": _back(request, step)})
    settings, ip = web.settings(request), web.client_ip(request)

    def do() -> int:
        with web.db(request).begin() as s:
            return services.delete_step(s, settings, step.id, actor_id=me.id, ip=ip)

    try:
        told = await run_db(do)
    except ActionError:
        raise HTTPException(404) from None
    return see_other(back + "#action-steps", f"Action step deleted; {told} member(s) told by email.")


# --- admins: roster and messages ---------------------------------------------------------------------------------

async def _roster(request: Request) -> Any:
    web.require_admin(request)
    step_id = int(request.path_params["step_id"])

    def load() -> Any:
        with web.db(request).read() as s:
            return services.roster(s, step_id)

    try:
        return await run_db(load)
    except ActionError:
        raise HTTPException(404) from None


async def roster(request: Request, *, values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                 status: int = 200) -> Response:
    step, rows = await _roster(request)
    return render(request, "actions/roster.html", {"step": step, "rows": rows, "tz": _tz(request),
                                                   "back": _back(request, step), "values": values or {},
                                                   "errors": errors or {},
                                                   "committed": sum(c.status == CommitmentStatus.COMMITTED
                                                                    for c, _m in rows)},
                  status_code=status)


async def roster_csv(request: Request) -> Response:
    step, rows = await _roster(request)
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
    me = web.require_admin(request)
    step_id = int(request.path_params["step_id"])
    data = await web.form(request)
    settings, ip = web.settings(request), web.client_ip(request)
    values = {"subject": web.text(data, "subject", 1_000), "body": web.text(data, "body", 20_000)}

    def do() -> int:
        with web.db(request).begin() as s:
            step = s.get(ActionStep, step_id)
            if step is None:
                raise services.NotFound()
            return services.message_committed(s, settings, step, subject=values["subject"], body=values["body"],
                                              actor_id=me.id, ip=ip)

    try:
        n = await run_db(do)
    except services.NotFound:
        raise HTTPException(404) from None
    except ActionError as exc:
        return await roster(request, values=values, errors={exc.field or "form": str(exc)}, status=exc.status)
    return see_other(request.url_for("actions:roster", step_id=step_id).path, f"Message queued for {n} member(s).")


# --- admins: funnels and the dashboard ----------------------------------------------------------------------------

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
