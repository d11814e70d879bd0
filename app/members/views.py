"""Pages for signing in, the member's home and profile, and the admin's members, groups and audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text as sql
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import security, web
from app.db import run_db
from app.mail.policy import PREF_KINDS
from app.mail.services import DIGEST_LABELS, KIND_LABELS, MODE_LABELS
from app.mail.services import preferences as mail_preferences
from app.members import auth, services
from app.members.guard import RateLimited, audit
from app.members.models import TokenPurpose
from app.members.services import MemberError
from app.templating import error_response, render, see_other

MAIL_LABELS = {"mail_kinds": PREF_KINDS, "kind_labels": KIND_LABELS, "mode_labels": MODE_LABELS,
               "digest_labels": DIGEST_LABELS}
RATE_LIMITED = "Too many attempts. Please wait 15 minutes and try again."
LINK_SENT = ("If {email} belongs to a member, a link is on its way. It works once, for {minutes} minutes. "
             "Check your inbox (and the spam folder).")


# --- public ----------------------------------------------------------------------------------------------------

async def healthz(request: Request) -> Response:
    def check() -> bool:
        try:
            with web.db(request).read() as s:
                s.execute(sql("SELECT 1"))
            return True
        except Exception:
            return False

    ok = await run_db(check)
    return JSONResponse({"status": "ok" if ok else "error", "database": "reachable" if ok else "unreachable"},
                        status_code=200 if ok else 503, headers={"cache-control": "no-store"})


async def home(request: Request) -> Response:
    from app.actions.services import my_commitments
    from app.proposals import queries as proposal_queries
    from app.proposals.display import display_context

    me = web.require_member(request)

    def load() -> Any:
        with web.db(request).read() as s:
            return proposal_queries.home(s, me), my_commitments(s, me.id)

    listing, commitments = await run_db(load)
    return render(request, "members/home.html",
                  {"me": me, "listing": listing, "commitments": commitments,
                   **display_context(request.app.state.org_tz or "UTC")})


async def setup(request: Request) -> Response:
    token = request.path_params["token"]

    def check() -> str | None:
        with web.db(request).read() as s:
            if services.admin_exists(s):
                return "Plenary is already set up. Sign in instead."
            try:
                services.peek_token(s, token, TokenPurpose.SETUP)
            except MemberError as exc:
                return str(exc) + " Restart Plenary to print a new setup link."
            return None

    problem = await run_db(check)
    if problem:
        return error_response(request, 404, problem)
    values = {"org_name": "", "time_zone": "UTC", "name": "", "email": ""}
    if request.method == "GET":
        return render(request, "members/setup.html", {"values": values, "error": None},
                      headers={"referrer-policy": "no-referrer"})
    data = await web.form(request)
    values = {k: web.text(data, k, 300) for k in values}
    password = web.text(data, "password", 1000)

    def do() -> Any:
        with web.db(request).begin() as s:
            member = services.complete_setup(
                s, token, org_name=values["org_name"], time_zone=values["time_zone"] or "UTC",
                name=values["name"], email=values["email"], password=password, pwd_ctx=web.pwd_ctx(request),
                ip=web.client_ip(request))
            return auth.start_session(s, web.settings(request), member, ip=web.client_ip(request),
                                      user_agent=web.user_agent(request))

    try:
        session_token = await run_db(do)
    except MemberError as exc:
        return render(request, "members/setup.html", {"values": values, "error": str(exc)}, status_code=400)
    services.load_org_state(request.app)
    response = see_other(request.url_for("home").path, "Welcome! Your organization is ready. Invite members next.")
    web.set_session_cookie(request, response, session_token)
    return response


async def signin(request: Request) -> Response:
    next_path = security.safe_next(request.query_params.get("next"))
    if request.method == "GET":
        if web.current_member(request):
            return see_other(next_path)
        return render(request, "members/signin.html", {"email": "", "error": None, "next": next_path})
    data = await web.form(request)
    email, password = web.text(data, "email", 300), web.text(data, "password", 1000)
    next_path = security.safe_next(web.text(data, "next", 500))

    def do() -> Any:
        with web.db(request).begin() as s:
            try:
                _member, token = auth.sign_in_password(
                    s, web.settings(request), web.pwd_ctx(request), email=email, password=password,
                    ip=web.client_ip(request), user_agent=web.user_agent(request))
                return token
            except MemberError as exc:
                # keep the failure's audit row and rate-limit count: commit, then report
                return exc

    try:
        result = await run_db(do)
    except RateLimited:
        await run_db(_audit_rate_limit, request, "signin")
        return render(request, "members/signin.html", {"email": email, "error": RATE_LIMITED, "next": next_path},
                      status_code=429)
    if isinstance(result, MemberError):
        return render(request, "members/signin.html", {"email": email, "error": str(result), "next": next_path},
                      status_code=400)
    response = see_other(next_path)
    web.set_session_cookie(request, response, result)
    return response


def _audit_rate_limit(request: Request, what: str) -> None:
    with web.db(request).begin() as s:
        audit(s, "ratelimit." + what, actor_id=None, ip=web.client_ip(request))


async def _link_request(request: Request, purpose: str, template: str) -> Response:
    if request.method == "GET":
        return render(request, template, {"email": "", "error": None, "sent": None})
    data = await web.form(request)
    email = web.text(data, "email", 300).strip()

    def do() -> None:
        with web.db(request).begin() as s:
            auth.request_link(s, web.settings(request), email=email, purpose=purpose,
                              ip=web.client_ip(request), org_name=web.org_name(request))

    try:
        await run_db(do)
    except RateLimited:
        await run_db(_audit_rate_limit, request, purpose)
        return render(request, template, {"email": email, "error": RATE_LIMITED, "sent": None}, status_code=429)
    minutes = auth.SIGNIN_LINK_MINUTES if purpose == TokenPurpose.SIGNIN else auth.RESET_MINUTES
    return render(request, template, {"email": email, "error": None,
                                      "sent": LINK_SENT.format(email=email, minutes=minutes)})


async def signin_link_request(request: Request) -> Response:
    return await _link_request(request, TokenPurpose.SIGNIN, "members/signin_link.html")


async def reset_request(request: Request) -> Response:
    return await _link_request(request, TokenPurpose.RESET, "members/reset_request.html")


async def _peek_link(request: Request, purpose: str) -> tuple[str, str | None, str | None]:
    token = request.path_params["token"]

    def check() -> tuple[str | None, str | None]:
        with web.db(request).read() as s:
            try:
                m = auth.link_member(s, token, purpose)
                return m.name, None
            except MemberError as exc:
                return None, str(exc)

    name, problem = await run_db(check)
    return token, name, problem


NO_REFERRER = {"referrer-policy": "no-referrer"}


async def signin_link(request: Request) -> Response:
    """GET shows a button; only the POST signs in, so link scanners in mail systems can't use the link up."""
    token, name, problem = await _peek_link(request, TokenPurpose.SIGNIN)
    if problem:
        return render(request, "members/link_problem.html", {"error": problem}, status_code=400,
                      headers=NO_REFERRER)
    if request.method == "GET":
        return render(request, "members/signin_confirm.html", {"name": name}, headers=NO_REFERRER)

    def do() -> Any:
        with web.db(request).begin() as s:
            return auth.sign_in_with_link(s, web.settings(request), token=token, ip=web.client_ip(request),
                                          user_agent=web.user_agent(request))[1]

    try:
        session_token = await run_db(do)
    except MemberError as exc:
        return render(request, "members/link_problem.html", {"error": str(exc)}, status_code=400)
    response = see_other(request.url_for("home").path, f"Welcome, {name}. You are signed in.")
    web.set_session_cookie(request, response, session_token)
    return response


