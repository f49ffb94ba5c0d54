"""Errors the feedback service raises; each carries the HTTP status that fits and says what was wrong."""

from __future__ import annotations


class FeedbackError(Exception):
    """A request the store refuses; ``status`` is the HTTP status that fits."""

    status = 400


class NotFound(FeedbackError):
    status = 404


class Conflict(FeedbackError):
    status = 409


class Invalid(FeedbackError):
    status = 422
