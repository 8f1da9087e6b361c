"""The event engine: handlers and filters (``handlers``), durable delivery from the change
log (``delivery``), stable resources (``stability``), recycling (``recycling``) and periodic
work (``scheduler``)."""
