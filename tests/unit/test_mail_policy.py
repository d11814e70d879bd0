"""The send / fold into the digest / drop rule (app/mail/policy.py), case by case."""

from __future__ import annotations

import pytest

from app.mail.policy import BUDGETED, PREF_KINDS, TRANSACTIONAL, Decision, OrgDefaults, Plan, decide

SEND, DIGEST, DROP = Decision.SEND, Decision.DIGEST, Decision.DROP


@pytest.mark.parametrize("kind", sorted(TRANSACTIONAL))
def test_account_mail_always_goes(kind):
    assert decide(kind, mode="never", unsubscribed_all=True, sent_this_week=99, budget=1) == SEND


@pytest.mark.parametrize("kind", PREF_KINDS)
@pytest.mark.parametrize(("mode", "expected"), [("immediately", SEND), ("digest", DIGEST), ("never", DROP)])
def test_the_members_mode_decides(kind, mode, expected):
    assert decide(kind, mode=mode) == expected


@pytest.mark.parametrize("kind", [*PREF_KINDS, "vote_confirmation", "digest"])
def test_unsubscribed_from_everything_gets_nothing_but_account_mail(kind):
    assert decide(kind, mode="immediately", unsubscribed_all=True, voted=True) == DROP


def test_results_of_a_proposal_one_voted_on_cannot_be_turned_off():
    assert decide("results", mode="never", voted=True) == SEND
    assert decide("results", mode="never", voted=False) == DROP
    assert decide("results", mode="digest", voted=True) == DIGEST  # a digest is not "off"
    assert decide("outcome_update", mode="never", voted=True) == DROP


def test_vote_confirmation_ignores_mode_and_budget():
    assert decide("vote_confirmation", mode="never", sent_this_week=50, budget=1) == SEND


@pytest.mark.parametrize("kind", PREF_KINDS)
def test_past_the_budget_mail_folds_into_the_digest(kind):
    assert decide(kind, mode="immediately", sent_this_week=4, budget=5) == SEND
    assert decide(kind, mode="immediately", sent_this_week=5, budget=5) == DIGEST
    assert decide(kind, mode="never", sent_this_week=5, budget=5) == DROP
    assert decide(kind, mode="immediately", sent_this_week=500, budget=0) == SEND  # 0: no limit


def test_results_for_voters_also_fold_past_the_budget():
    assert decide("results", mode="never", voted=True, sent_this_week=5, budget=5) == DIGEST


def test_the_digest_itself_is_never_folded_but_counts():
    assert decide("digest", mode="never", sent_this_week=99, budget=1) == SEND
    assert "digest" in BUDGETED and "vote_confirmation" not in BUDGETED


def test_plan_uses_own_choice_then_the_admins_default():
    p = Plan(kind="announcement", defaults=OrgDefaults(weekly_budget=2, modes={"announcement": "digest"}),
             modes={1: "immediately", 2: "never"}, unsubscribed={3}, sent={4: 2}, voted=set())
    assert [p.decision(m) for m in (1, 2, 3, 4, 5)] == [SEND, DROP, DROP, DIGEST, DIGEST]
    assert OrgDefaults().mode("reminder") == "immediately"
