"""Container healthcheck: exit 0 when the URL answers with a 2xx/3xx status, 1 otherwise (one line why).

Standard library only, so it runs in every service of docker-compose.yml without curl in the image:
    python /app/docker/healthcheck.py http://127.0.0.1:3000/health
"""

import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: healthcheck.py URL", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(argv[1], timeout=5) as resp:
            return 0 if resp.status < 400 else 1
    except (OSError, urllib.error.URLError) as exc:
        print(f"{argv[1]}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
