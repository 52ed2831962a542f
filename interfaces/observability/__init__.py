"""Observability: Prometheus metrics, JSON logs with request context, readiness checks.

Wired once in the composition root (`interfaces.bootstrap.build` creates `container.metrics`)
and in the HTTP app factory; the domain and application layers know nothing about it."""
