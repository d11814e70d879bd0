"""Comments: members' conversation on a proposal, admins' official responses, moderation and mentions."""
