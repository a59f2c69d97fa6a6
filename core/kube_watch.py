"""One watch of one kind on a Kubernetes API server, as an async iterator of core.watch.WatchEvents.

The official client's watch is a blocking stream, so it runs in a thread of its own and hands its
events to the loop through a queue. It reads in server-side windows of `window_s` (so a stopped
watch's thread ends within one window), asks for bookmarks and resumes each window from the last
version it saw: a quiet kind then resumes from a recent version rather than one etcd has compacted
away (410). Both the operator's store (control/store/kubernetes.py) and ApiServerSource's watch
(sources/kube_watch.py) read through this; each maps the API server's errors to its own seam's.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from kubernetes import dynamic, watch
from kubernetes.client.exceptions import ApiException

from core.watch import WatchEvent


async def stream_watch(dyn: dynamic.DynamicClient, api: Any, namespace: str | None, *,
                       resource_version: str | None, window_s: int, name: str,
                       api_error: Callable[[ApiException], Exception],
                       other_error: Callable[[Exception], Exception]) -> AsyncIterator[WatchEvent]:
    """`api` is the dynamic client's resource; `api_error` and `other_error` turn what ends the stream
    (an API server's answer, anything else) into what the awaiting side raises."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[WatchEvent | Exception] = asyncio.Queue()
    stopped = threading.Event()

    def stream() -> None:
        version = resource_version
        try:
            while not stopped.is_set():
                watcher = watch.Watch()
                for event in dyn.watch(api, namespace=namespace, resource_version=version, timeout=window_s,
                                       watcher=watcher, allow_watch_bookmarks=True):
                    if stopped.is_set():
                        watcher.stop()
                        return
                    obj = event["raw_object"]
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "BOOKMARK":
                        continue  # only the version to resume the next window from moves on
                    loop.call_soon_threadsafe(queue.put_nowait, WatchEvent(event["type"], obj))
        except ApiException as exc:
            loop.call_soon_threadsafe(queue.put_nowait, api_error(exc))
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting side, which raises it
            loop.call_soon_threadsafe(queue.put_nowait, other_error(exc))

    thread = threading.Thread(target=stream, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stopped.set()
