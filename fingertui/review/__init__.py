"""Reviewing: which samples to show the user (unsure, wrong, label errors) and what the user's answers do."""
