"""Reply addresses: the signed token fits a local part, survives lower-casing, and nothing else passes for it."""

from __future__ import annotations

import dataclasses

import pytest

from app.mail.headers import unsubscribe_token
from app.mail.reply_address import (
    ReplyToken,
    read_reply_address,
    read_reply_token,
    reply_address,
    reply_headers,
    reply_token,
)
from app.settings import Settings, SettingsError

SETTINGS = Settings(base_url="https://vote.example.org", secret_key="k" * 40, env="test",
                    reply_domain="vote.example.org")


def test_round_trip_with_and_without_a_comment():
    for comment in (None, 1, 4242):
        token = reply_token(SETTINGS, member_id=17, proposal_id=3, comment_id=comment)
        assert read_reply_token(SETTINGS, token) == ReplyToken(17, 3, comment)


def test_the_longest_token_fits_a_local_part_and_uses_lowercase_only():
    top = 16**9 - 1
    address = reply_address(SETTINGS, member_id=top, proposal_id=top, comment_id=top)
    assert address is not None
    local, domain = address.split("@")
    assert len(local) <= 64 and domain == "vote.example.org"
    assert local == local.lower() and set(local) <= set("abcdefghijklmnopqrstuvwxyz0123456789+-")
    assert read_reply_address(SETTINGS, address) == ReplyToken(top, top, top)
    with pytest.raises(ValueError):
        reply_token(SETTINGS, member_id=top + 1, proposal_id=1)


def test_case_and_domain_do_not_matter_but_the_signature_does():
    address = reply_address(SETTINGS, member_id=5, proposal_id=9, comment_id=12)
    assert address is not None
    assert read_reply_address(SETTINGS, address.upper()) == ReplyToken(5, 9, 12)  # some servers upper-case it
    assert read_reply_address(SETTINGS, f"<{address.split('@')[0]}@forwarded.example>") == ReplyToken(5, 9, 12)
    token = address.split("+", 1)[1].split("@")[0]
    member, proposal, comment, mac = token.split("-")
    for altered in (f"6-{proposal}-{comment}-{mac}", f"{member}-{proposal}-0-{mac}", f"{member}-{proposal}-{comment}-"
                    f"{mac[:-1]}{'a' if mac[-1] != 'a' else 'b'}", f"0{member}-{proposal}-{comment}-{mac}", ""):
        assert read_reply_token(SETTINGS, altered) is None
    other = dataclasses.replace(SETTINGS, secret_key="z" * 40)
    assert read_reply_token(other, token) is None  # another installation's secret
    assert read_reply_address(SETTINGS, f"unsubscribe+{token}@vote.example.org") is None
    assert read_reply_address(SETTINGS, f"reply+{unsubscribe_token(SETTINGS, 5, 'mention')}@x.org") is None


def test_reply_headers_follow_the_reply_domain():
    assert reply_headers(SETTINGS, member_id=1, proposal_id=2)["Reply-To"].endswith("@vote.example.org")
    chosen = dataclasses.replace(SETTINGS, reply_domain="Replies.Example.org")
    assert reply_headers(chosen, member_id=1, proposal_id=2)["Reply-To"].endswith("@replies.example.org")
    # Off unless a domain is set: the base URL's host alone turns nothing on.
    for off in (dataclasses.replace(SETTINGS, reply_domain="off"), dataclasses.replace(SETTINGS, reply_domain="")):
        assert reply_headers(off, member_id=1, proposal_id=2) == {}


def test_settings_refuse_a_bad_reply_domain_or_a_short_inbound_secret(tmp_path):
    base = {"PLENARY_VAR_DIR": str(tmp_path)}
    with pytest.raises(SettingsError, match="REPLY_DOMAIN"):
        Settings.from_env({**base, "PLENARY_REPLY_DOMAIN": "not a domain"})
    with pytest.raises(SettingsError, match="INBOUND_SECRET"):
        Settings.from_env({**base, "PLENARY_INBOUND_SECRET": "short"})
    with pytest.raises(SettingsError, match="INBOUND_PORT"):
        Settings.from_env({**base, "PLENARY_INBOUND_PORT": "70000"})
    s = Settings.from_env({**base, "PLENARY_REPLY_DOMAIN": "replies.example.org", "PLENARY_INBOUND_PORT": "25",
                           "PLENARY_INBOUND_SECRET": "x" * 32})
    assert (s.reply_to_domain, s.inbound_port, s.inbound_host) == ("replies.example.org", 25, "127.0.0.1")
    assert Settings.from_env({**base, "PLENARY_REPLY_DOMAIN": "off"}).reply_to_domain is None
