"""A WSGI app served on 127.0.0.1 in a background thread: what every fake tracker is."""

from __future__ import annotations

import threading
from typing import Any, Self

from werkzeug.serving import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # keep test output clean
        pass


class LocalServer:
    """Subclasses set `self.app` (a WSGI app) and may override `started(root)`."""

    app: Any

    def __init__(self) -> None:
        self._server = None
        self._thread: threading.Thread | None = None

    def started(self, root: str) -> None:
        """Called with http://127.0.0.1:PORT once the socket is bound."""

    def start(self) -> Self:
        self._server = make_server(
            "127.0.0.1", 0, self.app, threaded=True, request_handler=QuietHandler
        )
        self.started(f"http://127.0.0.1:{self._server.server_port}")
        # A short poll keeps stop() (and so every test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
