"""Reading comments: a page of a proposal's (or a paragraph's) comments, a thread, one comment, the counts.

Long discussions stay fast. Pages are 50 comments, found by keyset pagination over the `ix_comments_list` and
`ix_comments_endorsed` indexes (the cursor is the last comment's id, or its endorsement count and id), so a
later page costs what the first does. A page is loaded in a fixed number of statements however many comments
it shows: the comments with their authors (one join), the first replies of all of them (one window query),
which of them the reader endorsed (one IN query), and, for admins, earlier versions (one IN query).
Endorsement counts live on the comment row.

What a member may not see is decided here, not in templates: a hidden comment reaches a member's page as a
`CommentView` without its text, author or stance, so no template, fragment or export can show them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from sqlalchemy import bindparam, case, func, select, union_all
from sqlalchemy.orm import Session

from app.comments.forms import CommentForm, new_form
from app.comments.models import Comment, CommentCount, CommentKind, CommentRevision, Endorsement
from app.comments.services import STANCES, STATUSES, Access, access, can_edit, paragraphs
from app.markdown import render_markdown
from app.members.models import Member
from app.middleware import CurrentMember
from app.proposals.models import Kind, Proposal, State

PAGE_SIZE = 50
REPLY_PREVIEW = 3  # threads with more replies than this show "N replies", collapsed
PINNED_MAX = 20
SORTS = {"newest": "Newest first", "oldest": "Oldest first", "endorsed": "Most endorsed first"}
_CURSOR = re.compile(r"^(?:(\d{1,9})\.)?(\d{1,12})$")


@dataclass
class RevisionView:
    body_html: Markup
    stance: str | None
    written_at: dt.datetime


@dataclass
class CommentView:
    """One comment as this reader may see it. `body_html` and `author_name` are None when not shown."""

    id: int
    proposal_id: int
    parent_id: int | None
    paragraph: int | None
    state: str  # "shown", "hidden" (by a moderator) or "deleted" (by its author, kept for its replies)
    author_id: int | None
    author_name: str | None
    stance: str | None
    response_status: str | None
    body_html: Markup | None
    created_at: dt.datetime
    edited_at: dt.datetime | None
    hidden_reason: str
    endorsements: int
    endorsed: bool = False
    mine: bool = False
    can_edit: bool = False
    can_delete: bool = False
    can_endorse: bool = False
    can_flag: bool = False
    can_reply: bool = False
    replies: list[CommentView] = field(default_factory=list)
    reply_count: int = 0
    collapsed: bool = False  # more replies than shown: "Show all N replies"
    revisions: list[RevisionView] = field(default_factory=list)

    replies_next: str | None = None  # on a thread's page: the cursor of the next batch of replies

    @property
    def shows_content(self) -> bool:
        return self.body_html is not None

    @property
    def stance_label(self) -> str:
        return STANCES.get(self.stance or "", "")  # type: ignore[call-overload]

    @property
    def status_label(self) -> str:
        return STATUSES.get(self.response_status or "", "")  # type: ignore[call-overload]


@dataclass
class Page:
    comments: list[CommentView]
    proposal_id: int
    pinned: list[CommentView] = field(default_factory=list)  # official responses, on a first page
    sort: str = "newest"
    after: str = ""
    next_after: str | None = None
    paragraph: int | None = None
    stance: str | None = None
    parent_id: int | None = None  # a page of one thread's replies

    @property
    def sort_choices(self) -> list[tuple[str, str]]:
        return list(SORTS.items())

    @property
    def next_query(self) -> str:
        """The query string of the next batch's URL."""
        if self.parent_id is not None:
            return urlencode({"after": self.next_after})
        params: dict[str, Any] = {"sort": self.sort, "after": self.next_after}
        if self.paragraph:
            params["paragraph"] = self.paragraph
        if self.stance:
            params["stance"] = self.stance
        return urlencode(params)


@dataclass
class Paragraph:
    number: int
    text: str
    count: int


@dataclass
class Section:
    """Everything the comments part of a proposal's page shows."""

    proposal: Proposal
    access: Access
    page: Page
    pinned: list[CommentView]
    total: int
    stance_counts: dict[str, int]
    paragraphs: list[Paragraph]
    feedback_status: str | None
    form: CommentForm | None
    live_cursor: int = 0  # where the page's live update starts (`news`)

    @property
    def feedback_label(self) -> str:
        return STATUSES.get(self.feedback_status or "", "")  # type: ignore[call-overload]


def parse_cursor(sort: str, after: str) -> tuple[int | None, int] | None:
    m = _CURSOR.match(after or "")
    if m is None or (sort == "endorsed") != (m.group(1) is not None):
        return None
    return (int(m.group(1)) if m.group(1) else None), int(m.group(2))


