#!/usr/bin/env python3
"""benches/http-scale.py: creating many tenants over HTTP, against
`rewind serve` on the SQLite journal, next to `rewind serve --memory`, in
one run.

What it measures
  For each server (SQLite journal in sync mode, then memory mode), started
  fresh on 127.0.0.1: TENANTS creations (`PUT /v1/tenants/tNNNNNN` with a
  small state), sent one after another over one keep-alive connection.
  - the mean time per creation over the first and over the last WINDOW
    creations, and their ratio (the goal: the last within 1.5x of the
    first);
  - the server's RSS (VmRSS of /proc/PID/status) before the first creation
    and after the last, and the growth per tenant (the goal: at most 4 KiB);
  - GET /v1/tenants/count at the end.

What makes it fail (non-zero exit) instead of printing a figure
  Any answer other than 201 to a creation, a count that is not TENANTS, a
  window that took no time, or an RSS that cannot be read.

How to run it (from the repository root)
  cargo build --release -p rewind-server --bin rewind
  python3 benches/http-scale.py                 # 20,000 tenants
  SCALE_TENANTS=100000 python3 benches/http-scale.py

Environment
  REWIND_BIN      the binary (default target/release/rewind)
  SCALE_TENANTS   tenants per server (default 20000)
  SCALE_WINDOW    creations in the first / last window (default 2000)
  SCALE_DATA_ROOT where the data directory goes (default $TMPDIR or /tmp)
"""

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("REWIND_BIN", "target/release/rewind")
TENANTS = int(os.environ.get("SCALE_TENANTS", "20000"))
WINDOW = int(os.environ.get("SCALE_WINDOW", "2000"))


def die(message):
    print(f"http-scale: {message}", file=sys.stderr)
    sys.exit(1)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    die(f"no VmRSS for pid {pid}")


def run(label, args):
    server = subprocess.Popen(
        [BIN, "serve", "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = server.stdout.readline().strip()
        prefix = "rewind listening on http://"
        if not line.startswith(prefix):
            die(f"{label}: unexpected first line {line!r}")
        host, port = line[len(prefix):].rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port))
        body = json.dumps({"state": {"plan": "free", "seats": 5, "region": "eu"}})
        headers = {"Content-Type": "application/json"}
        before = rss_kib(server.pid)
        marks = []
        for i in range(TENANTS):
            connection.request("PUT", f"/v1/tenants/t{i:06}", body, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 201:
                die(f"{label}: creating tenant {i} answered {response.status}")
            marks.append(time.perf_counter())
        after = rss_kib(server.pid)
        connection.request("GET", "/v1/tenants/count")
        response = connection.getresponse()
        count = json.loads(response.read())
        if count.get("tenants") != TENANTS:
            die(f"{label}: count answered {count}")
        connection.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    first = marks[WINDOW] - marks[0]
    last = marks[-1] - marks[-1 - WINDOW]
    if first <= 0 or last <= 0:
        die(f"{label}: a window took no time")
    return {
        "first_us": first / WINDOW * 1e6,
        "last_us": last / WINDOW * 1e6,
        "before_kib": before,
        "after_kib": after,
        "per_tenant": (after - before) * 1024 / TENANTS,
        "count": count,
    }


def main():
    if not os.access(BIN, os.X_OK):
        die(f"{BIN} is not built: cargo build --release -p rewind-server --bin rewind")
    if TENANTS < 2 * WINDOW:
        die(f"SCALE_TENANTS ({TENANTS}) must be at least twice SCALE_WINDOW ({WINDOW})")
    root = tempfile.mkdtemp(prefix="rewind-http-scale-", dir=os.environ.get("SCALE_DATA_ROOT"))
    try:
        results = [
            ("sqlite (sync)", run("sqlite", ["--data", os.path.join(root, "data")])),
            ("memory", run("memory", ["--memory"])),
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"creating {TENANTS} tenants over HTTP, one keep-alive connection, "
          f"windows of {WINDOW}")
    print(f"| server | first {WINDOW} | last {WINDOW} | last / first | RSS before | "
          f"RSS after | growth per tenant | count |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for label, r in results:
        print(f"| {label} | {r['first_us']:.0f} us | {r['last_us']:.0f} us | "
              f"{r['last_us'] / r['first_us']:.2f}x | {r['before_kib'] / 1024:.1f} MiB | "
              f"{r['after_kib'] / 1024:.1f} MiB | {r['per_tenant'] / 1024:.2f} KiB | "
              f"{json.dumps(r['count'])} |")
    sqlite = results[0][1]
    ratio = sqlite["last_us"] / sqlite["first_us"]
    print()
    print("goals (information only):")
    print(f"  [{'met' if ratio <= 1.5 else 'MISSED'}] sqlite: last {WINDOW} within 1.5x "
          f"of the first ({ratio:.2f}x)")
    growth = sqlite["per_tenant"] / 1024
    print(f"  [{'met' if growth <= 4 else 'MISSED'}] sqlite: RSS growth at most 4 KiB "
          f"per tenant ({growth:.2f} KiB)")


if __name__ == "__main__":
    main()
