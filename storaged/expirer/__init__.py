"""``storaged-expirer``: objects deleted once their ``X-Delete-At`` has passed.

:mod:`.reaper` handles one pending expiry; :mod:`.daemon` is the periodic
worker that finds the due ones in the queue
(:class:`storaged.objects.expiry.ExpiryQueue`) and splits them between
expirers.
"""
