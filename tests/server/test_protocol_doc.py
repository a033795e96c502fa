"""docs/protocol.md is generated from server/protocol.py, and matches what the dispatcher serves."""

from __future__ import annotations

import re

from drumdiff import protocol_doc
from drumdiff.server import protocol
from drumdiff.server.osc import build_dispatcher


def _noop(*args: object) -> None:
    pass


def test_protocol_doc_is_up_to_date() -> None:
    assert protocol_doc.DEFAULT_OUT.read_text() == protocol_doc.render_markdown(), (
        "docs/protocol.md is stale: run `drumdiff protocol --write`"
    )
    assert protocol_doc.main(["--check"]) == 0


def _documented_incoming() -> set[str]:
    text = protocol_doc.DEFAULT_OUT.read_text()
    section = text.split("## Messages to the daemon", 1)[1].split("## Messages from the daemon", 1)[
        0
    ]
    return set(re.findall(r"^\| `(/drumdiff/[a-z.]+)", section, flags=re.M))


def test_dispatcher_addresses_match_the_table() -> None:
    dispatcher = build_dispatcher(_noop, _noop)
    mapped = set(dispatcher._map)  # python-osc keeps its address map here (no public accessor)
    documented = _documented_incoming()
    assert mapped == documented
    assert mapped == {m.address for m in protocol.MESSAGES if m.direction == "in"}


def test_every_documented_address_is_under_the_prefix_and_unique() -> None:
    addresses = [m.address for m in protocol.MESSAGES]
    assert len(addresses) == len(set(addresses))
    assert all(a.startswith(protocol.PREFIX) for a in addresses)
    for spec in protocol.MESSAGES:
        for reply in spec.replies:
            assert protocol.SPECS[reply].direction == "out"
