"""Container health probe with the standard library only (slim images have no curl)."""

import sys
import urllib.request

URL = "http://127.0.0.1:8000/health/"

try:
    with urllib.request.urlopen(URL, timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError:
    sys.exit(1)
