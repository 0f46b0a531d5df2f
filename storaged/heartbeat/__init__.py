"""The node's coordination agent (``storaged-heartbeat``)."""
