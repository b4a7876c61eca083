#!/usr/bin/env python3
"""A busy Python program profiled live by the official Python SDK
(`pyroscope-io` from PyPI), pushing to the Ignis node given on the command line.

Usage: python_sdk_app.py SERVER_URL APP_NAME SECONDS [USER PASSWORD TENANT]

With USER, PASSWORD and TENANT the SDK pushes with HTTP Basic credentials
(basic_auth_username / basic_auth_password) and that tenant_id.

Burns CPU in `busy_fib` for SECONDS, shuts the SDK down (which flushes the
last upload), and prints one JSON line with the process CPU time spent, so
the test can compare it with what Ignis stored.
"""
import json
import sys
import time

import pyroscope


def busy_fib(n):
    return n if n < 2 else busy_fib(n - 1) + busy_fib(n - 2)


def main():
    url, app, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    auth = {}
    if len(sys.argv) >= 7:
        auth = dict(
            basic_auth_username=sys.argv[4],
            basic_auth_password=sys.argv[5],
            tenant_id=sys.argv[6],
        )
    pyroscope.configure(
        application_name=app,
        server_address=url,
        sample_rate=100,
        oncpu=True,
        gil_only=True,
        tags={"run": "live"},
        **auth,
    )
    cpu0 = time.process_time()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        busy_fib(18)
    cpu = time.process_time() - cpu0
    pyroscope.shutdown()
    print(json.dumps({"cpu_seconds": cpu}), flush=True)


if __name__ == "__main__":
    main()
