"""Long lists of receipts: the results page links to pages of them instead of listing them all."""

from __future__ import annotations

from bs4 import BeautifulSoup

from app.voting import services
from tests.factories import make_member, make_proposal


def _closed_with_ballots(db, settings, member, n: int, **fields) -> tuple[int, set[str]]:
    with db.begin() as s:
        others = [make_member(s) for _ in range(n - 1)]
        p = make_proposal(s, state="open", **fields)
        receipts = {services.cast_ballot(s, settings, proposal_id=p.id, member_id=m.id, raw_choice="yes").receipt
                    for m in [member, *others]}
    with db.begin() as s:
        services.close_proposal(s, settings, p.id, actor_id=None)
    return p.id, {services.fingerprint(services.receipt_hash(r)) for r in receipts}


def _listed(html: str) -> list[str]:
    return [c.text for c in BeautifulSoup(html, "html.parser").select("ul.receipts li code")]


def test_many_receipts_get_pages_of_their_own(member_client, db, settings, member, monkeypatch):
    monkeypatch.setattr(services, "INLINE_RECEIPTS", 2)
    monkeypatch.setattr(services, "RECEIPTS_PAGE", 2)
    pid, fingerprints = _closed_with_ballots(db, settings, member, 5)

    results = member_client.get(f"/proposals/{pid}/results")
    assert results.status_code == 200
    assert _listed(results.text) == []
    link = BeautifulSoup(results.text, "html.parser").select_one("#receipts-link")
    assert link is not None and link["href"] == f"/proposals/{pid}/receipts"
    assert "All 5 counted ballots by receipt fingerprint" in link.text

    pages = [member_client.get(f"/proposals/{pid}/receipts?page={n}") for n in (1, 2, 3)]
    assert [r.status_code for r in pages] == [200, 200, 200]
    listed = [_listed(r.text) for r in pages]
    assert [len(page) for page in listed] == [2, 2, 1]
    flat = [fp for page in listed for fp in page]
    assert flat == sorted(flat) and set(flat) == fingerprints
    assert "Page 2 of 3" in pages[1].text and 'rel="next"' in pages[1].text and 'rel="prev"' in pages[1].text
    assert _listed(member_client.get(f"/proposals/{pid}/receipts?page=99").text) == listed[2]
    assert _listed(member_client.get(f"/proposals/{pid}/receipts?page=x").text) == listed[0]


def test_few_receipts_stay_on_the_results_page(member_client, db, settings, member):
    pid, fingerprints = _closed_with_ballots(db, settings, member, 3)
    results = member_client.get(f"/proposals/{pid}/results")
    assert set(_listed(results.text)) == fingerprints
    page = member_client.get(f"/proposals/{pid}/receipts")
    assert page.status_code == 200 and set(_listed(page.text)) == fingerprints and "Page " not in page.text


def test_no_receipts_page_before_close(member_client, db, member):
    with db.begin() as s:
        p = make_proposal(s, state="open")
    assert member_client.get(f"/proposals/{p.id}/receipts").status_code == 404


def test_published_choices_stand_beside_their_receipts(member_client, db, settings, member, monkeypatch):
    monkeypatch.setattr(services, "RECEIPTS_PAGE", 2)
    pid, fingerprints = _closed_with_ballots(db, settings, member, 3, publish_choices=True)
    items = [li.text.split() for n in (1, 2)
             for li in BeautifulSoup(member_client.get(f"/proposals/{pid}/receipts?page={n}").text,
                                     "html.parser").select("ul.receipts li")]
    assert sorted(fp for fp, _ in items) == sorted(fingerprints)
    assert {choice for _, choice in items} == {"yes"}
    with db.read() as s:
        from app.proposals.models import Proposal

        hidden = s.get(Proposal, pid)
        hidden.publish_choices = False
        assert {c for _, c in services.receipts(s, hidden, page=1)} == {None}
