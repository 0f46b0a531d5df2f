"""Object store drivers, loaded through the ``storaged.objectstore.drivers``
entry points: ``file`` (:mod:`.file`) and ``http`` (:mod:`.http`)."""
