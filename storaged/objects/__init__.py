"""Objects in containers: the object store and the catalog, kept consistent."""

from __future__ import annotations

from storaged.objects.service import EtagMismatch
from storaged.objects.service import ObjectInfo
from storaged.objects.service import ObjectService
from storaged.objects.service import PutResult

__all__ = ["EtagMismatch", "ObjectInfo", "ObjectService", "PutResult"]
