#!/usr/bin/env python3
"""Benchmark orchestrator: `make bench` (--full) and `make bench-smoke` (--smoke).

Does its own set-up, then measures:
  1. installs nginx from Debian's packages if missing (bench/nginx.py) and starts a
     private instance (one worker pinned to CPU 0);
  2. --full only: creates bench/.venv-peers from bench/requirements-peers.txt (encode's
     httpcore/httpx import as `httpcore` and would clash with ours, hence a separate
     venv), re-installing when that file changes;
  3. runs every (client, scenario) pair in its OWN process (bench/clients/<x>.py,
     pinned with `taskset -c 1`), in interleaved rounds: round 1 runs every client
     once, round 2 again, ..., so slow drifts of this shared 2-core machine hit all
     clients alike; the client order is rotated each round;
  4. takes the median per metric over the rounds and writes results.json,
     results.md (tables and ours/peer ratios) and, when matplotlib is available
     (peers venv), chart.png into bench/results/ (smoke: bench/results/smoke/).

A client that fails (import error, wrong status or body length, timeout) becomes an
error row; the run goes on.  --smoke runs only "ours", a few hundred requests per
scenario, one round, and exits non-zero if any scenario failed (including a stall:
one request slower than --stall-limit, 2 s) or did not run within its 90 s budget.
"Ours" runs with the project's interpreter (--ours-python, $BENCH_OURS_PYTHON, else
<repo>/.venv/bin/python, else this interpreter) and PYTHONPATH=<repo root> (or
--ours-root), so `import httpcore` is the repo's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CLIENTS_DIR = BENCH / "clients"
PEERS_VENV = BENCH / ".venv-peers"
TOOLS_VENV = BENCH / ".venv-tools"
PEERS_REQ = BENCH / "requirements-peers.txt"
# What ours' runs need beyond the dev extra (uvloop), installed with `pip --target` here
# and put on their PYTHONPATH: never into .venv, where pproxy (a test proxy) would pick
# uvloop up and fail under it.
OURS_SITE = BENCH / ".ours-site"
TOOLS_REQ = BENCH / "requirements-tools.txt"

sys.path.insert(0, str(BENCH))
import nginx as nginx_mod  # noqa: E402
import report  # noqa: E402

SYNC = ["seq_sync", "threads_8", "download_sync", "upload_sync", "tls_sync"]
# 16 and 512 tasks over the same 100-connection cap: does a request cost more as tasks pile up?
SCALING = ["async_16x100", "async_512x100"]
ASYNC = [
    "seq_async",
    "async_100x10",
    "async_100x100",
    *SCALING,
    "download_async",
    "upload_async",
    "tls_async",
]
H2 = ["h2_seq_async", "h2_100_streams"]
TRIO = ["seq_async", "async_100x10", "download_async", "h2_seq_async", "h2_100_streams"]
SCENARIO_ORDER = [
    "seq_sync",
    "seq_async",
    "async_100x10",
    "async_100x100",
    *SCALING,
    "threads_8",
    "download_sync",
    "download_async",
    "upload_sync",
    "upload_async",
    "tls_sync",
    "tls_async",
    "h2_seq_async",
    "h2_100_streams",
    "h2_threads_8",
]


@dataclass(frozen=True)
class Client:
    name: str
    script: str
    env: str  # "ours" | "peers"
    scenarios: tuple[str, ...]
    args: tuple[str, ...] = ()
    floor: bool = False


WITHOUT_SCALING = tuple(s for s in SCENARIO_ORDER if s not in SCALING)

CLIENTS: list[Client] = [
    Client("ours", "ours.py", "ours", tuple(SCENARIO_ORDER)),
    # Ours on uvloop (bench/requirements-ours.txt, installed by `make bench`), against aiohttp+uvloop.
    Client("ours+uvloop", "ours.py", "ours", tuple(ASYNC), ("--loop", "uvloop")),
    Client("httpcore 1.0.9", "encode_httpcore.py", "peers", WITHOUT_SCALING),
    Client("httpx", "httpx_client.py", "peers", WITHOUT_SCALING),
    # Under trio.run: the scenarios a trio user runs, ours against encode's httpcore.
    Client("ours+trio", "ours.py", "ours", (*TRIO, *SCALING), ("--loop", "trio")),
    Client("httpcore 1.0.9+trio", "encode_httpcore.py", "peers", tuple(TRIO), ("--loop", "trio")),
    Client("aiohttp", "aiohttp_client.py", "peers", tuple(ASYNC)),
    Client("aiohttp+uvloop", "aiohttp_client.py", "peers", tuple(ASYNC), ("--loop", "uvloop")),
    Client("urllib3", "urllib3_client.py", "peers", tuple(SYNC)),
    Client("requests", "requests_client.py", "peers", tuple(SYNC)),
    # requests with our transport adapter, against "requests" above (same Session set-up).
    Client("requests+httpcore", "requests_httpcore.py", "ours", (*SYNC, "h2_threads_8")),
    Client("h11 floor", "h11_client.py", "peers", tuple(SYNC), floor=True),
    Client("raw socket floor", "raw_socket.py", "peers", tuple(SYNC), floor=True),
    Client("raw asyncio floor", "raw_asyncio.py", "peers", tuple(ASYNC), floor=True),
    Client(
        "raw asyncio+uvloop floor", "raw_asyncio.py", "peers", tuple(ASYNC), ("--loop", "uvloop"), floor=True
    ),
    Client("bare-h2 floor", "raw_h2.py", "peers", tuple(H2), floor=True),
]

# Per-scenario request caps (the time cap --seconds applies too, whichever comes first).
FULL_COUNTS = {"get": 20000, "download": 200, "upload": 200, "tls": 2000, "h2": 20000}
SMOKE_COUNTS = {"get": 300, "download": 5, "upload": 5, "tls": 50, "h2": 300}


def scenario_op(name: str) -> str:
    for op in ("download", "upload", "tls", "h2"):
        if name.startswith(op):
            return op
    return "get"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- interpreters


def ours_pythonpath(ours_root: Path) -> str:
    """PYTHONPATH for ours' runs: the package measured, then bench/.ours-site."""
    return os.pathsep.join([str(ours_root), str(OURS_SITE)])


