"""Thin routes: parse the request, call a service, answer (HTML, JSON or an event stream)."""
