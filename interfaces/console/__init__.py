"""The web console: server-rendered pages (Jinja2) with htmx, mounted under /console (adr/0017).

A client of the application layer like the REST routers: pages call `container.app` commands and
the read models' queries, tenancy and permissions are the access policy's answers, nothing here
decides a business rule. `interfaces.console.app.install(app)` mounts it."""
