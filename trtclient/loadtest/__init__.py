"""What every load test shares, bench and Locust alike: the request record and its JSONL file
(:mod:`.records`), metric definitions (:mod:`.metrics`), the one record writer (:mod:`.recorder`), the
one request-options policy (:mod:`.request_options`), load shapes (:mod:`.schedule`), workloads
(:mod:`.workload`) and the heap setting for long runs (:mod:`.heap`).

Nothing here runs an event loop or a greenlet: the asyncio engine (:mod:`trtclient.bench`) and the
Locust kit (``locustfiles/trtlocust``) drive these with their own I/O.
"""