async def accept_invite(request: Request) -> Response:
    token, name, problem = await _peek_link(request, TokenPurpose.INVITE)
    if problem:
        return render(request, "members/link_problem.html", {"error": problem}, status_code=400,
                      headers=NO_REFERRER)
    if request.method == "GET":
        return render(request, "members/invite.html", {"name": name, "error": None}, headers=NO_REFERRER)
    data = await web.form(request)
    with_password = web.text(data, "choice", 20) != "links"
    password = web.text(data, "password", 1000) if with_password else None
    if with_password and not password:
        return render(request, "members/invite.html",
                      {"name": name, "error": "Choose a password, or continue without one."}, status_code=400)

    def do() -> Any:
        with web.db(request).begin() as s:
            return auth.accept_invitation(s, web.settings(request), web.pwd_ctx(request), token=token,
                                          password=password, ip=web.client_ip(request),
                                          user_agent=web.user_agent(request))[1]

    try:
        session_token = await run_db(do)
    except MemberError as exc:
        return render(request, "members/invite.html", {"name": name, "error": str(exc)}, status_code=400)
    response = see_other(request.url_for("home").path, f"Welcome, {name}! You are a member now.")
    web.set_session_cookie(request, response, session_token)
    return response


async def reset(request: Request) -> Response:
    token, name, problem = await _peek_link(request, TokenPurpose.RESET)
    if problem:
        return render(request, "members/link_problem.html", {"error": problem}, status_code=400,
                      headers=NO_REFERRER)
    if request.method == "GET":
        return render(request, "members/reset.html", {"name": name, "error": None}, headers=NO_REFERRER)
    data = await web.form(request)
    password = web.text(data, "password", 1000)

    def do() -> Any:
        with web.db(request).begin() as s:
            return auth.reset_password(s, web.settings(request), web.pwd_ctx(request), token=token,
                                       password=password, ip=web.client_ip(request),
                                       user_agent=web.user_agent(request))[1]

    try:
        session_token = await run_db(do)
    except MemberError as exc:
        return render(request, "members/reset.html", {"name": name, "error": str(exc)}, status_code=400)
    response = see_other(request.url_for("home").path,
                         "Your password is changed. Every other device was signed out.")
    web.set_session_cookie(request, response, session_token)
    return response


