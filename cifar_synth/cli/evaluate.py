"""Placeholder until this command is written."""
