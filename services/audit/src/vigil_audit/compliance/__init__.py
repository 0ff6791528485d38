"""Compliance reports (AUD-3): pure rules, their settings and the service that composes them."""
