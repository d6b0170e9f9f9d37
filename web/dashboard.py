"""Incident managers' pages: the queue, an incident, decisions, waivers, the audit log."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("dashboard", __name__)
