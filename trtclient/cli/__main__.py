"""``python -m trtclient.cli`` runs the ``trtclient`` command."""

import sys

from trtclient.cli import main

sys.exit(main())
