"""The comment forms: what a posted form says, and what a form on the page needs to show itself again.

One `CommentForm` describes every comment form (a new comment, a paragraph comment, a reply, an edit); its
`key` keeps the ids of several forms on one page apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import FormData

from app.comments.services import MAX_LENGTH, REASON_MAX, STATUSES, Access
from app.proposals.models import Proposal


@dataclass
class CommentForm:
    proposal_id: int
    kind: str = "comment"  # "comment", "reply" or "edit"
    parent_id: int | None = None
    paragraph: int | None = None
    comment_id: int | None = None  # the comment being edited
    body: str = ""
    stance: str = ""
    response_status: str = ""
    error: str | None = None
    # What the asking member may choose: a position (top-level comments), ordinary or official (admins).
    allow_stance: bool = True
    allow_ordinary: bool = True
    allow_official: bool = False

    @property
    def key(self) -> str:
        if self.kind == "edit":
            return f"e{self.comment_id}"
        if self.kind == "reply":
            return f"r{self.parent_id}"
        return f"p{self.paragraph}" if self.paragraph else "main"

    @property
    def status_choices(self) -> list[tuple[str, str]]:
        return [(str(k), v) for k, v in STATUSES.items()]

    @property
    def list_id(self) -> str:
        """The element new comments from this form go into."""
        if self.kind == "reply":
            return f"replies-{self.parent_id}"
        return f"comment-list-p{self.paragraph}" if self.paragraph else "comment-list"


def new_form(acc: Access, p: Proposal, *, kind: str = "comment", parent_id: int | None = None,
             paragraph: int | None = None) -> CommentForm | None:
    """A blank form for this member, or None when they can't post one here now."""
    return fit(CommentForm(proposal_id=p.id, kind=kind, parent_id=parent_id, paragraph=paragraph), acc)


def fit(form: CommentForm, acc: Access) -> CommentForm | None:
    """Set what the member may choose; None if the form has nothing left to offer them."""
    form.allow_official = acc.is_admin and form.kind != "edit"
    form.allow_ordinary = acc.can_post or form.kind == "edit"
    form.allow_stance = form.kind != "reply" and form.allow_ordinary
    return form if form.allow_ordinary or form.allow_official else None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) < 10 else None


def _str(data: FormData, name: str, limit: int) -> str:
    value = data.get(name)
    return value[:limit] if isinstance(value, str) else ""


def parse(data: FormData, proposal_id: int) -> CommentForm:
    """The fields as sent. The body is cut a little above the limit so the service can say how long it was."""
    parent_id = _int(data.get("parent_id"))
    return CommentForm(
        proposal_id=proposal_id, kind="reply" if parent_id else "comment", parent_id=parent_id,
        paragraph=_int(data.get("paragraph")), body=_str(data, "body", MAX_LENGTH * 2),
        stance=_str(data, "stance", 20), response_status=_str(data, "response_status", 20),
    )


def reason(data: FormData) -> str:
    return _str(data, "reason", REASON_MAX * 2)