def default_ours_python() -> str:
    env = os.environ.get("BENCH_OURS_PYTHON")
    if env:
        return env
    venv_py = REPO / ".venv" / "bin" / "python"
    return str(venv_py) if venv_py.exists() else sys.executable


def can_import(python: str, module: str, extra_env: dict[str, str] | None = None) -> bool:
    env = clean_env()
    env.update(extra_env or {})
    r = subprocess.run(
        [python, "-c", f"import {module}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return r.returncode == 0


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path, requirements: Path, base_python: str) -> str:
    """Create/refresh `venv` from `requirements` (quietly; a stamp file skips reinstalls)."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = venv / ".requirements.sha256"
    py = _venv_python(venv)
    if py.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return str(py)
    log(f"bench: setting up {venv.relative_to(REPO)} from {requirements.relative_to(REPO)} ...")
    if not py.exists():
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(py), "-m", "pip", "install", "-qq", "--disable-pip-version-check", "-r", str(requirements)],
        check=True,
        env=clean_env(),
    )
    stamp.write_text(digest + "\n")
    return str(py)


def clean_env() -> dict[str, str]:
    """The environment for child processes: no proxies, no inherited PYTHONPATH, no key log."""
    drop = {"PYTHONPATH", "SSLKEYLOGFILE", "PYTHONSTARTUP", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.lower().endswith("_proxy")}


# ---------------------------------------------------------------- running


@dataclass
class Plan:
    mode: str
    rounds: int
    seconds: float
    counts: dict[str, int]
    clients: list[Client]
    scenarios: list[str]
    pin: bool
    ours_python: str
    peers_python: str | None
    out_dir: Path
    ours_root: Path = REPO
    stall_limit: float | None = None
    budget: float | None = None  # overall seconds for all runs; later runs become errors
    results: list[dict[str, Any]] = field(default_factory=list)


def run_one(plan: Plan, client: Client, scenario: str, ng: nginx_mod.Nginx, rnd: int) -> dict[str, Any]:
    op = scenario_op(scenario)
    count = plan.counts[op]
    python = plan.ours_python if client.env == "ours" else plan.peers_python
    env = clean_env()
    if client.env == "ours":
        env["PYTHONPATH"] = ours_pythonpath(plan.ours_root)
        env["BENCH_OURS_ROOT"] = str(plan.ours_root)
    cmd = [
        str(python),
        str(CLIENTS_DIR / client.script),
        scenario,
        "--http-url",
        ng.http_url,
        "--https-url",
        ng.https_url,
        "--h2-url",
        ng.h2_url,
        "--ca",
        str(ng.ca_path),
        "--count",
        str(count),
        "--seconds",
        str(plan.seconds),
        *client.args,
    ]
    if plan.pin:
        cmd = ["taskset", "-c", "1", *cmd]
    base = {
        "client": client.name,
        "scenario": scenario,
        "round": rnd,
        "count_cap": count,
        "seconds_cap": plan.seconds,
    }
    timeout = plan.seconds + (8 if plan.mode == "smoke" else 60)
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(CLIENTS_DIR)
        )
    except subprocess.TimeoutExpired:
        return {**base, "ok": False, "error": f"timed out after {timeout:.0f} s"}
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    try:
        res = json.loads(line)
    except json.JSONDecodeError:
        err_lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
        return {
            **base,
            "ok": False,
            "error": (err_lines[-1] if err_lines else f"exit {proc.returncode}")[:300],
        }
    res = {**base, **res}
    if proc.returncode != 0 and res.get("ok"):
        res["ok"] = False
        res["error"] = f"exit {proc.returncode}"
    slowest = res.get("slowest_request_s")
    if res.get("ok") and plan.stall_limit and slowest and slowest > plan.stall_limit:
        res["ok"] = False
        res["error"] = f"stall: one request took {slowest:.2f} s (limit {plan.stall_limit} s)"
    return res


def fmt_result(r: dict[str, Any]) -> str:
    if not r.get("ok"):
        return "ERROR " + str(r.get("error"))
    s = f"{r['cpu_us_per_req']:9.1f} us/req {r['rps']:9.1f} req/s"
    if r.get("mb_per_s"):
        s += f" {r['mb_per_s']:7.1f} MB/s"
    return s + f"  ({r['requests']} req, {r['wall_s']:.2f} s)"


def run_rounds(plan: Plan, ng: nginx_mod.Nginx) -> None:
    pairs_per_round = sum(1 for c in plan.clients for s in plan.scenarios if s in c.scenarios)
    total = pairs_per_round * plan.rounds
    t0 = time.monotonic()
    done = 0
    for rnd in range(1, plan.rounds + 1):
        k = (rnd - 1) % len(plan.clients)
        order = plan.clients[k:] + plan.clients[:k]
        for scenario in plan.scenarios:
            for client in order:
                if scenario not in client.scenarios:
                    continue
                if plan.budget is not None and time.monotonic() - t0 > plan.budget:
                    r = {
                        "client": client.name,
                        "scenario": scenario,
                        "round": rnd,
                        "ok": False,
                        "error": f"not run: the {plan.budget:.0f} s budget was used up",
                    }
                else:
                    r = run_one(plan, client, scenario, ng, rnd)
                plan.results.append(r)
                done += 1
                eta = (time.monotonic() - t0) / done * (total - done)
                log(
                    f"[round {rnd}/{plan.rounds} {done}/{total} eta {eta:4.0f}s] "
                    f"{scenario:15s} {client.name:25s} {fmt_result(r)}"
                )


# ---------------------------------------------------------------- summary


def summarise(plan: Plan) -> dict[str, Any]:
    summary: dict[str, dict[str, Any]] = {}
    for c in plan.clients:
        summary[c.name] = {}
        for s in plan.scenarios:
            if s not in c.scenarios:
                continue
            runs = [r for r in plan.results if r["client"] == c.name and r["scenario"] == s]
            good = [r for r in runs if r.get("ok")]
            errors = sorted({str(r.get("error")) for r in runs if not r.get("ok")})
            cell: dict[str, Any] = {"ok": bool(runs) and not errors, "rounds": len(good), "errors": errors}
            slow = [r["slowest_request_s"] for r in good if r.get("slowest_request_s") is not None]
            cell["slowest_request_s"] = max(slow) if slow else None
            for key in ("cpu_us_per_req", "rps", "mb_per_s", "max_rss_mb", "requests", "wall_s"):
                vals = [r[key] for r in good if r.get(key) is not None]
                cell[key] = statistics.median(vals) if vals else None
                if key == "cpu_us_per_req" and vals:
                    cell["cpu_us_per_req_min"] = min(vals)
                    cell["cpu_us_per_req_max"] = max(vals)
            summary[c.name][s] = cell
    ratios: dict[str, dict[str, Any]] = {}
    basis: dict[str, str] = {}
    for c in plan.clients:
        if c.name in ("ours", "ours+uvloop") or c.name.endswith("+trio"):
            continue  # our own rows; the trio pair has its own table
        basis[c.name] = ours_counterpart(c)
        ours = summary.get(basis[c.name], {})
        ratios[c.name] = {}
        for s in plan.scenarios:
            a, b = ours.get(s), summary[c.name].get(s)
            if not a or not b or not a["ok"] or not b["ok"]:
                continue
            tp = "mb_per_s" if scenario_op(s) in ("download", "upload") else "rps"
            ratios[c.name][s] = {
                "cpu": a["cpu_us_per_req"] / b["cpu_us_per_req"] if b["cpu_us_per_req"] else None,
                "throughput": a[tp] / b[tp] if b[tp] else None,
            }
    # requests on our adapter against requests on its default (urllib3) adapter.
    adapter: dict[str, Any] = {}
    for s in plan.scenarios:
        a = summary.get("requests+httpcore", {}).get(s)
        b = summary.get("requests", {}).get(s)
        if a and b and a["ok"] and b["ok"] and b["cpu_us_per_req"]:
            adapter[s] = {"cpu": a["cpu_us_per_req"] / b["cpu_us_per_req"]}
    # Under trio.run: ours against encode's httpcore, both on trio.
    trio_ratios: dict[str, Any] = {}
    for s in plan.scenarios:
        a = summary.get("ours+trio", {}).get(s)
        b = summary.get("httpcore 1.0.9+trio", {}).get(s)
        if a and b and a["ok"] and b["ok"] and b["cpu_us_per_req"]:
            trio_ratios[s] = {"cpu": a["cpu_us_per_req"] / b["cpu_us_per_req"]}
    # Throughput and CPU per request at 512 tasks over those at 16, same 100-connection cap.
    scaling: dict[str, Any] = {}
    for c in plan.clients:
        lo, hi = (summary[c.name].get(s) for s in SCALING)
        if lo and hi and lo["ok"] and hi["ok"] and lo["rps"] and lo["cpu_us_per_req"]:
            scaling[c.name] = {
                "throughput": hi["rps"] / lo["rps"],
                "cpu": hi["cpu_us_per_req"] / lo["cpu_us_per_req"],
            }
    return {
        "summary": summary,
        "ratios": ratios,
        "ratio_basis": basis,
        "adapter_ratios": adapter,
        "trio_ratios": trio_ratios,
        "scaling": scaling,
    }


def ours_counterpart(peer: Client) -> str:
    """Our row a peer is compared with: the one on the same event loop (uvloop or asyncio)."""
    return "ours+uvloop" if "uvloop" in peer.args else "ours"


def versions(python: str | None, modules: list[str]) -> dict[str, str]:
    if not python:
        return {}
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {'python': sys.version.split()[0]}\n"
        f"for n in {modules!r}:\n"
        "    try: out[n] = m.version(n)\n"
        "    except Exception: pass\n"
        "print(json.dumps(out))\n"
    )
    # From bench/clients: in the repo root, "import httpcore" would find ours, not the peer's.
    r = subprocess.run([python, "-c", code], capture_output=True, text=True, env=clean_env(), cwd=CLIENTS_DIR)
    try:
        return dict(json.loads(r.stdout))
    except json.JSONDecodeError:
        return {}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def git_rev() -> str | None:
    """Short HEAD, plus "+dirty" when the package's files differ from it (read-only git calls)."""
    try:
        r = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        rev = r.stdout.strip() or None
        d = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "httpcore"],
            capture_output=True,
            text=True,
        )
        return f"{rev}+dirty" if rev and d.stdout.strip() else rev
    except OSError:
        return None


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="httpcore benchmarks against the peers (see bench/README.md)")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--full", action="store_true", help="all clients, interleaved rounds, ratios, chart")
    mode.add_argument("--smoke", action="store_true", help="ours only, few requests, fail on any error")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (full: 3, smoke: 1)")
    ap.add_argument("--seconds", type=float, help="time cap of each timed part (full: 2, smoke: 3)")
    ap.add_argument("--clients", help="comma-separated client names to run (default: all for --full)")
    ap.add_argument("--scenarios", help="comma-separated scenario names (default: all)")
    ap.add_argument(
        "--ours-python",
        default=default_ours_python(),
        help="interpreter for ours (default: $BENCH_OURS_PYTHON, <repo>/.venv/bin/python, this one)",
    )
    ap.add_argument(
        "--stall-limit",
        type=float,
        help="fail a run whose slowest single request took longer (s; smoke: 2, full: off)",
    )
    ap.add_argument(
        "--budget", type=float, help="overall seconds for all runs; the rest become errors (smoke: 90)"
    )
    ap.add_argument(
        "--ours-root",
        help="directory holding the httpcore package to measure as ours (default: this repo), "
        "e.g. an export of another commit: git archive REV httpcore | tar -x -C DIR",
    )
    ap.add_argument("--no-pin", action="store_true", help="do not pin nginx to CPU 0 and clients to CPU 1")
    ap.add_argument("--out", help="output directory (full: bench/results, smoke: bench/results/smoke)")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop nginx on the way out

    smoke = bool(args.smoke)
    ours_python = os.path.abspath(args.ours_python) if os.sep in args.ours_python else args.ours_python
    if args.clients:
        wanted = {x.strip() for x in args.clients.split(",")}
        clients = [c for c in CLIENTS if c.name in wanted]
        unknown = wanted - {c.name for c in clients}
        if unknown:
            ap.error(f"unknown clients {sorted(unknown)}; known: {[c.name for c in CLIENTS]}")
    else:
        clients = [c for c in CLIENTS if c.name in ("ours", "ours+trio")] if smoke else list(CLIENTS)
    scenarios = SCENARIO_ORDER
    if args.scenarios:
        scenarios = [s.strip() for s in args.scenarios.split(",")]
        bad = [s for s in scenarios if s not in SCENARIO_ORDER]
        if bad:
            ap.error(f"unknown scenarios {bad}; known: {SCENARIO_ORDER}")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    out_dir = Path(args.out) if args.out else (BENCH / "results" / ("smoke" if smoke else ""))
    out_dir.mkdir(parents=True, exist_ok=True)

    # Interpreters: peers venv only when a peer is in the run; trustme from wherever it is.
    need_peers = any(c.env == "peers" for c in clients)
    peers_python = ensure_venv(PEERS_VENV, PEERS_REQ, ours_python) if need_peers else None
    if peers_python is None and _venv_python(PEERS_VENV).exists():
        peers_python = str(_venv_python(PEERS_VENV))  # reuse for certs/chart if it is there
    certs_python = next(
        (p for p in (peers_python, ours_python, sys.executable) if p and can_import(p, "trustme")), None
    )
    if certs_python is None:
        certs_python = ensure_venv(TOOLS_VENV, TOOLS_REQ, ours_python)

    ours_in_run = any(c.env == "ours" for c in clients)
    ours_root = Path(args.ours_root).resolve() if args.ours_root else REPO
    if ours_in_run and not can_import(ours_python, "httpcore", {"PYTHONPATH": str(ours_root)}):
        log(
            f"bench: WARNING: `import httpcore` fails with {ours_python} and PYTHONPATH={ours_root}; "
            "ours will show as errors"
        )
    if any("uvloop" in c.args and c.env == "ours" for c in clients) and not can_import(
        ours_python, "uvloop", {"PYTHONPATH": ours_pythonpath(ours_root)}
    ):
        log(
            f"bench: WARNING: uvloop is not installed for {ours_python}; ours+uvloop will show as errors "
            f"(`make bench-ours-deps` installs it into {OURS_SITE})"
        )

    plan = Plan(
        mode="smoke" if smoke else "full",
        rounds=args.rounds or (1 if smoke else 3),
        seconds=args.seconds or (3.0 if smoke else 2.0),
        counts=SMOKE_COUNTS if smoke else FULL_COUNTS,
        clients=clients,
        scenarios=scenarios,
        pin=pin,
        ours_python=ours_python,
        peers_python=peers_python,
        out_dir=out_dir,
        ours_root=ours_root,
        stall_limit=args.stall_limit if args.stall_limit is not None else (2.0 if smoke else None),
        budget=args.budget if args.budget is not None else (90.0 if smoke else None),
    )
    started = time.time()
    with nginx_mod.Nginx(certs_python=certs_python, cpu=0 if pin else None) as ng:
        nginx_version = subprocess.run([ng.binary, "-v"], capture_output=True, text=True).stderr.strip()
        log(
            f"bench: nginx at {ng.http_url} / {ng.https_url} / {ng.h2_url} (h2); pinning: "
            f"{'nginx CPU 0, clients CPU 1' if pin else 'off'}; {plan.rounds} round(s) x "
            f"{len(clients)} client(s) x {len(scenarios)} scenario(s), <= {plan.seconds} s each"
        )
        run_rounds(plan, ng)

    meta = {
        "mode": plan.mode,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "git_rev": git_rev() if ours_root == REPO else f"ours from {ours_root}",
        "rounds": plan.rounds,
        "seconds_cap": plan.seconds,
        "count_caps": plan.counts,
        "pinning": "nginx worker on CPU 0, each client process on CPU 1" if pin else "none",
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "nginx": nginx_version,
        "ours_python": ours_python,
        "ours_versions": versions(ours_python, ["h11", "h2", "certifi", "trio", "uvloop"]),
        "peers_versions": versions(
            peers_python,
            ["httpcore", "httpx", "h11", "h2", "anyio", "trio", "aiohttp", "uvloop", "urllib3", "requests"],
        )
        if need_peers
        else {},
    }
    doc = {
        "meta": meta,
        "scenarios": scenarios,
        "clients": [c.name for c in clients],
        "floors": [c.name for c in clients if c.floor],
        **summarise(plan),
        "runs": plan.results,
    }
    (out_dir / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out_dir / "results.md").write_text(report.markdown(doc))
    chart_python = next((p for p in (peers_python, ours_python) if p and can_import(p, "matplotlib")), None)
    if chart_python:
        subprocess.run(
            [
                chart_python,
                str(BENCH / "report.py"),
                "--chart",
                str(out_dir / "results.json"),
                str(out_dir / "chart.png"),
            ],
            check=False,
            env=clean_env(),
        )
    log(
        f"bench: wrote {out_dir / 'results.md'}, results.json"
        + (", chart.png" if chart_python else "")
        + f" in {meta['duration_s']} s"
    )

    failed = [(c, s) for c, row in doc["summary"].items() for s, cell in row.items() if not cell["ok"]]
    for c, s in failed:
        log(f"bench: FAILED {c} / {s}: {'; '.join(doc['summary'][c][s]['errors'])}")
    if smoke:
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
