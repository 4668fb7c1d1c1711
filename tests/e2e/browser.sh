#!/bin/sh
# The "browser" of the end-to-end tests (DRIVEBACK_BROWSER): opens Google's consent page on the
# Drive emulator, which consents at once (--auto-consent) and redirects to the app's loopback
# address, and follows that redirect as a browser would.
exec curl -sS -L -o /dev/null --max-time 60 "$1"
