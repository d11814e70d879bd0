"""What is left of an email reply to post: the shapes Gmail, Outlook and Apple Mail give replies (plain and HTML),
signatures, answers written below the quote, HTML-only replies, empty and attachment-only messages."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from app.mail.reply_text import NoText, reply_text, strip_quotes
from app.text import excerpt, html_to_text, markdown_excerpt

ADDRESS = "reply+2-1-5-k7n5mpeu36mwdy2ruxhlkw7btm@replies.example.org"
QUOTED = "> Hello Mia Member,\n>\n> Olu Other replied to your comment on \"Paint the hall green?\":\n>\n> Which green?"

SHAPES = {
    # Gmail wraps the header line when the sender's address is long.
    "gmail": (f"Dark green, like the door.\n\nOn Mon, Dec 1, 2026 at 10:00 AM Riverside Tenants <\n{ADDRESS}> "
              f"wrote:\n\n{QUOTED}\n", "Dark green, like the door."),
    "gmail, German": (f"Dunkelgrün.\n\nAm Mo., 1. Dez. 2026 um 10:00 Uhr schrieb Riverside Tenants <{ADDRESS}>:\n\n"
                      f"{QUOTED}\n", "Dunkelgrün."),
    "gmail, French": (f"Vert foncé.\n\nLe lun. 1 déc. 2026 à 10:00, Riverside Tenants <{ADDRESS}> a écrit :\n\n"
                      f"{QUOTED}\n", "Vert foncé."),
    "outlook": ("We should ask the landlord first.\n\nKind regards,\nMia\n\n________________________________\n"
                f"From: Riverside Tenants <{ADDRESS}>\nSent: Monday, December 1, 2026 10:00 AM\nTo: Mia Member "
                "<mia@example.org>\nSubject: Olu Other replied to your comment: Paint the hall green?\n\n"
                "Hello Mia Member,\n", "We should ask the landlord first."),
    "outlook, no separator": ("Fine with me.\n\nFrom: Riverside Tenants <plenary@vote.example.org>\n"
                              "Sent: Monday, December 1, 2026 10:00 AM\nTo: Mia Member\nSubject: Vote: Paint?\n\n"
                              "Hello\n", "Fine with me."),
    "apple mail": (f"Sounds good to me.\n\nSent from my iPhone\n\n> On 1 Dec 2026, at 10:00, Riverside Tenants "
                   f"<{ADDRESS}> wrote:\n>\n{QUOTED}\n", "Sounds good to me."),
    "signature": ("Short answer.\n\n-- \nMia Member\nFlat 3\n", "Short answer."),
    "answer below the quote": (f"On Mon, Dec 1, 2026 at 10:00 AM Olu wrote:\n{QUOTED}\n\nDark green.\n",
                               "Dark green."),
    "markdown survives": ("Three points:\n\n- cost\n- colour\n\n> the proposal says green\n\nThat is all.\n\n"
                          f"On Mon, Dec 1, 2026 at 10:00 AM Olu wrote:\n{QUOTED}\n",
                          "Three points:\n\n- cost\n- colour\n\n> the proposal says green\n\nThat is all."),
    "a trailing quote without a header": ("Yes.\n\n> Which green?\n", "Yes."),
    "only the quote": (f"On Mon, Dec 1, 2026 at 10:00 AM Olu wrote:\n{QUOTED}\n", ""),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_the_reply_is_what_the_member_wrote(name):
    text, expected = SHAPES[name]
    assert strip_quotes(text) == expected
    assert strip_quotes(text.replace("\n", "\r\n")) == expected


def message(text: str | None = None, html: str | None = None, attachment: bool = False) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "mia@example.org", ADDRESS, "Re: Paint the hall green?"
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    if attachment:
        if text is None and html is None:
            msg.make_mixed()
        msg.add_attachment(b"\x89PNG\r\n", maintype="image", subtype="png", filename="a.png")
    return msg


GMAIL_HTML = ('<div dir="ltr">Dark <b>green</b>,<br>like the <a href="https://example.org/door">door</a>.</div><br>'
              '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, Dec 1, 2026 at 10:00 AM Riverside '
              'Tenants &lt;reply+x@y.org&gt; wrote:<br></div><blockquote class="gmail_quote" style="margin:0">'
              '<p>Hello Mia Member,</p><p>Which green?</p></blockquote></div>')
OUTLOOK_HTML = ('<html><head><style>p {margin:0}</style></head><body><div>We agree.</div><div id="appendonsend">'
                '</div><hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg"><b>From:</b> Riverside '
                'Tenants &lt;plenary@vote.example.org&gt;<br><b>Sent:</b> Monday, December 1, 2026 10:00 AM<br>'
                '<b>To:</b> Mia Member<br><b>Subject:</b> Vote: Paint?</div><div>Hello Mia</div></body></html>')
APPLE_HTML = ('<html><body><div>Fine by me.</div><div><br></div><div>Sent from my iPhone</div><div><br><blockquote '
              'type="cite">On 1 Dec 2026, at 10:00, Riverside Tenants &lt;x@y&gt; wrote:<br><br>Hello</blockquote>'
              '</div></body></html>')


@pytest.mark.parametrize(("html", "expected"), [
    (GMAIL_HTML, "Dark green,\nlike the door (https://example.org/door)."),
    (OUTLOOK_HTML, "We agree."),
    (APPLE_HTML, "Fine by me."),
])
def test_html_only_replies_are_read_as_text(html, expected):
    assert reply_text(message(html=html)) == expected


def test_the_text_part_is_preferred_to_the_html_part():
    assert reply_text(message("Plain wins.", "<p>HTML loses.</p>")) == "Plain wins."
    assert reply_text(message("\n", "<p>A blank text part: the HTML counts.</p>")) == \
        "A blank text part: the HTML counts."


def test_nothing_to_post():
    with pytest.raises(NoText) as empty:
        reply_text(message(SHAPES["only the quote"][0]))
    assert not empty.value.attachments_only
    with pytest.raises(NoText) as files:
        reply_text(message(attachment=True))
    assert files.value.attachments_only
    with pytest.raises(NoText) as blank:
        reply_text(message("   \n\n", attachment=True))
    assert blank.value.attachments_only
    assert reply_text(message("Words and a file.", attachment=True)) == "Words and a file."


def test_html_to_text_and_excerpts():
    assert html_to_text("<script>alert(1)</script><p>a &amp; b</p><ul><li>one</li><li>two</li></ul>") == \
        "a & b\n\n- one\n- two"
    assert html_to_text("<p>unclosed <b>tags") == "unclosed tags"
    assert excerpt("One. Two is here. " + "x " * 200, 40) == "One. Two is here."
    assert excerpt("word " * 50, 30).endswith("…") and len(excerpt("word " * 50, 30)) <= 30
    assert markdown_excerpt("**Bold** and <script>x</script> [a link](https://e.org)") == \
        "Bold and <script>x</script> a link (https://e.org)"
