"""Admins' pages: the rule pack, drafts, the playground, replay, publish, history, rollback,
per-rule figures, and learning health."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__)
