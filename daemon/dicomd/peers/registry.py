"""The peers known to the daemon: those of ``OrthancPeers``, overlaid with the ones added,
changed or deleted through ``PUT`` / ``DELETE /peers/{name}``. Run-time changes live in the
index, so every process of the daemon, and a restart, see them."""

from __future__ import annotations

from ..config import Config
from ..errors import InexistentItem
from ..storage.index import Index
from .definition import Peer, parse_peer


class PeerRegistry:
    def __init__(self, config: Config, index: Index) -> None:
        self.config = config
        self.index = index

    def all(self) -> dict[str, Peer]:
        peers = dict(self.config.orthanc_peers)
        for name, definition in self.index.peer_overrides().items():
            if definition is None:
                peers.pop(name, None)
            else:
                peers[name] = self.parse(name, definition)
        return dict(sorted(peers.items()))

    def get(self, name: str) -> Peer:
        peer = self.all().get(name)
        if peer is None:
            raise InexistentItem(f"No peer is named {name}")
        return peer

    def parse(self, name: str, value: object) -> Peer:
        return parse_peer(
            name,
            value,
            timeout=self.config.http_timeout,
            max_retries=self.config.peer_max_retries,
        )

    def put(self, name: str, value: object) -> Peer:
        peer = self.parse(name, value)
        self.index.save_peer(name, peer.definition())
        return peer

    def delete(self, name: str) -> None:
        self.get(name)
        self.index.save_peer(name, None)
