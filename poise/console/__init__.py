"""The therapist's console: a small server-rendered web application (Starlette, Jinja2,
htmx, Server-Sent Events, uPlot) over the clinical records (SQLAlchemy 2, migrated with
Alembic). It publishes session events (``poise.core.events``) and shows the live scores and
alerts the worker publishes (``poise.core.derived``)."""
