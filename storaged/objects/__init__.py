"""Objects in containers: the object store and the catalog, kept consistent."""

from __future__ import annotations

from storaged.objects.repository import EtagMismatch
from storaged.objects.repository import ObjectInfo
from storaged.objects.repository import ObjectRepository
from storaged.objects.repository import PutResult

__all__ = ["EtagMismatch", "ObjectInfo", "ObjectRepository", "PutResult"]
