"""Analysis in worker processes, each run under a time budget.

spaCy's parser holds the GIL: run in the service's own process, one hostile postmortem froze
`/healthz`, the webhooks and the dashboard for as long as it took. Here every analysis runs in
a separate process (pebble's ProcessPool), the caller's thread waits without holding the GIL,
and a run over its budget has its process killed and replaced. The text bounds in
nlp/limits.py keep honest input well inside the budget; the budget is the backstop for what
they did not foresee.

One pool per process, shared by every Service in it (tests build many), started on first use.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import multiprocessing
import pickle
import threading
from collections import OrderedDict
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pebble import ProcessExpired, ProcessPool

from nlp.limits import Crashed, TookTooLong
from nlp.model import Analysis
from nlp.pipeline import requested_model
from rules.schema import RulePack

log = logging.getLogger("pmguard.analysis")

DEFAULT_PROCESSES = 2
DEFAULT_TIMEOUT_SECONDS = 60.0


class AnalysisPool:
    """Runs `nlp.analysis.analyse` in `processes` worker processes."""

    def __init__(self, processes: int = DEFAULT_PROCESSES) -> None:
        self.processes = max(1, processes)
        self._pool: ProcessPool | None = None
        self._lock = threading.Lock()
        self._packs: OrderedDict[int, tuple[RulePack, str, bytes]] = OrderedDict()

    def analyse(
        self, source: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS, pack: RulePack | None
        = None, model: str | None = None, **options: Any
    ) -> Analysis:
        """`analyse(source, pack=…, **options)` in a worker process. Raises TookTooLong when it
        runs past `timeout` seconds, Crashed when its process dies, and whatever analyse
        raises (TooLarge, a format error) as analyse would."""
        token = self._pack_token(pack) if pack is not None else None
        # The parent decides the model: a child keeps the environment it started with.
        model = requested_model(model)
        future = self._ensure().schedule(
            _analyse_in_child, args=(token, source, model, options), timeout=timeout
        )
        try:
            return future.result()
        except FutureTimeout:
            log.warning("analysis stopped after %gs (%d characters)", timeout, len(source))
            raise TookTooLong(timeout) from None
        except ProcessExpired as error:
            log.error("analysis process died: %s", error)
            raise Crashed(f"exit code {error.exitcode}") from None

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            pool.join(timeout=10)

    def _ensure(self) -> ProcessPool:
        with self._lock:
            if self._pool is None or not self._pool.active:
                # spawn: a fork of a threaded web process would copy held locks and open
                # database connections into the child.
                self._pool = ProcessPool(
                    max_workers=self.processes,
                    initializer=_warm_child,
                    context=multiprocessing.get_context("spawn"),
                )
            return self._pool

    def _pack_token(self, pack: RulePack) -> tuple[str, bytes]:
        """(digest, pickled pack): the child keeps packs by digest, so a pack is unpickled and
        its matchers compiled once per child, not once per call."""
        with self._lock:
            entry = self._packs.get(id(pack))
            if entry is None or entry[0] is not pack:
                data = pickle.dumps(pack, protocol=pickle.HIGHEST_PROTOCOL)
                entry = (pack, hashlib.sha256(data).hexdigest(), data)
                self._packs[id(pack)] = entry
                while len(self._packs) > 16:
                    self._packs.popitem(last=False)
            return entry[1], entry[2]


_shared: dict[int, AnalysisPool] = {}
_shared_lock = threading.Lock()


def shared_pool(processes: int = DEFAULT_PROCESSES) -> AnalysisPool:
    """This process's pool of `processes` workers, started on first use."""
    with _shared_lock:
        pool = _shared.get(processes)
        if pool is None:
            pool = _shared[processes] = AnalysisPool(processes)
        return pool


@atexit.register
def _close_all() -> None:
    for pool in list(_shared.values()):
        pool.close()


# ---- in the child -------------------------------------------------------------------------

_child_packs: OrderedDict[str, RulePack] = OrderedDict()


def _warm_child() -> None:
    # Loading the pipeline and compiling the shipped pack takes seconds; do it before the
    # first task so its budget is spent on the text.
    from nlp.analysis import analyse

    try:
        analyse("Warm-up.", check_actions=False)
    except Exception:  # the task itself will report a broken model
        log.exception("analysis worker could not warm up")


def _analyse_in_child(
    token: tuple[str, bytes] | None, source: str, model: str, options: dict
) -> Analysis:
    from nlp.analysis import analyse

    pack = None
    if token is not None:
        digest, data = token
        pack = _child_packs.get(digest)
        if pack is None:
            pack = _child_packs[digest] = pickle.loads(data)
            while len(_child_packs) > 8:
                _child_packs.popitem(last=False)
        else:
            _child_packs.move_to_end(digest)
    return analyse(source, pack=pack, model=model, **options)
