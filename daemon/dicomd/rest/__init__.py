"""The REST API (``application.create_app(services)`` builds the Flask app, one blueprint per
area), the HTTP server that serves it, and the helper processes that share that work."""