def _cursor(sort: str, c: Any) -> str:
    return f"{c.endorsement_count}.{c.id}" if sort == "endorsed" else str(c.id)


# Comments are read as rows, not entities: a page shows 50 of them with their replies, and loading each into an
# ORM object cost several times the row (a row's attributes have the same names as the entity's).
_COLUMNS = tuple(Comment.__table__.c)
_BASE = select(*_COLUMNS, Member.name.label("author_name")).outerjoin(Member, Member.id == Comment.author_id)


def _rows(session: Session, query: Any, params: dict[str, Any] | None = None) -> list[Any]:
    return list(session.connection().execute(query, params or {}).all())


# --- building views -------------------------------------------------------------------------------------------

def _view(c: Any, acc: Access) -> CommentView:
    """`c`: a row of `_BASE` (the comment's columns and its `author_name`)."""
    state = "deleted" if c.deleted_at else "hidden" if c.hidden_at else "shown"
    visible = state == "shown" or (state == "hidden" and acc.is_admin)
    mine = c.author_id is not None and c.author_id == acc.member_id
    live = state == "shown"
    return CommentView(
        id=c.id, proposal_id=c.proposal_id, parent_id=c.parent_id, paragraph=c.paragraph, state=state,
        author_id=c.author_id if visible else None,
        author_name=(c.author_name or "A former member") if visible else None,
        stance=c.stance if visible else None, response_status=c.response_status if visible else None,
        body_html=render_markdown(c.body_md) if visible else None,
        created_at=c.created_at, edited_at=c.edited_at if visible else None,
        hidden_reason=c.hidden_reason if state == "hidden" else "",
        endorsements=c.endorsement_count if visible else 0, mine=mine and visible,
        can_edit=live and can_edit(c, acc), can_delete=live and mine,
        can_endorse=live and not mine and acc.accepting, can_flag=live and not mine,
        can_reply=live and c.parent_id is None and (acc.can_post or acc.is_admin),
    )


def _annotate(session: Session, acc: Access, views: list[CommentView], edited: list[int]) -> None:
    """What the reader endorsed and (admins) earlier versions, for every comment at once."""
    ids = [v.id for v in views]
    if not ids:
        return
    mine = set(session.scalars(select(Endorsement.comment_id).where(
        Endorsement.member_id == acc.member_id, Endorsement.comment_id.in_(ids))))
    revisions: dict[int, list[RevisionView]] = {}
    if acc.is_admin and edited:
        for r in session.scalars(select(CommentRevision).where(CommentRevision.comment_id.in_(edited))
                                 .order_by(CommentRevision.comment_id, CommentRevision.id.desc())):
            revisions.setdefault(r.comment_id, []).append(
                RevisionView(body_html=render_markdown(r.body_md), stance=r.stance, written_at=r.written_at))
    for v in views:
        v.endorsed = v.id in mine
        v.revisions = revisions.get(v.id, [])


def _first_replies_query() -> Any:
    """The first replies of the given top-level comments (`tops`), officials first, with each thread's reply
    count: one window query, prebuilt, since building it cost more than running it."""
    ordering = (case((Comment.response_status.is_(None), 1), else_=0), Comment.id)
    ranked = select(
        Comment, Member.name.label("author_name"),
        func.row_number().over(partition_by=Comment.parent_id, order_by=ordering).label("rn"),
        func.count().over(partition_by=Comment.parent_id).label("n"),
    ).outerjoin(Member, Member.id == Comment.author_id).where(
        Comment.parent_id.in_(bindparam("tops", expanding=True))).subquery()
    return (select(*(ranked.c[col.name] for col in _COLUMNS), ranked.c.author_name, ranked.c.n)
            .where(ranked.c.rn <= REPLY_PREVIEW).order_by(ranked.c.parent_id, ranked.c.rn))


_FIRST_REPLIES = _first_replies_query()


def _with_replies(session: Session, acc: Access, tops: list[Any]) -> list[CommentView]:
    """Views of top-level comments (rows of `_BASE`) with their first replies (officials first), all in one
    window query."""
    views = [_view(c, acc) for c in tops]
    edited = [c.id for c in tops if c.edited_at is not None]
    all_views = list(views)
    top_ids = [v.id for v in views if v.parent_id is None]
    if top_ids:
        rows = _rows(session, _FIRST_REPLIES, {"tops": top_ids})
        by_parent = {v.id: v for v in views}
        for c in rows:
            parent = by_parent[c.parent_id]
            n = parent.reply_count = c.n
            reply = _view(c, acc)
            if n <= REPLY_PREVIEW or c.response_status is not None:
                parent.replies.append(reply)
                all_views.append(reply)
                if c.edited_at is not None:
                    edited.append(c.id)
        for v in views:
            if v.reply_count > REPLY_PREVIEW:
                v.collapsed = True
                v.replies.sort(key=lambda r: r.id)
    _annotate(session, acc, all_views, edited)
    return views


