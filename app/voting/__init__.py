"""Voting: ballots, eligibility and counting."""
