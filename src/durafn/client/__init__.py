"""Clients: start and steer instances (``AsyncClient``, and its blocking twin ``Client``)."""
