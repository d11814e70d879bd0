"""Pages and htmx fragments for comments, and the admins' moderation queue.

Every handler asks the services for the proposal or comment named in the URL (`proposal_for`/`comment_for`
apply `can_see`), so an id is never trusted on its own. With htmx a handler answers with the fragment that
changed (a comment, a batch of comments, a form, an endorse button); without it, a form posts and is
redirected (303) to the comment's anchor, and a refusal shows a page with the form and the text as sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app import htmx, security, web
from app.comments import forms, moderation, queries, services
from app.comments.forms import CommentForm
from app.comments.models import Comment
from app.comments.services import CommentError
from app.db import run_db
from app.middleware import CurrentMember
from app.templating import page_or_fragment, render, see_other

T = TypeVar("T")


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 else None


def _path_id(request: Request, name: str) -> int:
    return int(request.path_params[name])


async def _read(request: Request, fn: Callable[[Session], T]) -> T:
    def run() -> T:
        with web.db(request).read() as s:
            return fn(s)

    try:
        return await run_db(run)
    except CommentError as exc:
        raise HTTPException(exc.status, str(exc)) from None


async def _write(request: Request, fn: Callable[[Session], T]) -> T:
    def run() -> T:
        with web.db(request).begin() as s:
            return fn(s)

    return await run_db(run)


def _url(request: Request, name: str, **params: Any) -> str:
    return str(request.app.url_path_for(name, **params))


def anchor(request: Request, c: Comment | queries.CommentView) -> str:
    """Where a comment can be seen without JavaScript: a reply on its thread's page starting at it, a top-level
    comment on its own thread page."""
    if c.parent_id is not None:
        return (_url(request, "comments:replies", comment_id=c.parent_id) + f"?after={c.id - 1}"
                + f"#comment-{c.id}")
    return _url(request, "comments:thread", comment_id=c.id) + f"#comment-{c.id}"


def _new_anchor(request: Request, c: Comment) -> str:
    """Where a comment just posted appears first: the proposal's page (newest first), or its paragraph's."""
    if c.parent_id is None and c.paragraph:
        return (_url(request, "comments:list", proposal_id=c.proposal_id) + f"?paragraph={c.paragraph}"
                + f"#comment-{c.id}")
    if c.parent_id is None:
        return _url(request, "proposals:detail", proposal_id=c.proposal_id) + f"#comment-{c.id}"
    return anchor(request, c)


# --- reading --------------------------------------------------------------------------------------------------

async def comment_list(request: Request) -> Response:
    """A batch of 50 comments: the "show more" fragment, or without JavaScript a page of its own (the first
    batch of a paragraph's comments is that paragraph's thread page)."""
    me = web.require_member(request)
    pid = _path_id(request, "proposal_id")
    qp = request.query_params
    sort, after = qp.get("sort", "newest")[:10], qp.get("after", "")[:30]
    paragraph, stance = _int(qp.get("paragraph")) or None, qp.get("stance", "")[:10] or None
    if stance not in (None, *services.STANCES):
        stance = None

    def load(s: Session) -> dict[str, Any]:
        p = services.proposal_for(s, me, pid)
        acc = services.access(s, me, p)
        texts = services.paragraphs(p.proposed_text)
        if paragraph is not None and not 1 <= paragraph <= len(texts):
            raise CommentError("The proposed text has no such paragraph.", 404)
        first = not queries.parse_cursor(sort, after) and not stance
        page = queries.comment_page(s, acc, p, sort=sort, after=after, paragraph=paragraph, stance=stance,
                                    with_pinned=first)
        return {"p": p, "acc": acc, "page": page,
                "paragraph_text": texts[paragraph - 1] if paragraph else None,
                "pinned": page.pinned,
                "total": queries.counts(s, p)[0],
                "form": forms.new_form(acc, p, paragraph=paragraph) if first else None}

    ctx = await _read(request, load)
    return page_or_fragment(request, "comments/list.html", "comments/_list.html", ctx)


async def news(request: Request) -> Response:
    """For a proposal's open page, after its event stream said "comment": the comments it has not been sent yet,
    each put into its place out of band, and the element that asks again. Without htmx: the page itself."""
    me = web.require_member(request)
    pid = _path_id(request, "proposal_id")
    if not htmx.is_partial(request):
        return RedirectResponse(_url(request, "proposals:detail", proposal_id=pid) + "#comments", status_code=303)
    after = _int(request.query_params.get("after")) or 0

    def load(s: Session) -> dict[str, Any]:
        p = services.proposal_for(s, me, pid)
        acc = services.access(s, me, p)
        return {"p": p, "news": queries.news(s, acc, p, after, acc.now)}

    return render(request, "comments/_news.html", await _read(request, load))


async def sides(request: Request) -> Response:
    """Arguments for and against, side by side, most endorsed first."""
    me = web.require_member(request)
    pid = _path_id(request, "proposal_id")

    def load(s: Session) -> dict[str, Any]:
        p = services.proposal_for(s, me, pid)
        acc = services.access(s, me, p)
        return {"p": p, "acc": acc, "stance_counts": queries.counts(s, p)[1],
                "columns": [(stance, queries.comment_page(s, acc, p, sort="endorsed", stance=stance))
                            for stance in ("for", "against")]}

    return render(request, "comments/sides.html", await _read(request, load))


def _thread(s: Session, me: CurrentMember, comment_id: int, after: str) -> dict[str, Any]:
    c, p = services.comment_for(s, me, comment_id)
    if c.parent_id is not None:
        c = s.get_one(Comment, c.parent_id)
    acc = services.access(s, me, p)
    top = queries.one(s, acc, c.id, replies=False)
    page = queries.reply_page(s, acc, c, after)
    top.replies, top.replies_next = page.comments, page.next_after
    form = forms.new_form(acc, p, kind="reply", parent_id=c.id) if top.can_reply else None
    texts = services.paragraphs(p.proposed_text) if c.paragraph else []
    return {"p": p, "acc": acc, "c": top, "page": page, "form": form,
            "paragraph_text": texts[c.paragraph - 1] if c.paragraph and c.paragraph <= len(texts) else None}


async def thread(request: Request) -> Response:
    """A comment's thread page; to htmx, the comment alone (e.g. to cancel an edit)."""
    me = web.require_member(request)
    cid = _path_id(request, "comment_id")
    if htmx.is_partial(request):
        def load_one(s: Session) -> dict[str, Any]:
            _c, p = services.comment_for(s, me, cid)
            return {"c": queries.one(s, services.access(s, me, p), cid)}

        return render(request, "comments/_comment.html", await _read(request, load_one))
    return render(request, "comments/thread.html", await _read(request, lambda s: _thread(s, me, cid, "")))


async def replies(request: Request) -> Response:
    """A batch of a thread's replies (htmx: "show all replies" and "show more"), or the thread page from there."""
    me = web.require_member(request)
    cid = _path_id(request, "comment_id")
    after = request.query_params.get("after", "")[:20]
    ctx = await _read(request, lambda s: _thread(s, me, cid, after))
    return page_or_fragment(request, "comments/thread.html", "comments/_list.html", ctx)


# --- posting --------------------------------------------------------------------------------------------------

async def _form_page(request: Request, me: CurrentMember, form: CommentForm, status: int,
                     heading: str) -> Response:
    """The form again (with its text and the error), as a fragment for htmx or a page of its own."""
    def load(s: Session) -> dict[str, Any]:
        p = services.proposal_for(s, me, form.proposal_id)
        acc = services.access(s, me, p)
        target = None
        if form.kind in ("reply", "edit"):
            target_id = form.parent_id if form.kind == "reply" else form.comment_id
            c = s.get(Comment, target_id or 0)
            if c is None or c.proposal_id != p.id:
                raise CommentError("There is no such comment.", 404)
            target = queries.one(s, acc, c.id, replies=False)
        return {"p": p, "acc": acc, "target": target}

    ctx = await _read(request, load)
    fitted = forms.fit(form, ctx["acc"])
    if fitted is None:  # nothing this member may post here any more: say why, without a form
        fitted = form
        form.allow_ordinary = form.allow_stance = False
    ctx.update(form=fitted, heading=heading)
    return page_or_fragment(request, "comments/form.html", "comments/_form.html", ctx, status_code=status)


async def create(request: Request) -> Response:
    me = web.require_member(request)
    pid = _path_id(request, "proposal_id")
    form = forms.parse(await web.form(request), pid)

    def do(s: Session) -> Comment:
        c = services.post_comment(s, me, pid, body=form.body, stance=form.stance, parent_id=form.parent_id,
                                  paragraph=form.paragraph, response_status=form.response_status,
                                  settings=web.settings(request))
        s.expunge(c)
        return c

    try:
        c = await _write(request, do)
    except CommentError as exc:
        form.error = str(exc)
        heading = "Reply" if form.kind == "reply" else "Your comment"
        return await _form_page(request, me, form, exc.status, heading)
    if not htmx.is_partial(request):
        return see_other(_new_anchor(request, c), "Your comment is posted.")

    def load(s: Session) -> dict[str, Any]:
        p = services.proposal_for(s, me, pid)
        acc = services.access(s, me, p)
        fresh = forms.new_form(acc, p, kind=form.kind, parent_id=c.parent_id, paragraph=c.paragraph)
        return {"new": queries.one(s, acc, c.id), "form": fresh, "sent": form, "total": queries.counts(s, p)[0]}

    ctx = await _read(request, load)
    official_top = c.response_status is not None and c.parent_id is None
    suffix = f"-p{c.paragraph}" if c.paragraph else ""
    ctx["oob_target"] = f"pinned-list{suffix}" if official_top else form.list_id
    ctx["oob_where"] = "beforeend" if c.parent_id else "afterbegin"
    return render(request, "comments/_posted.html", ctx)


async def reply_form(request: Request) -> Response:
    me = web.require_member(request)
    cid = _path_id(request, "comment_id")

    def load(s: Session) -> dict[str, Any]:
        c, p = services.comment_for(s, me, cid)
        if c.parent_id is not None:
            c = s.get_one(Comment, c.parent_id)
        services.require_live(c, "get new replies")
        acc = services.access(s, me, p)
        form = forms.new_form(acc, p, kind="reply", parent_id=c.id)
        if form is None:
            raise acc.refusal() or CommentError("You can't reply here.", 409)
        return {"p": p, "acc": acc, "form": form, "target": queries.one(s, acc, c.id, replies=False),
                "heading": "Reply"}

    return page_or_fragment(request, "comments/form.html", "comments/_form.html", await _read(request, load))


async def edit(request: Request) -> Response:
    me = web.require_member(request)
    cid = _path_id(request, "comment_id")
    if request.method == "GET":
        def load(s: Session) -> dict[str, Any]:
            c, p = services.comment_for(s, me, cid)
            if c.author_id != me.id:
                raise CommentError("You can only edit your own comments.", 403)
            acc = services.access(s, me, p)
            if not services.can_edit(c, acc):
                raise CommentError("This comment can no longer be edited (a comment can be edited for 30 "
                                   "minutes after it is posted, while comments are open).", 409)
            form = CommentForm(proposal_id=p.id, kind="edit", comment_id=c.id, parent_id=c.parent_id,
                               paragraph=c.paragraph, body=c.body_md, stance=c.stance or "")
            forms.fit(form, acc)
            form.allow_stance = c.parent_id is None and not c.is_official
            return {"p": p, "acc": acc, "form": form, "target": None, "heading": "Edit your comment"}

        return page_or_fragment(request, "comments/form.html", "comments/_form.html", await _read(request, load))

    data = await web.form(request)
    sent = forms.parse(data, 0)

    def do(s: Session) -> Comment:
        c = services.edit_comment(s, me, cid, body=sent.body, stance=sent.stance, settings=web.settings(request))
        s.expunge(c)
        return c

    try:
        c = await _write(request, do)
    except CommentError as exc:
        def where(s: Session) -> Comment | None:
            found = s.get(Comment, cid)
            if found is not None:
                s.expunge(found)
            return found

        found = await _read(request, where)
        if found is None:
            raise HTTPException(404) from None
        form = CommentForm(proposal_id=found.proposal_id, kind="edit", comment_id=cid, parent_id=found.parent_id,
                           paragraph=found.paragraph, body=sent.body, stance=sent.stance, error=str(exc))
        return await _form_page(request, me, form, exc.status, "Edit your comment")
    if not htmx.is_partial(request):
        return see_other(anchor(request, c), "Your comment is updated.")
    return await _comment_fragment(request, me, c.id)


