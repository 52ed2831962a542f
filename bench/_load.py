"""HTTP load generator of bench/http_paths.py: closed-loop keep-alive clients, `wrk` or Python.

One *run* drives one workload against one server for a fixed time with C connections, each
connection sending its next request as soon as the previous answer arrived (closed loop, no
pipelining). Workloads:

- `get`: GETs cycling through a list of paths (each with its own optional `If-None-Match`);
- `create`: POSTs of a JSON body with a unique `name` per request (`<prefix>-<conn>-<seq>`);
- `revise`: POSTs of `{"base_version": n, ...}` to each connection's own prompts, round-robin,
  with `n` tracked per prompt from the 201 answers (`"version": n`). A 409
  PROMPT_VERSION_CONFLICT updates `n` from its `current_version` (`inflight` lists the prompts
  whose last revision was cut off by the end of a wrk run: its answer never arrived, so the
  tracked version may be stale; the driver re-reads those between runs).

Clients:

- `wrk` (Debian's wrk 4.1, C, epoll): one thread per connection, so each connection has its own
  Lua state (the revise workload tracks its prompts' versions there). The Lua script below counts
  answers by status and, for status >= 400, by the `error.code` of the body; wrk's own latency
  histogram gives the percentiles.
- `python`: one process per connection (multiprocessing, `http.client` keep-alive), for machines
  without wrk. It costs much more client CPU per request than wrk; on a 2-core machine the client
  then competes harder with the server, so compare only ratios measured with the same client.

Process meters for the servers (no psutil needed): `tree_pids`, `rss_kb`, `cpu_seconds` read /proc.
"""
from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# -- workload and result ---------------------------------------------------------------------------


@dataclass
class Workload:
    """What one run sends. `paths`: for `get`, the paths cycled through (with `etags[i]` as
    If-None-Match when given); for `create`, the one POST path; for `revise`, one path per prompt,
    with `versions[path]` its current version (updated in place after every run)."""

    kind: str  # get | create | revise
    auth: str  # the Authorization header value
    paths: list[str]
    expect: int  # the status that counts as a success
    etags: list[str] | None = None
    template: str = ""  # create / revise: the template sent (a revision appends a unique suffix)
    prefix: str = "bench"  # create: name prefix (unique per run)
    versions: dict[str, int] = field(default_factory=dict)


@dataclass
class RunResult:
    requests: int
    seconds: float
    ok: int
    statuses: Counter
    codes: Counter  # "409 CONCURRENT_MODIFICATION" -> n (statuses >= 400)
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    bytes: int
    socket_errors: dict[str, int]
    inflight: list[str] = field(default_factory=list)  # revise: prompts whose last answer never came

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.seconds if self.seconds else float("nan")

    @property
    def errors(self) -> Counter:
        """Every answer that was not the expected status, by 'status CODE' (or 'status' alone)."""
        out = Counter()
        listed = Counter()
        for key, n in self.codes.items():
            out[key] += n
            listed[int(key.split()[0])] += n
        for status, n in self.statuses.items():
            rest = n - listed.get(status, 0)
            if rest > 0 and status >= 400:
                out[str(status)] += rest
        return out

    def to_json(self) -> dict:
        return {"requests": self.requests, "seconds": self.seconds, "ok": self.ok,
                "statuses": {str(k): v for k, v in self.statuses.items()}, "codes": dict(self.codes),
                "p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "p99_ms": self.p99_ms, "max_ms": self.max_ms,
                "bytes": self.bytes, "socket_errors": self.socket_errors}