# --- pages ----------------------------------------------------------------------------------------------------

def _batch_query(acc: Access, p: Proposal, sort: str, cursor: tuple[int | None, int] | None,
                 paragraph: int | None, stance: str | None) -> Any:
    """A batch of top-level comments sorted, after a cursor or of one stance (the first page by newest is
    prebuilt: `_FIRST_PAGE`)."""
    where: list[Any] = [Comment.proposal_id == p.id, Comment.kind == CommentKind.COMMENT,
                        Comment.paragraph == (paragraph or 0)]
    if stance:
        where.append(Comment.stance == stance)
        if not acc.is_admin:
            where.append(Comment.hidden_at.is_(None))
    limit = PAGE_SIZE + 1
    if sort == "endorsed":
        by_count = (Comment.endorsement_count.desc(), Comment.id.desc())
        if cursor is None:
            q = _BASE.where(*where).order_by(*by_count).limit(limit)
        else:
            # "After (count, id)" as two index seeks in one statement: the rest of this count's comments, then
            # the lower counts. SQLite would walk a row-value comparison over the whole count instead.
            count, last = cursor
            same = _BASE.where(*where, Comment.endorsement_count == count, Comment.id < last) \
                .order_by(Comment.id.desc()).limit(limit).subquery()
            lower = _BASE.where(*where, Comment.endorsement_count < count).order_by(*by_count).limit(limit).subquery()
            both = union_all(select(same), select(lower)).subquery()
            q = select(*(both.c[col.name] for col in _COLUMNS), both.c.author_name) \
                .order_by(both.c.endorsement_count.desc(), both.c.id.desc()).limit(limit)
    else:
        if cursor is not None:
            where.append(Comment.id > cursor[1] if sort == "oldest" else Comment.id < cursor[1])
        q = _BASE.where(*where).order_by(Comment.id if sort == "oldest" else Comment.id.desc()).limit(limit)
    return q


def comment_page(session: Session, acc: Access, p: Proposal, *, sort: str = "newest", after: str = "",
                 paragraph: int | None = None, stance: str | None = None, with_pinned: bool = False) -> Page:
    """One batch of top-level comments. Official responses are apart: `with_pinned` loads them too (for a
    first page), in the same statements as the batch."""
    sort = sort if sort in SORTS else "newest"
    cursor = parse_cursor(sort, after)
    if sort == "newest" and cursor is None and not stance:
        q = _FIRST_PAGE  # every proposal page's: prebuilt (building its conditions cost about as much as the query)
    else:
        q = _batch_query(acc, p, sort, cursor, paragraph, stance)
    rows = _rows(session, q, {"pid": p.id, "paragraph": paragraph or 0})
    top = _pinned_rows(session, p, paragraph) if with_pinned else []
    views = _with_replies(session, acc, top + rows[:PAGE_SIZE])
    return Page(comments=views[len(top):], pinned=views[:len(top)], proposal_id=p.id, sort=sort,
                after=after if cursor else "",
                next_after=_cursor(sort, rows[PAGE_SIZE - 1]) if len(rows) > PAGE_SIZE else None,
                paragraph=paragraph, stance=stance)


# What every proposal page reads, prebuilt (building them cost about as much as running them): the newest
# comments of the proposal or of one paragraph, and its official responses.
_FIRST_PAGE = (_BASE.where(Comment.proposal_id == bindparam("pid"), Comment.kind == CommentKind.COMMENT,
                           Comment.paragraph == bindparam("paragraph"))
               .order_by(Comment.id.desc()).limit(PAGE_SIZE + 1))
_PINNED = (_BASE.where(Comment.proposal_id == bindparam("pid"), Comment.kind == CommentKind.RESPONSE,
                       Comment.paragraph == bindparam("paragraph"))
           .order_by(Comment.id.desc()).limit(PINNED_MAX))


def _pinned_rows(session: Session, p: Proposal, paragraph: int | None) -> list[Any]:
    """Official responses to the proposal (or to one paragraph), newest first."""
    return _rows(session, _PINNED, {"pid": p.id, "paragraph": paragraph or 0})


def reply_page(session: Session, acc: Access, parent: Comment, after: str = "") -> Page:
    """One batch of a thread's replies, oldest first."""
    cursor = parse_cursor("oldest", after)
    q = _BASE.where(Comment.parent_id == parent.id)
    if cursor is not None:
        q = q.where(Comment.id > cursor[1])
    rows = _rows(session, q.order_by(Comment.id).limit(PAGE_SIZE + 1))
    views = [_view(c, acc) for c in rows[:PAGE_SIZE]]
    _annotate(session, acc, views, [v.id for v in views if v.edited_at is not None])
    return Page(comments=views, proposal_id=parent.proposal_id, sort="oldest", after=after if cursor else "",
                next_after=str(views[-1].id) if len(rows) > PAGE_SIZE else None,
                paragraph=parent.paragraph, parent_id=parent.id)