async def _comment_fragment(request: Request, me: CurrentMember, cid: int, status: int = 200) -> Response:
    def load(s: Session) -> dict[str, Any]:
        _c, p = services.comment_for(s, me, cid)
        return {"c": queries.one(s, services.access(s, me, p), cid)}

    return render(request, "comments/_comment.html", await _read(request, load), status_code=status)


def _refused(request: Request, exc: CommentError) -> Response:
    return render(request, "errors/error.html", {"status": exc.status, "title": "This can't be done",
                                                 "message": str(exc)}, status_code=exc.status)


async def delete(request: Request) -> Response:
    me = web.require_member(request)
    cid = _path_id(request, "comment_id")

    def do(s: Session) -> tuple[Comment, bool]:
        c, _p = services.comment_for(s, me, cid)
        s.expunge(c)
        kept = services.delete_comment(s, me, cid) is not None
        return c, kept

    try:
        c, kept = await _write(request, do)
    except CommentError as exc:
        return _refused(request, exc)
    if htmx.is_partial(request):
        if kept:
            return await _comment_fragment(request, me, cid)
        return htmx.vary(HTMLResponse(""))
    if c.parent_id is not None:
        where = _url(request, "comments:thread", comment_id=c.parent_id) + f"#comment-{c.parent_id}"
    elif kept:
        where = anchor(request, c)
    else:
        where = _url(request, "proposals:detail", proposal_id=c.proposal_id) + "#comments"
    return see_other(where, "Your comment is deleted.")


async def endorse(request: Request) -> Response:
    me = web.require_member(request)
    cid = _path_id(request, "comment_id")
    on = web.text(await web.form(request), "endorse", 2) != "0"

    def do(s: Session) -> Comment:
        c = services.endorse(s, me, cid, on=on)
        s.expunge(c)
        return c

    try:
        c = await _write(request, do)
        error, status = None, 200
    except CommentError as exc:
        if not htmx.is_partial(request) or exc.status == 404:
            return _refused(request, exc)
        c, error, status = None, str(exc), exc.status
    if not htmx.is_partial(request):
        return see_other(anchor(request, c), "Endorsed." if on else "Endorsement withdrawn.")

    def load(s: Session) -> dict[str, Any]:
        _c, p = services.comment_for(s, me, cid)
        return {"c": queries.one(s, services.access(s, me, p), cid, replies=False), "endorse_error": error}

    return render(request, "comments/_endorse.html", await _read(request, load), status_code=status)


async def flag(request: Request) -> Response:
    me = web.require_member(request)
    cid = _path_id(request, "comment_id")

    def target(s: Session) -> dict[str, Any]:
        c, p = services.comment_for(s, me, cid)
        view = queries.one(s, services.access(s, me, p), cid, replies=False)
        return {"p": p, "target": view, "reason": "", "error": None, "done": False}

    if request.method == "GET":
        ctx = await _read(request, target)
        if not ctx["target"].can_flag:
            raise HTTPException(409, "You can't flag this comment: it is yours, or it was deleted or hidden.")
        return page_or_fragment(request, "comments/flag.html", "comments/_flag_form.html", ctx)
    reason = forms.reason(await web.form(request))
    try:
        await _write(request, lambda s: services.flag(s, me, cid, reason=reason))
    except CommentError as exc:
        if exc.status == 404:
            raise HTTPException(404, str(exc)) from None
        ctx = await _read(request, target)
        ctx.update(reason=reason, error=str(exc))
        return page_or_fragment(request, "comments/flag.html", "comments/_flag_form.html", ctx,
                                status_code=exc.status)
    if htmx.is_partial(request):
        ctx = await _read(request, target)
        ctx["done"] = True
        return render(request, "comments/_flag_form.html", ctx)
    found = await _read(request, lambda s: queries.one(s, services.access(s, me, services.comment_for(s, me, cid)[1]),
                                                       cid, replies=False))
    return see_other(anchor(request, found), "Thank you. An admin will look at the comment.")