# -- wrk --------------------------------------------------------------------------------------------
WRK_LUA = r"""
-- bench/_load.py: one workload per run, configured through the environment (PFB_*).
local mode = os.getenv("PFB_MODE")
local auth = os.getenv("PFB_AUTH")
local reqfile = os.getenv("PFB_REQS")
local template = os.getenv("PFB_TEMPLATE") or ""   -- already JSON-escaped, without quotes
local prefix = os.getenv("PFB_PREFIX") or "bench"
local nthreads = tonumber(os.getenv("PFB_THREADS") or "1")

local function read_lines(path)
  local out = {}
  for line in io.lines(path) do
    if #line > 0 then
      local a, b = line:match("^([^\t]*)\t?(.*)$")
      out[#out + 1] = {a, b}
    end
  end
  return out
end

-- main state ---------------------------------------------------------------------------------
local threads = {}
local nth = 0
function setup(thread)
  nth = nth + 1
  thread:set("tid", nth)
  threads[#threads + 1] = thread
end

-- thread states ------------------------------------------------------------------------------
counts = {}
codes = {}
versions = {}
inflight = {}
local reqs = {}
local items = {}
local idx = 0
local pending = nil
local seq = 0
local post_headers = nil

function init(args)
  local lines = read_lines(reqfile)
  post_headers = {["Authorization"] = auth, ["Content-Type"] = "application/json"}
  if mode == "get" then
    for _, l in ipairs(lines) do
      local h = {["Authorization"] = auth}
      if l[2] ~= "" then h["If-None-Match"] = l[2] end
      reqs[#reqs + 1] = wrk.format("GET", l[1], h)
    end
    idx = ((tid - 1) * 13) % #reqs   -- connections start at different names
  elseif mode == "revise" then
    for i, l in ipairs(lines) do
      if (i - 1) % nthreads == tid - 1 then
        items[#items + 1] = l[1]
        versions[l[1]] = tonumber(l[2])
      end
    end
  else
    items[1] = lines[1][1]
  end
end

function request()
  if mode == "get" then
    idx = idx % #reqs + 1
    return reqs[idx]
  end
  seq = seq + 1
  if mode == "create" then
    local body = '{"name":"' .. prefix .. '-' .. tid .. '-' .. seq .. '","template":"' .. template ..
                 '","message":"bench create"}'
    return wrk.format("POST", items[1], post_headers, body)
  end
  idx = idx % #items + 1
  pending = items[idx]
  inflight[pending] = true
  local body = '{"base_version":' .. versions[pending] .. ',"template":"' .. template .. ' (' .. prefix .. '-' ..
               tid .. '-' .. seq .. ')","message":"bench revise"}'
  return wrk.format("POST", pending, post_headers, body)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if pending then inflight[pending] = nil end
  if status >= 400 then
    local code = (body and body:match('"code"%s*:%s*"([^"]+)"')) or "-"
    local key = status .. " " .. code
    codes[key] = (codes[key] or 0) + 1
    if mode == "revise" and pending and code == "PROMPT_VERSION_CONFLICT" then
      local current = body:match('"current_version"%s*:%s*(%d+)')
      if current then versions[pending] = tonumber(current) end
    end
  elseif mode == "revise" and pending and status == 201 then
    local v = body:match('"version"%s*:%s*(%d+)')
    if v then versions[pending] = tonumber(v) end
  end
end

function done(summary, latency, requests)
  local f = io.open(os.getenv("PFB_OUT"), "w")
  f:write("requests\t", summary.requests, "\n")
  f:write("duration_us\t", summary.duration, "\n")
  f:write("bytes\t", summary.bytes, "\n")
  for k, v in pairs(summary.errors) do f:write("sockerr\t", k, "\t", v, "\n") end
  for _, p in ipairs({50, 90, 99}) do f:write("lat\t", p, "\t", latency:percentile(p), "\n") end
  f:write("lat\tmax\t", latency.max, "\n")
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do f:write("status\t", k, "\t", v, "\n") end
    for k, v in pairs(t:get("codes")) do f:write("code\t", k, "\t", v, "\n") end
    if mode == "revise" then
      for k, v in pairs(t:get("versions")) do f:write("version\t", k, "\t", v, "\n") end
      for k, v in pairs(t:get("inflight")) do f:write("inflight\t", k, "\n") end
    end
  end
  f:close()
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _json_escaped(text: str) -> str:
    return json.dumps(text)[1:-1]


class Loader:
    """Runs workloads against base URLs with the chosen client; keeps its files in `workdir`."""

    def __init__(self, client: str = "auto", workdir: Path | None = None):
        if client == "auto":
            client = "wrk" if wrk_available() else "python"
        if client == "wrk" and not wrk_available():
            raise RuntimeError("wrk is not installed (apt-get install -y wrk), use --client python")
        self.client = client
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="pf-load-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.script = self.workdir / "bench.lua"
        self.script.write_text(WRK_LUA)
        self._n = 0

    def version(self) -> str:
        if self.client == "wrk":
            out = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
            return out.splitlines()[0].split(" Copyright")[0] if out else "wrk"
        return "Python http.client, one process per connection"

    def run(self, base_url: str, workload: Workload, connections: int, seconds: float) -> RunResult:
        if self.client == "wrk":
            return self._run_wrk(base_url, workload, connections, seconds)
        return _run_python(base_url, workload, connections, seconds)

    # wrk -----------------------------------------------------------------------------------------
    def _run_wrk(self, base_url: str, w: Workload, connections: int, seconds: float) -> RunResult:
        self._n += 1
        reqs = self.workdir / f"reqs-{self._n}.tsv"
        out = self.workdir / f"out-{self._n}.tsv"
        if w.kind == "get":
            etags = w.etags or [""] * len(w.paths)
            reqs.write_text("".join(f"{p}\t{e}\n" for p, e in zip(w.paths, etags)))
        elif w.kind == "revise":
            reqs.write_text("".join(f"{p}\t{w.versions[p]}\n" for p in w.paths))
        else:
            reqs.write_text(f"{w.paths[0]}\n")
        env = {**os.environ, "PFB_MODE": w.kind, "PFB_AUTH": w.auth, "PFB_REQS": str(reqs), "PFB_OUT": str(out),
               "PFB_TEMPLATE": _json_escaped(w.template), "PFB_PREFIX": w.prefix, "PFB_THREADS": str(connections)}
        cmd = ["wrk", f"-t{connections}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
               "-s", str(self.script), base_url]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        requests = 0
        duration = 0.0
        nbytes = 0
        statuses: Counter = Counter()
        codes: Counter = Counter()
        lat: dict[str, float] = {}
        sock: dict[str, int] = {}
        inflight: list[str] = []
        for line in out.read_text().splitlines():
            parts = line.split("\t")
            kind = parts[0]
            if kind == "requests":
                requests = int(parts[1])
            elif kind == "duration_us":
                duration = float(parts[1]) / 1e6
            elif kind == "bytes":
                nbytes = int(parts[1])
            elif kind == "sockerr":
                sock[parts[1]] = int(parts[2])
            elif kind == "lat":
                lat[parts[1]] = float(parts[2]) / 1000.0
            elif kind == "status":
                statuses[int(parts[1])] += int(parts[2])
            elif kind == "code":
                codes[parts[1]] += int(parts[2])
            elif kind == "version":
                w.versions[parts[1]] = int(parts[2])
            elif kind == "inflight":
                inflight.append(parts[1])
        reqs.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
        return RunResult(requests, duration, statuses.get(w.expect, 0), statuses, codes, lat.get("50", float("nan")),
                         lat.get("90", float("nan")), lat.get("99", float("nan")), lat.get("max", float("nan")),
                         nbytes, {k: v for k, v in sock.items() if v}, inflight)


# -- the Python client ----------------------------------------------------------------------------
_CODE = re.compile(rb'"code"\s*:\s*"([^"]+)"')
_VERSION = re.compile(rb'"version"\s*:\s*(\d+)')
_CURRENT = re.compile(rb'"current_version"\s*:\s*(\d+)')


def _py_client(base_url: str, w: Workload, index: int, connections: int, seconds: float, barrier, queue) -> None:
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    statuses: Counter = Counter()
    codes: Counter = Counter()
    latencies: list[float] = []
    nbytes = 0
    if w.kind == "get":
        etags = w.etags or [""] * len(w.paths)
        requests = []
        for path, tag in zip(w.paths, etags):
            headers = {"Authorization": w.auth}
            if tag:
                headers["If-None-Match"] = tag
            requests.append(("GET", path, None, headers))
        position = (index * 13) % len(requests)
    else:
        mine = [p for i, p in enumerate(w.paths) if w.kind != "revise" or i % connections == index]
        position = 0
    post_headers = {"Authorization": w.auth, "Content-Type": "application/json"}
    versions = {p: w.versions[p] for p in (mine if w.kind == "revise" else [])}
    seq = 0
    barrier.wait()
    deadline = time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        if started >= deadline:
            break
        pending = None
        if w.kind == "get":
            method, path, body, headers = requests[position % len(requests)]
            position += 1
        else:
            seq += 1
            headers = post_headers
            method = "POST"
            if w.kind == "create":
                path = mine[0]
                body = json.dumps({"name": f"{w.prefix}-{index + 1}-{seq}", "template": w.template,
                                   "message": "bench create"})
            else:
                path = pending = mine[position % len(mine)]
                position += 1
                body = json.dumps({"base_version": versions[path], "message": "bench revise",
                                   "template": f"{w.template} ({w.prefix}-{index + 1}-{seq})"})
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            statuses[0] += 1
            conn.close()
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        status = response.status
        statuses[status] += 1
        nbytes += len(data)
        if status >= 400:
            m = _CODE.search(data)
            code = m.group(1).decode() if m else "-"
            codes[f"{status} {code}"] += 1
            if pending and code == "PROMPT_VERSION_CONFLICT":
                m = _CURRENT.search(data)
                if m:
                    versions[pending] = int(m.group(1))
        elif pending and status == 201:
            m = _VERSION.search(data)
            if m:
                versions[pending] = int(m.group(1))
    conn.close()
    queue.put((statuses, codes, latencies, nbytes, versions))


def _run_python(base_url: str, w: Workload, connections: int, seconds: float) -> RunResult:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(connections + 1)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_py_client, args=(base_url, w, i, connections, seconds, barrier, queue), daemon=True)
             for i in range(connections)]
    for p in procs:
        p.start()
    barrier.wait()
    started = time.perf_counter()
    parts = [queue.get(timeout=seconds + 60) for _ in procs]
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join(10)
    statuses: Counter = Counter()
    codes: Counter = Counter()
    latencies: list[float] = []
    nbytes = 0
    for s, c, lat, b, versions in parts:
        statuses.update(s)
        codes.update(c)
        latencies.extend(lat)
        nbytes += b
        w.versions.update(versions)
    latencies.sort()

    def q(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")

    socket_errors = {"connect/read": statuses.pop(0)} if statuses.get(0) else {}
    return RunResult(sum(statuses.values()), min(elapsed, seconds) if elapsed > 0 else seconds,
                     statuses.get(w.expect, 0), statuses, codes, q(0.5), q(0.9), q(0.99),
                     latencies[-1] if latencies else float("nan"), nbytes, socket_errors)


# -- process meters ---------------------------------------------------------------------------------
_CLK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()  # fields from `state` on (comm may contain spaces)


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants (from /proc/*/stat parent ids)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children[int(fields[1])].append(int(entry))
    out = [root]
    i = 0
    while i < len(out):
        out.extend(children.get(out[i], []))
        i += 1
    return out


def rss_kb(pids: list[int]) -> int:
    """Sum of VmRSS over the processes (pages shared between them are counted once per process)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the processes (live ones; see `tree_pids`)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLK
