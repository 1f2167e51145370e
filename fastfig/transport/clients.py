"""The clients a server knows, by route: what each said in hello and the figures it
joined (one Consumer each). Forgetting a client closes its consumers, and their credit
goes with them; a client not heard from for ``timeout`` seconds is forgotten."""

from __future__ import annotations

import collections
import time
from typing import Iterator, Optional

from .session import Consumer

#: A client not heard from for this long (it pings every second) is forgotten.
CLIENT_TIMEOUT = 10.0
#: Bound on remembered clients, so that a flood of identities cannot grow memory.
MAX_CLIENTS = 4096


class ClientEntry:
    """One peer of the server's ROUTER."""

    __slots__ = ("route", "name", "accept", "last_seen", "hello", "joined")

    def __init__(self, route: list[bytes], now: float) -> None:
        self.route = route          # the envelope, delimiter included
        self.name = "?"
        self.accept: Optional[frozenset] = None
        self.last_seen = now
        self.hello = False          # said hello: sent figure list changes
        self.joined: dict[str, Consumer] = {}

    @property
    def key(self) -> tuple:
        return tuple(self.route[:-1])


class ClientTable:
    """Clients by route, least recently heard from first."""

    def __init__(self, timeout: float = CLIENT_TIMEOUT) -> None:
        self.timeout = timeout
        self._clients: collections.OrderedDict[tuple, ClientEntry] = collections.OrderedDict()

    def touch(self, envelope: list[bytes]) -> ClientEntry:
        """The client at this route (new or known), marked as heard from now."""
        key = tuple(envelope[:-1])
        now = time.monotonic()
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = ClientEntry(list(envelope), now)
            if len(self._clients) > MAX_CLIENTS:
                self.forget(next(iter(self._clients)))
        else:
            client.last_seen = now
            self._clients.move_to_end(key)
        return client

    def forget(self, key: tuple) -> None:
        """Forget a client and close its consumers (unknown keys are ignored)."""
        client = self._clients.pop(key, None)
        if client is not None:
            for consumer in client.joined.values():
                consumer.close()
            client.joined.clear()

    def expire(self) -> None:
        """Forget the clients not heard from for ``timeout`` seconds."""
        cutoff = time.monotonic() - self.timeout
        while self._clients:
            key, client = next(iter(self._clients.items()))
            if client.last_seen >= cutoff:
                break
            self.forget(key)

    def clear(self) -> None:
        for key in list(self._clients):
            self.forget(key)

    def __iter__(self) -> Iterator[ClientEntry]:
        return iter(list(self._clients.values()))

    def __len__(self) -> int:
        return len(self._clients)