# --- admins ---------------------------------------------------------------------------------------------------

async def _admin_change(request: Request, change: Callable[[Session, CurrentMember, dict[str, str]], Any],
                        done: str, *, fragment_of: int | None = None,
                        fields: tuple[str, ...] = ("reason",)) -> Response:
    me = web.require_admin(request)
    data = await web.form(request)
    values = {name: web.text(data, name, 1000) for name in (*fields, "next")}

    try:
        await _write(request, lambda s: change(s, me, values))
    except CommentError as exc:
        if htmx.is_partial(request) and fragment_of is not None and exc.status != 404:
            return await _comment_fragment(request, me, fragment_of, exc.status)
        return _refused(request, exc)
    if htmx.is_partial(request) and fragment_of is not None:
        return await _comment_fragment(request, me, fragment_of)
    return see_other(security.safe_next(values["next"], _url(request, "comments:moderation")), done)


async def hide(request: Request) -> Response:
    cid = _path_id(request, "comment_id")
    return await _admin_change(
        request, lambda s, me, v: moderation.hide(s, me, cid, reason=v["reason"], ip=web.client_ip(request)),
        "The comment is hidden from members.", fragment_of=cid)


async def restore(request: Request) -> Response:
    cid = _path_id(request, "comment_id")
    return await _admin_change(
        request, lambda s, me, v: moderation.restore(s, me, cid, ip=web.client_ip(request)),
        "The comment is restored.", fragment_of=cid)


async def keep(request: Request) -> Response:
    cid = _path_id(request, "comment_id")
    return await _admin_change(
        request, lambda s, me, v: moderation.keep(s, me, cid, ip=web.client_ip(request)),
        "The comment stays; its flags are resolved.")


async def close(request: Request) -> Response:
    pid = _path_id(request, "proposal_id")
    closing = request.url.path.endswith("/close")
    detail = _url(request, "proposals:detail", proposal_id=pid) + "#comments"

    def change(s: Session, me: CurrentMember, v: dict[str, str]) -> None:
        moderation.set_closed(s, me, pid, closed=closing, ip=web.client_ip(request))

    response = await _admin_change(request, change, "", fields=())
    if response.status_code == 303:
        return see_other(detail, "Comments are closed. They stay readable." if closing
                         else "Comments are open again.")
    return response


async def block(request: Request) -> Response:
    def change(s: Session, me: CurrentMember, v: dict[str, str]) -> None:
        member_id = _int(v["member_id"]) or moderation.member_id_by_email(s, v["email"])
        days = _int(v["days"])
        if days is None:
            raise CommentError(f"Block for a whole number of days, 1 to {services.BLOCK_DAYS_MAX}.")
        moderation.block_member(s, me, member_id, days=days, reason=v["reason"], ip=web.client_ip(request))

    return await _admin_change(request, change, "The member can't comment until the block ends.",
                               fields=("member_id", "email", "days", "reason"))


async def unblock(request: Request) -> Response:
    block_id = _path_id(request, "block_id")
    return await _admin_change(
        request, lambda s, me, v: moderation.lift_block(s, me, block_id, ip=web.client_ip(request)),
        "The block is lifted.", fields=())


async def moderation_queue(request: Request) -> Response:
    web.require_admin(request)
    return render(request, "admin/moderation.html", {"queue": await _read(request, moderation.queue)})
