"""PLENARY_SMTP_URL parsing: schemes, ports, TLS modes, options, credentials, and clear errors."""

from __future__ import annotations

import pytest

from app.mail.sender import SmtpConfig


def test_starttls_with_credentials() -> None:
    c = SmtpConfig.from_url("smtp://user:pass@mail.example.org:587?starttls=true")
    assert (c.host, c.port, c.username, c.password) == ("mail.example.org", 587, "user", "pass")
    assert c.start_tls is True and c.use_tls is False
    assert c.timeout == 30.0 and c.validate_certs is True


def test_implicit_tls_defaults_to_port_465() -> None:
    c = SmtpConfig.from_url("smtps://mail.example.org")
    assert (c.port, c.use_tls, c.start_tls) == (465, True, False)


def test_plain_local_server() -> None:
    c = SmtpConfig.from_url("smtp://127.0.0.1:1025")
    assert (c.host, c.port, c.username, c.password, c.use_tls) == ("127.0.0.1", 1025, None, None, False)
    assert c.start_tls is None  # upgraded only if the server offers STARTTLS


@pytest.mark.parametrize(("url", "port"), [
    ("smtp://mail.example.org", 25),
    ("smtp://mail.example.org?starttls=true", 587),
    ("smtp://mail.example.org?starttls=false", 25),
    ("smtps://mail.example.org:2465", 2465),
])
def test_default_ports(url: str, port: int) -> None:
    assert SmtpConfig.from_url(url).port == port


def test_credentials_are_percent_decoded() -> None:
    c = SmtpConfig.from_url("smtp://ada%40example.org:p%40ss%3Aw%2Frd%25@mail.example.org:587")
    assert c.username == "ada@example.org"
    assert c.password == "p@ss:w/rd%"


def test_password_is_not_in_repr() -> None:
    c = SmtpConfig.from_url("smtp://user:s3cret-pw@mail.example.org")
    assert "s3cret-pw" not in repr(c)


@pytest.mark.parametrize(("query", "timeout", "validate", "starttls"), [
    ("timeout=5", 5.0, True, None),
    ("timeout=2.5&validate_certs=false", 2.5, False, None),
    ("validate_certs=0&starttls=1", 30.0, False, True),
    ("starttls=no", 30.0, True, False),
    ("STARTTLS=True", 30.0, True, True),
])
def test_options(query: str, timeout: float, validate: bool, starttls: bool | None) -> None:
    c = SmtpConfig.from_url(f"smtp://mail.example.org?{query}")
    assert (c.timeout, c.validate_certs, c.start_tls) == (timeout, validate, starttls)


def test_ipv6_host() -> None:
    c = SmtpConfig.from_url("smtp://[::1]:2525")
    assert (c.host, c.port) == ("::1", 2525)


@pytest.mark.parametrize(("url", "message"), [
    ("", "smtp:// or smtps://"),
    ("http://mail.example.org", "smtp:// or smtps://"),
    ("mail.example.org:25", "smtp:// or smtps://"),
    ("smtp://", "no host"),
    ("smtp://:25", "no host"),
    ("smtp://mail.example.org:notaport", "invalid port"),
    ("smtp://mail.example.org:99999", "invalid port"),
    ("smtp://mail.example.org/path", "path"),
    ("smtp://mail.example.org?starttls=maybe", "starttls must be true or false"),
    ("smtp://mail.example.org?timeout=soon", "timeout"),
    ("smtp://mail.example.org?timeout=0", "timeout"),
    ("smtp://mail.example.org?timeout=-3", "timeout"),
    ("smtp://mail.example.org?validate_certs=perhaps", "validate_certs"),
    ("smtp://mail.example.org?tls=true", "unknown option 'tls'"),
    ("smtps://mail.example.org?starttls=true", "already uses TLS"),
])
def test_bad_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(ValueError, match="PLENARY_SMTP_URL") as info:
        SmtpConfig.from_url(url)
    assert message in str(info.value)


def test_error_message_hides_the_password() -> None:
    with pytest.raises(ValueError) as info:
        SmtpConfig.from_url("smtp://user:s3cret-pw@mail.example.org/oops")
    assert "s3cret-pw" not in str(info.value)
    assert "user:***@mail.example.org" in str(info.value)


def test_client_gets_the_settings() -> None:
    c = SmtpConfig.from_url("smtp://user:pw@mail.example.org:587?starttls=true&timeout=7&validate_certs=false")
    smtp = c.client(local_hostname="vote.example.org")
    assert (smtp.hostname, smtp.port, smtp.timeout) == ("mail.example.org", 587, 7.0)
    assert smtp.validate_certs is False
    assert smtp.local_hostname == "vote.example.org"