async def signout(request: Request) -> Response:
    me = web.current_member(request)
    if me is not None:
        def do() -> None:
            with web.db(request).begin() as s:
                auth.sign_out(s, me.session_id)
        await run_db(do)
    response = see_other(request.url_for("signin").path, "You are signed out.")
    web.clear_session_cookie(request, response)
    return response


async def signout_everywhere(request: Request) -> Response:
    me = web.require_member(request)

    def do() -> None:
        with web.db(request).begin() as s:
            auth.sign_out_everywhere(s, me.id)
            audit(s, "signout.everywhere", actor_id=me.id, ip=web.client_ip(request), object_type="member",
                  object_id=me.id)

    await run_db(do)
    response = see_other(request.url_for("signin").path, "You are signed out on every device.")
    web.clear_session_cookie(request, response)
    return response


# --- profile ---------------------------------------------------------------------------------------------------

async def _profile_page(request: Request, errors: dict[str, str] | None = None, status: int = 200) -> Response:
    me = web.require_member(request)

    def load() -> Any:
        with web.db(request).read() as s:
            return services.get_member(s, me.id), mail_preferences(s, me.id)

    member, mail = await run_db(load)
    return render(request, "members/profile.html", {"member": member, "errors": errors or {}, "mail": mail,
                                                    **MAIL_LABELS}, status_code=status)


async def profile(request: Request) -> Response:
    return await _profile_page(request)


async def profile_name(request: Request) -> Response:
    me = web.require_member(request)
    data = await web.form(request)

    def do() -> None:
        with web.db(request).begin() as s:
            auth.rename(s, member_id=me.id, name=web.text(data, "name", 300))

    try:
        await run_db(do)
    except MemberError as exc:
        return await _profile_page(request, {"name": str(exc)}, 400)
    return see_other(request.url_for("profile").path, "Your name is saved.")


async def profile_password(request: Request) -> Response:
    me = web.require_member(request)
    data = await web.form(request)

    def do() -> None:
        with web.db(request).begin() as s:
            auth.change_password(s, web.pwd_ctx(request), member_id=me.id, current=web.text(data, "current", 1000),
                                 new=web.text(data, "new", 1000), keep_session_id=me.session_id,
                                 ip=web.client_ip(request))

    try:
        await run_db(do)
    except MemberError as exc:
        return await _profile_page(request, {"password": str(exc)}, 400)
    return see_other(request.url_for("profile").path,
                     "Your password is changed. Your other devices were signed out.")


async def profile_email(request: Request) -> Response:
    me = web.require_member(request)
    data = await web.form(request)

    def do() -> str:
        with web.db(request).begin() as s:
            return auth.request_email_change(
                s, web.settings(request), web.pwd_ctx(request), member_id=me.id,
                new_email=web.text(data, "email", 300), password=web.text(data, "password", 1000),
                ip=web.client_ip(request), org_name=web.org_name(request))

    try:
        address = await run_db(do)
    except RateLimited:
        return await _profile_page(request, {"email": RATE_LIMITED}, 429)
    except MemberError as exc:
        return await _profile_page(request, {"email": str(exc)}, 400)
    return see_other(request.url_for("profile").path,
                     f"We sent a confirmation link to {address}. Your address changes when you open it.")


async def profile_email_confirm(request: Request) -> Response:
    token = request.path_params["token"]
    if request.method == "GET":
        def check() -> str | None:
            with web.db(request).read() as s:
                try:
                    row = services.peek_token(s, token, TokenPurpose.EMAIL_CHANGE)
                    return row.new_email
                except MemberError:
                    return None

        new_email = await run_db(check)
        if new_email is None:
            return render(request, "members/link_problem.html",
                          {"error": "This link is not valid or has expired. Ask for a new one."},
                          status_code=400, headers=NO_REFERRER)
        return render(request, "members/email_confirm.html", {"new_email": new_email}, headers=NO_REFERRER)

    def do() -> str:
        with web.db(request).begin() as s:
            return auth.confirm_email_change(s, token=token, ip=web.client_ip(request)).email

    try:
        address = await run_db(do)
    except MemberError as exc:
        return render(request, "members/link_problem.html", {"error": str(exc)}, status_code=400)
    return see_other(request.url_for("home").path, f"Your email address is now {address}.")