def one(session: Session, acc: Access, comment_id: int, *, replies: bool = True) -> CommentView:
    """One comment as this reader may see it (a top-level one with its first replies, unless told not to)."""
    row = session.connection().execute(_BASE.where(Comment.id == comment_id)).one()
    if replies:
        return _with_replies(session, acc, [row])[0]
    view = _view(row, acc)
    _annotate(session, acc, [view], [view.id] if row.edited_at is not None else [])
    return view


# --- live updates ---------------------------------------------------------------------------------------------

# Comments ids are handed out before their transactions commit, so a comment can become visible after one with
# a higher id. A page's cursor therefore only moves past comments older than this (far longer than any comment's
# transaction): younger ones are sent again, and the page drops those it already has (static/live.js).
SETTLE = dt.timedelta(seconds=10)


@dataclass
class News:
    """Comments a page of the proposal has not been sent yet, by where the page shows them."""

    top: list[CommentView]  # the proposal's own comments, newest first
    pinned: list[CommentView]  # official responses to the proposal, newest first
    replies: list[CommentView]  # oldest first
    cursor: int  # the `after` of the next request
    total: int


def settled_cursor(session: Session, now: dt.datetime) -> int:
    """The id of the newest comment (of any proposal) written more than SETTLE ago: every comment at or below it
    has committed."""
    return session.connection().execute(_SETTLED, {"before": now - SETTLE}).scalar() or 0


# Read on every proposal page: prebuilt, run on the session's connection (no ORM layer).
_SETTLED = (select(Comment.id).where(Comment.created_at < bindparam("before", type_=Comment.created_at.type))
            .order_by(Comment.id.desc()).limit(1))
_COUNTS = select(CommentCount.paragraph, CommentCount.stance, CommentCount.n).where(
    CommentCount.proposal_id == bindparam("pid"))


def news(session: Session, acc: Access, p: Proposal, after: int, now: dt.datetime) -> News:
    """The proposal's comments with an id above `after` (at most a page of them, the newest), as this reader may
    see them, for a page's live update. Comments on one paragraph are not on the proposal's page: left out."""
    rows = _rows(session, _BASE.where(Comment.proposal_id == p.id, Comment.id > after)
                 .order_by(Comment.id.desc()).limit(PAGE_SIZE))
    views = [_view(c, acc) for c in rows]
    _annotate(session, acc, views, [c.id for c in rows if c.edited_at is not None])
    top = [v for v, c in zip(views, rows, strict=True)
           if c.kind == CommentKind.COMMENT and not c.paragraph]
    pinned = [v for v, c in zip(views, rows, strict=True)
              if c.kind == CommentKind.RESPONSE and not c.paragraph]
    replies = [v for v in reversed(views) if v.parent_id is not None]
    return News(top=top, pinned=pinned, replies=replies, cursor=max(after, settled_cursor(session, now)),
                total=counts(session, p)[0])


def counts(session: Session, p: Proposal) -> tuple[int, dict[str, int], dict[int, int]]:
    """Comments with visible text: in all, top-level ones by stance, and per paragraph, from the handful of
    `comment_counts` rows the services keep (not by counting the comments)."""
    total, stances, per_paragraph = 0, {}, {}
    for paragraph, stance, n in session.connection().execute(_COUNTS, {"pid": p.id}):
        total += n
        if stance and not paragraph:
            stances[stance] = stances.get(stance, 0) + n
        if paragraph:
            per_paragraph[paragraph] = per_paragraph.get(paragraph, 0) + n
    return total, stances, per_paragraph


def section(session: Session, acc: Access, p: Proposal) -> Section:
    total, stances, per_paragraph = counts(session, p)
    page = comment_page(session, acc, p, with_pinned=True)
    top = page.pinned
    texts = paragraphs(p.proposed_text) if p.kind == Kind.POLICY else []
    return Section(
        proposal=p, access=acc, page=page, pinned=top, total=total,
        stance_counts=stances,
        paragraphs=[Paragraph(number=i, text=t, count=per_paragraph.get(i, 0)) for i, t in enumerate(texts, 1)],
        feedback_status=next((v.response_status for v in top if v.response_status), None),
        form=new_form(acc, p),
        live_cursor=settled_cursor(session, acc.now) if p.state == State.OPEN else 0,
    )


def section_for(session: Session, me: CurrentMember, p: Proposal) -> Section | None:
    """The comments part of a proposal's page, or None while the proposal has none (before voting opens)."""
    if p.state not in (State.OPEN, State.CLOSED):
        return None
    return section(session, access(session, me, p), p)
