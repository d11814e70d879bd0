"""The admin's pages for members, groups and the audit log."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app import web
from app.db import run_db
from app.mail import bounces
from app.members import services
from app.members.guard import audit
from app.members.models import Status
from app.members.services import MemberError, NotFound
from app.templating import page_or_fragment, render, see_other

# --- admin: members --------------------------------------------------------------------------------------------

def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 else None


async def admin_members(request: Request) -> Response:
    web.require_admin(request)
    qp = request.query_params
    q, status = qp.get("q", ""), qp.get("status", "")
    group_id, page = _int(qp.get("group")), _int(qp.get("page")) or 1

    def load() -> Any:
        with web.db(request).read() as s:
            return (services.directory(s, q=q, group_id=group_id, status=status, page=page),
                    services.list_groups(s))

    result, groups = await run_db(load)
    return page_or_fragment(request, "admin/members.html", "admin/_members_table.html",
                            {"result": result, "groups": groups})


async def admin_invite(request: Request) -> Response:
    me = web.require_admin(request)

    def groups() -> Any:
        with web.db(request).read() as s:
            return services.list_groups(s)

    values: dict[str, Any] = {"name": "", "email": "", "role": "member", "groups": []}
    if request.method == "GET":
        return render(request, "admin/invite.html", {"values": values, "error": None, "groups": await run_db(groups)})
    data = await web.form(request)
    values = {"name": web.text(data, "name", 300), "email": web.text(data, "email", 300),
              "role": web.text(data, "role", 20) or "member", "groups": web.int_list(data, "groups")}

    def do() -> str:
        with web.db(request).begin() as s:
            m = services.invite_member(s, web.settings(request), actor_id=me.id, name=values["name"],
                                       email=values["email"], group_ids=values["groups"], role=values["role"],
                                       ip=web.client_ip(request), org_name=web.org_name(request))
            return m.name

    try:
        name = await run_db(do)
    except MemberError as exc:
        return render(request, "admin/invite.html", {"values": values, "error": str(exc),
                                                     "groups": await run_db(groups)}, status_code=400)
    return see_other(request.url_for("admin:members").path, f"Invitation to {name} queued.")


async def admin_member(request: Request, errors: dict[str, str] | None = None, status: int = 200) -> Response:
    web.require_admin(request)
    member_id = request.path_params["member_id"]

    def load() -> Any:
        with web.db(request).read() as s:
            try:
                return services.get_member(s, member_id), services.list_groups(s)
            except MemberError:
                return None

    loaded = await run_db(load)
    if loaded is None:
        raise HTTPException(404)
    member, groups = loaded
    return render(request, "admin/member.html", {"member": member, "groups": groups, "errors": errors or {}},
                  status_code=status)


async def _admin_change_failed(request: Request, key: str, change: Any) -> str | None:
    """Run an admin's change to the member or group named in the URL in one write transaction. Returns why it
    was refused, or None when it was done; an unknown id is a 404."""
    me = web.require_admin(request)
    object_id = request.path_params[key]
    data = await web.form(request)

    def do() -> None:
        with web.db(request).begin() as s:
            change(s, me, object_id, data)

    try:
        await run_db(do)
    except NotFound as exc:
        raise HTTPException(404) from exc
    except MemberError as exc:
        return str(exc)
    return None


async def _admin_change(request: Request, change: Any, done: str) -> Response:
    error = await _admin_change_failed(request, "member_id", change)
    if error:
        return await admin_member(request, {"change": error}, 400)
    return see_other(request.url_for("admin:member", member_id=request.path_params["member_id"]).path, done)


async def admin_member_role(request: Request) -> Response:
    def change(s: Any, me: Any, member_id: int, data: Any) -> None:
        services.change_role(s, actor_id=me.id, member_id=member_id, role=web.text(data, "role", 20),
                             ip=web.client_ip(request))
    return await _admin_change(request, change, "Role saved.")


async def admin_member_status(request: Request) -> Response:
    def change(s: Any, me: Any, member_id: int, data: Any) -> None:
        services.set_active(s, actor_id=me.id, member_id=member_id,
                            active=web.text(data, "active", 10) == "1", ip=web.client_ip(request))
    return await _admin_change(request, change, "Status saved.")


async def admin_member_groups(request: Request) -> Response:
    def change(s: Any, me: Any, member_id: int, data: Any) -> None:
        services.update_member_groups(s, actor_id=me.id, member_id=member_id,
                                      group_ids=web.int_list(data, "groups"), ip=web.client_ip(request))
    return await _admin_change(request, change, "Groups saved.")


async def admin_member_reinvite(request: Request) -> Response:
    def change(s: Any, me: Any, member_id: int, data: Any) -> None:
        member = services.get_member(s, member_id)
        if member.status != Status.INVITED:
            raise MemberError("Only members who have not joined yet can be invited again.")
        services.send_invitation(s, web.settings(request), member, org_name=web.org_name(request))
        audit(s, "member.reinvite", actor_id=me.id, ip=web.client_ip(request), object_type="member",
              object_id=member.id, summary=member.name)
    return await _admin_change(request, change, "A new invitation is queued.")


async def admin_member_bounces(request: Request) -> Response:
    def change(s: Any, me: Any, member_id: int, data: Any) -> None:
        try:
            bounces.clear_flag(s, actor_id=me.id, member_id=member_id, ip=web.client_ip(request))
        except LookupError:
            raise NotFound("No such member.") from None
        except bounces.BounceError as exc:
            raise MemberError(str(exc)) from None
    return await _admin_change(request, change, "The bouncing flag is cleared: mailings go to this address again.")


# --- admin: groups ---------------------------------------------------------------------------------------------

async def admin_groups(request: Request) -> Response:
    me = web.require_admin(request)

    def load() -> Any:
        with web.db(request).read() as s:
            return services.list_groups(s)

    if request.method == "GET":
        return render(request, "admin/groups.html", {"groups": await run_db(load), "error": None, "values": {}})
    data = await web.form(request)
    values = {"name": web.text(data, "name", 300), "description": web.text(data, "description", 1000)}

    def do() -> str:
        with web.db(request).begin() as s:
            return services.create_group(s, actor_id=me.id, ip=web.client_ip(request), **values).name

    try:
        name = await run_db(do)
    except MemberError as exc:
        return render(request, "admin/groups.html", {"groups": await run_db(load), "error": str(exc),
                                                     "values": values}, status_code=400)
    return see_other(request.url_for("admin:groups").path, f"Group {name} created.")


async def _group_change(request: Request, change: Any, done: str) -> Response:
    error = await _admin_change_failed(request, "group_id", change)
    return see_other(request.url_for("admin:groups").path, error or done)


async def admin_group(request: Request) -> Response:
    def change(s: Any, me: Any, group_id: int, data: Any) -> None:
        services.rename_group(s, actor_id=me.id, group_id=group_id, name=web.text(data, "name", 300),
                              description=web.text(data, "description", 1000), ip=web.client_ip(request))
    return await _group_change(request, change, "Group saved.")


async def admin_group_delete(request: Request) -> Response:
    def change(s: Any, me: Any, group_id: int, data: Any) -> None:
        services.delete_group(s, actor_id=me.id, group_id=group_id, ip=web.client_ip(request))
    return await _group_change(request, change, "Group deleted. Its members stay members.")


async def admin_audit(request: Request) -> Response:
    web.require_admin(request)
    page = _int(request.query_params.get("page")) or 1

    def load() -> Any:
        with web.db(request).read() as s:
            return services.audit_log(s, page=page)

    events, total = await run_db(load)
    return render(request, "admin/audit.html", {"events": events, "total": total, "page": page,
                                                "pages": max(1, -(-total // services.PAGE_SIZE))})

