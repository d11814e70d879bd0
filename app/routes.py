"""The whole URL map. Templates and redirects build URLs from these names only."""

from __future__ import annotations

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app.actions import views as actions
from app.comments import views as comments
from app.mail import inbound_views
from app.mail import views as mail
from app.members import admin_views as admin
from app.members import import_views
from app.members import views as members
from app.proposals import views as proposals
from app.settings import ROOT
from app.voting import link_views as voting_links
from app.voting import views as voting

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
    Route("/profile/mail", mail.profile_mail, methods=["POST"], name="profile:mail"),
    # administration
    Route("/admin/members", admin.admin_members, methods=["GET"], name="admin:members"),
    Route("/admin/members/invite", admin.admin_invite, methods=["GET", "POST"], name="admin:invite"),
    Route("/admin/members/import", import_views.admin_import, methods=["GET", "POST"], name="admin:import"),
    Route("/admin/members/import/confirm", import_views.admin_import_confirm, methods=["POST"],
          name="admin:import_confirm"),
    Route("/admin/members/{member_id:int}", admin.admin_member, methods=["GET"], name="admin:member"),
    Route("/admin/members/{member_id:int}/role", admin.admin_member_role, methods=["POST"],
          name="admin:member_role"),
    Route("/admin/members/{member_id:int}/status", admin.admin_member_status, methods=["POST"],
          name="admin:member_status"),
    Route("/admin/members/{member_id:int}/groups", admin.admin_member_groups, methods=["POST"],
          name="admin:member_groups"),
    Route("/admin/members/{member_id:int}/bounces", admin.admin_member_bounces, methods=["POST"],
          name="admin:member_bounces"),
    Route("/admin/members/{member_id:int}/reinvite", admin.admin_member_reinvite, methods=["POST"],
          name="admin:member_reinvite"),
    Route("/admin/groups", admin.admin_groups, methods=["GET", "POST"], name="admin:groups"),
    Route("/admin/groups/{group_id:int}", admin.admin_group, methods=["POST"], name="admin:group"),
    Route("/admin/groups/{group_id:int}/delete", admin.admin_group_delete, methods=["POST"],
          name="admin:group_delete"),
    Route("/admin/audit", admin.admin_audit, methods=["GET"], name="admin:audit"),
    # proposals
    Route("/proposals", proposals.proposal_list, methods=["GET"], name="proposals:list"),
    Route("/proposals/{proposal_id:int}", proposals.detail, methods=["GET"], name="proposals:detail"),
    Route("/proposals/{proposal_id:int}/history", proposals.history, methods=["GET"],
          name="proposals:history"),
    Route("/proposals/{proposal_id:int}/events", proposals.events, methods=["GET"], name="proposals:events"),
    Route("/admin/proposals/new", proposals.new, methods=["GET", "POST"], name="proposals:new"),
    Route("/admin/proposals/{proposal_id:int}/edit", proposals.edit, methods=["GET", "POST"],
          name="proposals:edit"),
    Route("/admin/proposals/{proposal_id:int}/publish", proposals.publish, methods=["POST"],
          name="proposals:publish"),
    Route("/admin/proposals/{proposal_id:int}/close", proposals.close, methods=["POST"],
          name="proposals:close"),
    Route("/admin/proposals/{proposal_id:int}/clarify", proposals.clarify, methods=["POST"],
          name="proposals:clarify"),
    Route("/admin/proposals/{proposal_id:int}/outcome", proposals.outcome, methods=["POST"],
          name="proposals:outcome"),
    # end proposals
    # comments
    Route("/proposals/{proposal_id:int}/comments", comments.comment_list, methods=["GET"], name="comments:list"),
    Route("/proposals/{proposal_id:int}/comments", comments.create, methods=["POST"], name="comments:create"),
    Route("/proposals/{proposal_id:int}/comments/new", comments.news, methods=["GET"], name="comments:news"),
    Route("/proposals/{proposal_id:int}/arguments", comments.sides, methods=["GET"], name="comments:sides"),
    Route("/proposals/{proposal_id:int}/comments/close", comments.close, methods=["POST"], name="comments:close"),
    Route("/proposals/{proposal_id:int}/comments/reopen", comments.close, methods=["POST"],
          name="comments:reopen"),
    Route("/comments/{comment_id:int}", comments.thread, methods=["GET"], name="comments:thread"),
    Route("/comments/{comment_id:int}/replies", comments.replies, methods=["GET"], name="comments:replies"),
    Route("/comments/{comment_id:int}/reply", comments.reply_form, methods=["GET"], name="comments:reply"),
    Route("/comments/{comment_id:int}/edit", comments.edit, methods=["GET", "POST"], name="comments:edit"),
    Route("/comments/{comment_id:int}/delete", comments.delete, methods=["POST"], name="comments:delete"),
    Route("/comments/{comment_id:int}/endorse", comments.endorse, methods=["POST"], name="comments:endorse"),
    Route("/comments/{comment_id:int}/flag", comments.flag, methods=["GET", "POST"], name="comments:flag"),
    Route("/comments/{comment_id:int}/hide", comments.hide, methods=["POST"], name="comments:hide"),
    Route("/comments/{comment_id:int}/restore", comments.restore, methods=["POST"], name="comments:restore"),
    Route("/comments/{comment_id:int}/keep", comments.keep, methods=["POST"], name="comments:keep"),
    Route("/admin/moderation", comments.moderation_queue, methods=["GET"], name="comments:moderation"),
    Route("/admin/moderation/blocks", comments.block, methods=["POST"], name="comments:block"),
    Route("/admin/moderation/blocks/{block_id:int}/lift", comments.unblock, methods=["POST"],
          name="comments:unblock"),
    # actions
    Route("/steps/{step_id:int}/commit", actions.commit, methods=["POST"], name="actions:commit"),
    Route("/commitments/{commitment_id:int}/withdraw", actions.withdraw, methods=["POST"], name="actions:withdraw"),
    Route("/commitments/{commitment_id:int}/done", actions.done, methods=["POST"], name="actions:done"),
    Route("/campaigns", actions.campaign_list, methods=["GET"], name="actions:campaigns"),
    Route("/campaigns/{campaign_id:int}", actions.campaign, methods=["GET"], name="actions:campaign"),
    Route("/admin/campaigns/new", actions.campaign_new, methods=["GET", "POST"], name="actions:campaign_new"),
    Route("/admin/campaigns/{campaign_id:int}/edit", actions.campaign_edit, methods=["GET", "POST"],
          name="actions:campaign_edit"),
    Route("/admin/campaigns/{campaign_id:int}/publish", actions.campaign_publish, methods=["POST"],
          name="actions:campaign_publish"),
    Route("/admin/campaigns/{campaign_id:int}/steps", actions.step_new, methods=["GET", "POST"],
          name="actions:campaign_step_new"),
    Route("/admin/campaigns/{campaign_id:int}/funnel", actions.campaign_funnel, name="actions:campaign_funnel"),
    Route("/admin/proposals/{proposal_id:int}/steps", actions.step_new, methods=["GET", "POST"],
          name="actions:step_new"),
    Route("/admin/proposals/{proposal_id:int}/funnel", actions.proposal_funnel, name="actions:funnel"),
    Route("/admin/steps/{step_id:int}/edit", actions.step_edit, methods=["GET", "POST"], name="actions:step_edit"),
    Route("/admin/steps/{step_id:int}/delete", actions.step_delete, methods=["GET", "POST"],
          name="actions:step_delete"),
    Route("/admin/steps/{step_id:int}/roster", actions.roster, name="actions:roster"),
    Route("/admin/steps/{step_id:int}/roster.csv", actions.roster_csv, name="actions:roster_csv"),
    Route("/admin/steps/{step_id:int}/message", actions.message, methods=["POST"], name="actions:message"),
    Route("/admin/participation", actions.dashboard, name="actions:dashboard"),
    # voting
    Route("/proposals/{proposal_id:int}/vote", voting.cast, methods=["POST"], name="voting:cast"),
    Route("/proposals/{proposal_id:int}/tally", voting.tally, name="voting:tally"),
    Route("/proposals/{proposal_id:int}/results", voting.results, name="voting:results"),
    Route("/proposals/{proposal_id:int}/results.json", voting.results_json, name="voting:results_json"),
    Route("/proposals/{proposal_id:int}/results.csv", voting.results_csv, name="voting:results_csv"),
    Route("/proposals/{proposal_id:int}/ballots.csv", voting.ballots_csv, name="voting:ballots_csv"),
    Route("/proposals/{proposal_id:int}/ballots.json", voting.ballots_json, name="voting:ballots_json"),
    Route("/proposals/{proposal_id:int}/receipt", voting.check_receipt, methods=["POST"], name="voting:receipt"),
    Route("/proposals/{proposal_id:int}/receipts", voting.receipts, name="voting:receipts"),
    Route("/vote/{token}", voting_links.vote_link, methods=["GET", "POST"], name="voting:link"),
    Route("/admin/outbox", mail.outbox, methods=["GET"], name="admin:outbox"),
    Route("/admin/outbox/{message_id:int}", mail.outbox_message, methods=["GET"], name="admin:outbox_message"),
    Route("/admin/outbox/{message_id:int}/retry", mail.outbox_retry, methods=["POST"], name="admin:outbox_retry"),
    Route("/admin/outbox/{message_id:int}/cancel", mail.outbox_cancel, methods=["POST"], name="admin:outbox_cancel"),
    Route("/admin/mail", mail.admin_mail, methods=["GET", "POST"], name="admin:mail"),
    # mail: the one-click unsubscribe and the inbound webhook (CSRF-exempt: see CSRF_EXEMPT in main.py)
    Route("/unsubscribe/{token}", mail.unsubscribe, methods=["GET", "POST"], name="mail:unsubscribe"),
    Route("/inbound/email", inbound_views.inbound_email, methods=["POST"], name="mail:inbound"),
    Mount("/static", StaticFiles(directory=ROOT / "static"), name="static"),
]
