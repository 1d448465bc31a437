"""A closed loop: each of the ``-u`` users sends its next streaming request as soon as the previous one ends.

This is how Locust users behave by nature, and the load ``trtclient bench --concurrency N`` applies::

    locust -f locustfiles/concurrency.py --headless -u 16 -t 60s       # embedded Triton
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent monkey-patching)

# isort: split

from trtlocust import TritonUser


class ConcurrencyUser(TritonUser):
    """Streams requests back to back."""
