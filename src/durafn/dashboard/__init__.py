"""The dashboard: a browser view of a task hub's instances, served by the host or on its own.

``durafn start`` serves it at ``/``; ``durafn dashboard --store URL`` serves it alone (no workers,
no HTTP functions) over any store. Its page and assets ship in this package (``static/``).
"""

from durafn.dashboard.routes import dashboard_routes
from durafn.dashboard.server import create_dashboard_app, serve_dashboard

__all__ = ["create_dashboard_app", "dashboard_routes", "serve_dashboard"]
