"""The whole URL map. Templates and redirects build URLs from these names only."""

from __future__ import annotations

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app.mail import views as mail
from app.members import import_views
from app.members import views as members
from app.settings import ROOT

routes = [
    Route("/", members.home, name="home"),
    Route("/healthz", members.healthz, name="healthz"),
    Route("/setup/{token}", members.setup, methods=["GET", "POST"], name="setup"),
    # signing in and out
    Route("/signin", members.signin, methods=["GET", "POST"], name="signin"),
    Route("/signin/link", members.signin_link_request, methods=["GET", "POST"], name="signin:link_request"),
    Route("/signin/link/{token}", members.signin_link, methods=["GET", "POST"], name="signin:link"),
    Route("/signout", members.signout, methods=["POST"], name="signout"),
    Route("/signout/everywhere", members.signout_everywhere, methods=["POST"], name="signout:everywhere"),
    Route("/invite/{token}", members.accept_invite, methods=["GET", "POST"], name="invite"),
    Route("/reset", members.reset_request, methods=["GET", "POST"], name="reset:request"),
    Route("/reset/{token}", members.reset, methods=["GET", "POST"], name="reset"),
    # the member's own profile
    Route("/profile", members.profile, methods=["GET"], name="profile"),
    Route("/profile/name", members.profile_name, methods=["POST"], name="profile:name"),
    Route("/profile/password", members.profile_password, methods=["POST"], name="profile:password"),
    Route("/profile/email", members.profile_email, methods=["POST"], name="profile:email"),
    Route("/profile/email/{token}", members.profile_email_confirm, methods=["GET", "POST"],
          name="profile:email_confirm"),
    # administration
    Route("/admin/members", members.admin_members, methods=["GET"], name="admin:members"),
    Route("/admin/members/invite", members.admin_invite, methods=["GET", "POST"], name="admin:invite"),
    Route("/admin/members/import", import_views.admin_import, methods=["GET", "POST"], name="admin:import"),
    Route("/admin/members/import/confirm", import_views.admin_import_confirm, methods=["POST"],
          name="admin:import_confirm"),
    Route("/admin/members/{member_id:int}", members.admin_member, methods=["GET"], name="admin:member"),
    Route("/admin/members/{member_id:int}/role", members.admin_member_role, methods=["POST"],
          name="admin:member_role"),
    Route("/admin/members/{member_id:int}/status", members.admin_member_status, methods=["POST"],
          name="admin:member_status"),
    Route("/admin/members/{member_id:int}/groups", members.admin_member_groups, methods=["POST"],
          name="admin:member_groups"),
    Route("/admin/members/{member_id:int}/reinvite", members.admin_member_reinvite, methods=["POST"],
          name="admin:member_reinvite"),
    Route("/admin/groups", members.admin_groups, methods=["GET", "POST"], name="admin:groups"),
    Route("/admin/groups/{group_id:int}", members.admin_group, methods=["POST"], name="admin:group"),
    Route("/admin/groups/{group_id:int}/delete", members.admin_group_delete, methods=["POST"],
          name="admin:group_delete"),
    Route("/admin/audit", members.admin_audit, methods=["GET"], name="admin:audit"),
    Route("/admin/outbox", mail.outbox, methods=["GET"], name="admin:outbox"),
    Route("/admin/outbox/{message_id:int}", mail.outbox_message, methods=["GET"], name="admin:outbox_message"),
    Mount("/static", StaticFiles(directory=ROOT / "static"), name="static"),
]
