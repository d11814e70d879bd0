"""Members: accounts, groups, sign-in, sessions and the admin directory."""
