"""Plenary: ask all your members."""
