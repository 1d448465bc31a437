"""How bytes move: one module per wire, all behind one contract (:mod:`.base`).

:mod:`.aiohttp_http` (the async client's HTTP), :mod:`.httpx_http` (the blocking client's HTTP),
:mod:`.grpc` with its pure :mod:`.grpc_codec` (both clients' gRPC, needs the ``grpc`` extra) and
:mod:`.socket_stream` (the Locust user's raw socket, needs the ``locust`` extra). A transport fills a
:class:`~trtclient.streaming.StreamHead` and feeds a :class:`~trtclient.streaming.StreamState`; it never
sees a client, a stream or a record. Nothing is imported here, so each wire loads only when used.
"""
