"""HTTP to a team-mode server: the key on every request, problem+json answers rebuilt into the
same exceptions the embedded client raises (``grid.errors.rebuild``)."""

from __future__ import annotations

from typing import Any

from grid import errors as e

_TIMEOUT = 60.0


class ApiSession:
    """Requests to ``url`` (``http(s)://host:port``) as the holder of ``api_key``."""

    def __init__(self, url: str, api_key: str | None, *, timeout: float = _TIMEOUT) -> None:
        import httpx  # here, not at the top: it costs ~0.1 s to import

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._transport_errors = (httpx.TransportError,)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer of ``method path`` (None for 204).

        Raises:
            GridError: the server's error, rebuilt (UnauthorizedError, NotFoundError, ...).
            StorageError: the server cannot be reached (transient).
        """
        try:
            response = self._http.request(method, path, json=body)
        except self._transport_errors as exc:
            raise e.StorageError(
                f"cannot reach the grid server at {self.url}: {exc}", transient=True
            ) from exc
        if response.status_code == 204:
            return None
        if response.is_success:
            return response.json()
        try:
            problem = response.json()
            code, detail = problem["code"], problem["detail"]
            attrs = problem.get("attrs") or {}
        except (ValueError, KeyError, TypeError):
            raise e.StorageError(
                f"the grid server at {self.url} answered {response.status_code} to {method} {path}",
                transient=response.status_code >= 500,
            ) from None
        raise e.rebuild(code, detail, attrs)
