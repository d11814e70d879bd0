"""Proposals: questions and policy changes, their audience, schedule, history and outcome."""
