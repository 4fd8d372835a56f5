"""What a run key may read: the versions its run attaches, while the run lives.

A SLURM job of a logged-in user mounts its datastores with a run key, never its user's key.
Such a key passes three routes only (``ALLOWED``): who am I, a version of the run, and GET or
HEAD URLs to the manifests of the run's versions and the packs those manifests use. Anything
else gets the answer any refused key gets.
"""

from __future__ import annotations

from collections import OrderedDict

from fastapi import Request

from grid.catalog.accounts import refused_key
from grid.catalog.runs import RunRegistry
from grid.errors import GridError
from grid.records import Principal
from grid.server.state import server_state
from grid.service.publish import OwnerArea
from grid.store.blob_check import unpacked_manifest
from grid.store.pack import pack_key
from grid.store.repository import manifest_key

ALLOWED = {
    ("GET", "/v1/whoami"),
    ("GET", "/v1/datastores/{owner}/{name}/versions/{number}"),
    ("POST", "/v1/owners/{owner}/objects"),
}
_PACKS: OrderedDict[str, frozenset[str]] = OrderedDict()  # manifest id -> pack keys
_KEEP = 256


def check_route(request: Request, caller: Principal) -> None:
    """Refuse a run key on any route but ``ALLOWED``."""
    route = request.scope.get("route")
    if caller.run_id is not None and (request.method, getattr(route, "path", "")) not in ALLOWED:
        raise refused_key()


def _scope(request: Request, caller: Principal) -> list[tuple[str, str, int, str]]:
    state = server_state(request)
    registry = RunRegistry(state.access.owner(caller, caller.user).catalog)
    assert caller.run_id is not None
    return registry.scope(caller.run_id)


def check_version(request: Request, caller: Principal, owner: str, name: str, number: int) -> None:
    """Refuse a run key a version its run does not attach."""
    if caller.run_id is None:
        return
    if not any((o, n, v) == (owner, name, number) for o, n, v, _ in _scope(request, caller)):
        raise refused_key()


def check_objects(
    request: Request, caller: Principal, owner: str, method: str, keys: list[str]
) -> None:
    """Refuse a run key anything but reading the manifests of its run's versions of
    ``owner`` and the packs they use (asked before anything about ``owner`` is looked up)."""
    if caller.run_id is None:
        return
    if method not in ("GET", "HEAD"):
        raise refused_key()
    manifests = [m for o, _, _, m in _scope(request, caller) if o == owner]
    if not manifests:
        raise refused_key()
    state = server_state(request)
    view = state.access.owner(caller, owner)
    area = OwnerArea(state.objects, view.name, view.id)
    allowed: set[str] = set()
    for manifest_id in manifests:
        allowed.add(manifest_key(manifest_id))
        allowed |= _pack_keys(request, area, manifest_id)
    if not set(keys) <= allowed:
        raise refused_key()


def _pack_keys(request: Request, area: OwnerArea, manifest_id: str) -> frozenset[str]:
    """The pack keys manifest ``manifest_id`` uses (kept: a manifest never changes)."""
    if manifest_id in _PACKS:
        _PACKS.move_to_end(manifest_id)
        return _PACKS[manifest_id]
    try:
        data = area.objects.get(area.key(manifest_key(manifest_id)))
        with unpacked_manifest(data, server_state(request).scratch) as manifest:
            keys = frozenset(pack_key(pid) for pid in manifest.pack_ids)
    except GridError:
        return frozenset()
    _PACKS[manifest_id] = keys
    if len(_PACKS) > _KEEP:
        _PACKS.popitem(last=False)
    return keys
