"""The server's record of each owner's packs, on both engines: one commit at a time checks a
pack, a check left unfinished by a dead server is taken over, clients learn only verified
packs of their own owner, in an order that never loses one behind a cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from grid.catalog import Accounts, Catalog
from grid.catalog.packs import STALE, PackRegistry
from grid.errors import ConflictError
from tests.catalog.test_catalog_engines import url  # noqa: F401 - the engine fixture

P1, P2 = "a" * 32, "b" * 32


@pytest.fixture
def registry(url):  # noqa: F811
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    catalog = Catalog(url, owner=None, clock=lambda: now[0])
    accounts = Accounts(catalog)
    accounts.create_user("alice")
    accounts.create_user("bob")
    ids = {n: catalog.owner_id_of(n) for n in ("alice", "bob")}
    yield PackRegistry(catalog), ids, now
    catalog.close()


def test_one_commit_at_a_time_checks_a_pack(registry):
    packs, ids, _ = registry
    packs.register(ids["alice"], P1)
    with pytest.raises(ConflictError):
        packs.register(ids["alice"], P1)
    packs.register(ids["bob"], P1)  # owners never meet
    assert packs.verified(ids["alice"], [P1]) == {}
    packs.mark_verified(ids["alice"], P1, 100, b"trailer")
    assert packs.verified(ids["alice"], [P1, P2]) == {P1: (100, b"trailer")}
    assert packs.verified(ids["bob"], [P1]) == {}


def test_a_check_left_unfinished_is_taken_over_only_once_stale(registry):
    packs, ids, now = registry
    packs.register(ids["alice"], P1)
    now[0] += timedelta(seconds=STALE - 1)
    with pytest.raises(ConflictError):
        packs.register(ids["alice"], P1)
    now[0] += timedelta(seconds=2)
    packs.register(ids["alice"], P1)  # the first server died mid-check
    packs.mark_verified(ids["alice"], P1, 7, b"t")
    now[0] += timedelta(seconds=2 * STALE)
    with pytest.raises(ConflictError):  # a verified pack is never taken over
        packs.register(ids["alice"], P1)
    assert packs.verified(ids["alice"], [P1]) == {P1: (7, b"t")}


def test_clients_learn_verified_packs_after_their_cursor(registry):
    packs, ids, _ = registry
    packs.register(ids["alice"], P1)  # registered first, verified last
    packs.register(ids["alice"], P2)
    packs.mark_verified(ids["alice"], P2, 2, b"2")
    seen = packs.since(ids["alice"], 0)
    assert [pid for _, pid, _, _ in seen] == [P2]
    packs.mark_verified(ids["alice"], P1, 1, b"1")
    later = packs.since(ids["alice"], seen[-1][0])
    assert [pid for _, pid, _, _ in later] == [P1]  # not lost behind the cursor
    assert packs.since(ids["bob"], 0) == []
    packs.unregister(ids["alice"], P1)
    assert [row[0] for row in packs.listing(ids["alice"])] == [P2]


def test_gc_drops_a_pack_only_while_no_create_holds_a_lease(registry):
    from grid.records import Lease

    packs, ids, now = registry
    for pid in (P1, P2):
        packs.register(ids["alice"], pid)
        packs.mark_verified(ids["alice"], pid, 100, b"t")
    catalog = packs._catalog.acting_for(ids["alice"])
    v = catalog.new_version("cats", "/src", "c" * 32, Lease("laptop", 7, 60))
    assert not packs.drop_unless_busy(ids["alice"], P1)  # a create holds a lease: kept
    assert packs.verified(ids["alice"], [P1]) and packs.gone_since(ids["alice"], 0) == []
    assert packs.drop_unless_busy(ids["bob"], P1)  # bob's creates are his own
    now[0] += timedelta(seconds=61)  # the create stopped renewing
    assert packs.drop_unless_busy(ids["alice"], P1)
    assert packs.verified(ids["alice"], [P1, P2]) == {P2: (100, b"t")}
    (gone,) = packs.gone_since(ids["alice"], 0)
    assert gone[1] == P1 and packs.gone_since(ids["alice"], gone[0]) == []
    assert packs.gone_since(ids["bob"], 0)[0][1] == P1  # each owner's own record
    catalog.renew("cats", v.number, Lease("laptop", 7, 60))
    assert not packs.drop_unless_busy(ids["alice"], P2)
