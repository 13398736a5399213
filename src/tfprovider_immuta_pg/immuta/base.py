"""What every resource and data source of this provider starts from: the provider's Access."""

from __future__ import annotations

from ..framework.provider import DataSource, State, WorkerResource
from .access import Access


class AccessResource(WorkerResource[State]):
    """A resource whose worker reaches PostgreSQL and AWS through the provider's `Access`."""

    def __init__(self, access: Access) -> None:
        self.access = access


class AccessDataSource(DataSource):
    """A data source that reads through the provider's `Access`."""

    def __init__(self, access: Access) -> None:
        self.access = access
