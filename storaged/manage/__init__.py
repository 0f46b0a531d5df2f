"""Sub-commands of ``storaged-manage``, one module per topic.

Each handler takes the parsed configuration and returns an exit status; the
argument parsers are declared next to their handlers (``add_parsers``).
"""
