"""Benchmark of the Python client's cache (meant for bench/client_cache.py in the server's bench/).

Starts its own `promptforge serve` (SQLite in a temp dir, like the client's tests; or --url with
--api-key/--org for a running one) and measures, each beside a ceiling measured in the same run:

1. cache-hit `get_prompt` latency (median, p99 of 100-call batches, per call)
   ceiling: the same loop doing a plain dict lookup, and a function call doing one;
2. uncached by-name fetch latency (`fetch_prompt`, median, p99)
   ceiling: a raw httpx GET of /healthz, and a raw httpx GET of the same by-name URL;
3. label move -> all N watching clients (`watch=True`) serving the new version (median, p99)
   ceiling: the move command's own latency, and move -> the change arriving on a raw SSE reader.

    .venv/bin/python bench/client_cache.py [--moves 30] [--watchers 10] [--out bench/results/client_cache.md]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent.parent / "clients" / "python"
sys.path.insert(0, str(HERE / "tests"))
sys.path.insert(0, str(HERE))

from promptforge_client import Client  # noqa: E402


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), pct(samples, 0.99)


def bench_hits(client: Client, name: str, batches: int = 3000, size: int = 100) -> dict[str, tuple[float, float]]:
    client.get_prompt(name)
    get = client.get_prompt
    table = {("org", name, "production", None, None): object()}
    key = ("org", name, "production", None, None)

    def lookup(k):
        return table.get(k)

    results: dict[str, list[float]] = {"get_prompt": [], "dict lookup": [], "function + dict lookup": []}
    clock = time.perf_counter_ns
    for _ in range(batches):
        t = clock()
        for _ in range(size):
            get(name)
        results["get_prompt"].append((clock() - t) / size / 1000)
        t = clock()
        for _ in range(size):
            table.get(key)
        results["dict lookup"].append((clock() - t) / size / 1000)
        t = clock()
        for _ in range(size):
            lookup(key)
        results["function + dict lookup"].append((clock() - t) / size / 1000)
    return {k: summary(v) for k, v in results.items()}


def bench_fetch(url: str, key: str, org: str, name: str, n: int = 300) -> dict[str, tuple[float, float]]:
    out: dict[str, list[float]] = {"fetch_prompt (uncached, by name)": [], "raw httpx GET by-name": [],
                                   "raw httpx GET /healthz": []}
    with Client(url, api_key=key, org_id=org) as c, httpx.Client(base_url=url,
                                                                 headers={"Authorization": f"Bearer {key}"}) as raw:
        path = f"/v1/orgs/{org}/prompts/by-name/{name}"
        for _ in range(20):  # warm up connections
            c.fetch_prompt(name)
            raw.get(path, params={"label": "production"})
            raw.get("/healthz")
        for _ in range(n):
            t = time.perf_counter()
            c.fetch_prompt(name)
            out["fetch_prompt (uncached, by name)"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            raw.get(path, params={"label": "production"}).json()
            out["raw httpx GET by-name"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            raw.get("/healthz")
            out["raw httpx GET /healthz"].append((time.perf_counter() - t) * 1000)
    return {k: summary(v) for k, v in out.items()}


class RawSSE(threading.Thread):
    """A bare SSE reader: notes when each change position arrives."""

    def __init__(self, url: str, key: str, org: str):
        super().__init__(daemon=True)
        self.url, self.key, self.org = url, key, org
        self.arrived: dict[int, float] = {}
        self.caught_up = threading.Event()

    def run(self) -> None:
        try:
            self._read()
        except httpx.HTTPError:
            pass  # the server stopped

    def _read(self) -> None:
        with httpx.Client(base_url=self.url, timeout=httpx.Timeout(5, read=60)) as http:
            with http.stream("GET", f"/v1/orgs/{self.org}/changes/stream",
                             headers={"Authorization": f"Bearer {self.key}"}) as r:
                for line in r.iter_lines():
                    if line == ": caught-up":
                        self.caught_up.set()
                    elif line.startswith("data: "):
                        self.arrived[json.loads(line[6:])["position"]] = time.perf_counter()


def bench_coherence(url: str, admin, org, watchers: int, moves: int) -> dict[str, tuple[float, float]]:
    from pfc_support import unique

    name = unique("bench/coherent")
    pid = admin.prompt(org, name, "one")["id"]
    admin.revise(org, pid, 1, "two")
    admin.move(org, pid, "production", 1)
    clients = [Client(url, api_key=org.read_key, org_id=org.id, watch=True, ttl=3600) for _ in range(watchers)]
    sse = RawSSE(url, org.read_key, org.id)
    sse.start()
    try:
        assert all(c.wait_until_watching(20) for c in clients) and sse.caught_up.wait(20)
        for c in clients:
            c.get_prompt(name)
        all_serving, command, feed = [], [], []
        current = 1
        for _ in range(moves):
            target = 2 if current == 1 else 1
            seen: dict[int, float] = {}

            def poll() -> None:  # one thread polls every client (a hit costs well under a microsecond)
                deadline = time.monotonic() + 10
                while len(seen) < watchers and time.monotonic() < deadline:
                    for i, c in enumerate(clients):
                        if i not in seen and c.get_prompt(name).version == target:
                            seen[i] = time.perf_counter()
                    time.sleep(0.0002)

            poller = threading.Thread(target=poll)
            poller.start()
            sent = time.perf_counter()
            moved = admin.move(org, pid, "production", target, expected_version=current)
            acked = time.perf_counter()
            poller.join()
            assert len(seen) == watchers, "a watcher never served the move"
            all_serving.append((max(seen.values()) - sent) * 1000)
            command.append((acked - sent) * 1000)
            deadline = time.monotonic() + 5
            while moved["position"] not in sse.arrived and time.monotonic() < deadline:
                time.sleep(0.001)
            feed.append((sse.arrived[moved["position"]] - sent) * 1000)
            current = target
            time.sleep(0.05)
        return {f"move -> all {watchers} watchers serving it": summary(all_serving),
                "move command (acknowledged)": summary(command),
                "move -> change on a raw SSE reader": summary(feed)}
    finally:
        for c in clients:
            c.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=30)
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args()
    from pfc_support import Admin, Server

    with tempfile.TemporaryDirectory(prefix="pfc-bench-") as tmp:
        server = Server(Path(tmp)).start()
        try:
            admin = Admin(server.url)
            org = admin.org()
            pid = admin.prompt(org, "bench/hot", "Hello {{name}}, about {{topic}}.")["id"]
            admin.move(org, pid, "production", 1)
            with Client(server.url, api_key=org.read_key, org_id=org.id) as c:
                hits = bench_hits(c, "bench/hot")
            fetch = bench_fetch(server.url, org.read_key, org.id, "bench/hot")
            coherence = bench_coherence(server.url, admin, org, args.watchers, args.moves)
        finally:
            server.stop()
    load = os.getloadavg()
    lines = [f"# Client cache benchmark ({time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
             f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
             "a real `promptforge serve` on SQLite)", "",
             "| what | median | p99 | ceiling in the same run (median / p99) |", "|---|---|---|---|"]
    g = hits["get_prompt"]
    lines.append(f"| cache-hit `get_prompt` | {g[0]:.3f} µs | {g[1]:.3f} µs | dict lookup {hits['dict lookup'][0]:.3f} / "
                 f"{hits['dict lookup'][1]:.3f} µs; function + dict lookup {hits['function + dict lookup'][0]:.3f} / "
                 f"{hits['function + dict lookup'][1]:.3f} µs |")
    f = fetch["fetch_prompt (uncached, by name)"]
    lines.append(f"| uncached by-name fetch (`fetch_prompt`) | {f[0]:.2f} ms | {f[1]:.2f} ms | raw httpx GET by-name "
                 f"{fetch['raw httpx GET by-name'][0]:.2f} / {fetch['raw httpx GET by-name'][1]:.2f} ms; raw httpx GET "
                 f"/healthz {fetch['raw httpx GET /healthz'][0]:.2f} / {fetch['raw httpx GET /healthz'][1]:.2f} ms |")
    key = next(k for k in coherence if k.startswith("move -> all"))
    m = coherence[key]
    lines.append(f"| label move -> all {args.watchers} watching clients serve it ({args.moves} moves) | {m[0]:.1f} ms | "
                 f"{m[1]:.1f} ms | move command itself {coherence['move command (acknowledged)'][0]:.1f} / "
                 f"{coherence['move command (acknowledged)'][1]:.1f} ms; move -> change on a raw SSE reader "
                 f"{coherence['move -> change on a raw SSE reader'][0]:.1f} / "
                 f"{coherence['move -> change on a raw SSE reader'][1]:.1f} ms |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
