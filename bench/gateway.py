#!/usr/bin/env python3
"""Gateway benchmark: `make bench-gateway`. Our ASGI gateway against the same gateway on
aiohttp, with nginx proxy_pass as the floor, all in front of the benchmark's nginx.

Set-up (its own, like bench/run.py): nginx and wrk from Debian's packages when missing
(root only), and bench/.venv-gateway from bench/requirements-gateway.txt (uvicorn,
uvloop, httptools, aiohttp, matplotlib; ours is imported from the repo by PYTHONPATH).

What runs, with the machine's two cores split in two:
  CPU 1: the gateway under test, alone: `uvicorn --loop uvloop --http httptools`, one
         worker (examples/gateway.py or bench/gateways/aiohttp_gateway.py), or the
         floor, an nginx doing proxy_pass (bench/nginx/gateway-floor.conf.in);
  CPU 0: the upstream nginx (bench/nginx.py) and the load, wrk with one thread.
Scenarios: GET / (12 bytes) over 64 connections; GET /1m (1 MiB) over 16; POST 1 MiB to
/sink (nginx reads it all before answering) over 16. Each run is a warm-up, then
--seconds of wrk; rounds are interleaved (every gateway runs each scenario once per
round, in an order rotated every round) and the medians reported. Measured per run:
requests/s and p50/p99 latency (wrk), and the gateway's CPU µs per request (utime +
stime of its processes from /proc/<pid>/stat over the timed part).

Writes bench/results/gateway.md, gateway.json and gateway.png (--out to change).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv-gateway"
REQUIREMENTS = BENCH / "requirements-gateway.txt"
LUA = BENCH / "gateways" / "wrk_report.lua"
FLOOR_CONF = (BENCH / "nginx" / "gateway-floor.conf.in").read_text()

sys.path.insert(0, str(BENCH))
import nginx as nginx_mod  # noqa: E402
from run import clean_env, cpu_model, ensure_venv, git_rev, log  # noqa: E402

GATEWAY_CPU, LOAD_CPU = "1", "0"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    path: str
    connections: int
    body: int = 0


SCENARIOS = [
    Scenario("get_small", "GET 12 B, 64 connections", "/", 64),
    Scenario("get_1m", "GET 1 MiB, 16 connections", "/1m", 16),
    Scenario("post_1m", "POST 1 MiB (upstream reads it all), 16 connections", "/sink", 16, 1024 * 1024),
]
GATEWAYS = ["ours", "aiohttp", "nginx floor"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian's packages when missing (as root)."""
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() != 0:
        raise RuntimeError("wrk is not installed and we are not root: apt-get install wrk")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log("bench: installing wrk from Debian packages ...")
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"], env=env, capture_output=True
    )
    path = shutil.which("wrk")
    if not path:
        raise RuntimeError("could not install wrk with apt-get")
    return path


Times = dict[str, tuple[int, int]]


def core_times() -> Times:
    """(all, idle) clock ticks of each core so far, from /proc/stat."""
    times: Times = {}
    for line in _read("/proc/stat").splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(f) for f in fields]
            times[name.removeprefix("cpu")] = (sum(ticks), ticks[3] + ticks[4])  # idle + iowait
    return times


def core_busy(before: Times, after: Times, cpu: str) -> float | None:
    """How busy a core was between two readings, whoever kept it busy (percent)."""
    if cpu not in before or cpu not in after:
        return None
    total = after[cpu][0] - before[cpu][0]
    idle = after[cpu][1] - before[cpu][1]
    return 100 * (total - idle) / total if total > 0 else None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:  # the process is gone
        return ""


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen within 20 s")


class Gateway:
    """One gateway process (tree) on CPU 1: start, CPU time, stop."""

    def __init__(self, name: str, python: str, upstream: str, prefix: Path, nginx: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        pin = ["taskset", "-c", GATEWAY_CPU]
        env = clean_env()
        env["GATEWAY_UPSTREAM"] = upstream
        if name == "nginx floor":
            conf = prefix / "floor.conf"
            for d in ("floor_client_body", "floor_proxy"):
                (prefix / d).mkdir(exist_ok=True)
                (prefix / d).chmod(0o777)
            conf.write_text(
                FLOOR_CONF.format(prefix=prefix, port=self.port, upstream_port=upstream.rsplit(":", 1)[1])
            )
            cmd = [*pin, nginx, "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"]
        else:
            app, app_dir = (
                ("examples.gateway:app", REPO)
                if name == "ours"
                else ("aiohttp_gateway:app", BENCH / "gateways")
            )
            env["PYTHONPATH"] = str(REPO)
            cmd = [*pin, python, "-m", "uvicorn", app, "--app-dir", str(app_dir), "--port", str(self.port)]
            cmd += ["--loop", "uvloop", "--http", "httptools", "--lifespan", "on", "--backlog", "4096"]
            cmd += ["--no-access-log", "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=str(REPO), stdin=subprocess.DEVNULL)
        wait_listening(self.port, self.proc, name)

    def pids(self) -> list[int]:
        pids = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            pids += [int(pid) for pid in children.split()]
        except OSError:
            pass
        return pids

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[-1].split()
            if len(fields) > 12:
                total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return total / TICK

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            for line in _read(f"/proc/{pid}/status").splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wrk(binary: str, url: str, scenario: Scenario, seconds: float) -> dict[str, Any]:
    env = clean_env()
    env["WRK_BODY_SIZE"] = str(scenario.body)
    cmd = [
        "taskset",
        "-c",
        LOAD_CPU,
        binary,
        "-t1",
        f"-c{scenario.connections}",
        f"-d{max(1, round(seconds))}s",
    ]
    cmd += ["--timeout", "10s", "-s", str(LUA), url + scenario.path]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            result: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
            return result
    raise RuntimeError(f"wrk gave no figures: {proc.stdout[-500:]} {proc.stderr[-500:]}")


def run_one(
    gateway: Gateway, binary: str, scenario: Scenario, seconds: float, warmup: float
) -> dict[str, Any]:
    wrk(binary, gateway.url, scenario, warmup)
    cpu0, cores0 = gateway.cpu_seconds(), core_times()
    figures = wrk(binary, gateway.url, scenario, seconds)
    cpu, cores = gateway.cpu_seconds() - cpu0, core_times()
    requests = figures["requests"]
    errors = sum(figures[key] for key in ("connect", "read", "write", "status", "timeout"))
    wall = figures["duration_us"] / 1e6
    return {
        "gateway": gateway.name,
        "scenario": scenario.name,
        "ok": requests > 0 and errors == 0,
        "errors": errors,
        "requests": requests,
        "rps": requests / wall,
        "p50_ms": figures["p50_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "max_ms": figures["max_us"] / 1000,
        "cpu_us_per_req": cpu * 1e6 / requests if requests else None,
        # How busy the gateway's core was: near 100% when the gateway is the bottleneck;
        # far below when the load side (wrk, the upstream, other work on the machine) was.
        "busy_pct": 100 * cpu / wall,
        # Both whole cores, whoever used them: the load core near 100% means wrk and the
        # upstream (or other work on the machine) set the pace, not the gateway.
        "gateway_core_pct": core_busy(cores0, cores, GATEWAY_CPU),
        "load_core_pct": core_busy(cores0, cores, LOAD_CPU),
        "rss_mb": gateway.rss_mb(),
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for name in GATEWAYS:
        summary[name] = {}
        for scenario in SCENARIOS:
            rows = [r for r in runs if r["gateway"] == name and r["scenario"] == scenario.name]
            if not rows:
                continue
            cell: dict[str, Any] = {"rounds": len(rows), "errors": sum(r["errors"] for r in rows)}
            for key in (
                "rps",
                "p50_ms",
                "p99_ms",
                "cpu_us_per_req",
                "busy_pct",
                "gateway_core_pct",
                "load_core_pct",
                "rss_mb",
            ):
                values = [r[key] for r in rows if r.get(key) is not None]
                cell[key] = statistics.median(values) if values else None
            cell["rps_spread"] = max(r["rps"] for r in rows) / max(1e-9, min(r["rps"] for r in rows))
            summary[name][scenario.name] = cell
    return summary


def fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def markdown(doc: dict[str, Any]) -> str:
    meta, summary = doc["meta"], doc["summary"]
    lines = [
        "# Gateway benchmark",
        "",
        f"{meta['date']}, commit {meta['git_rev']}; {meta['rounds']} interleaved rounds of"
        f" {meta['seconds']} s (after a {meta['warmup']} s warm-up) per gateway and scenario;"
        f" {meta['cpu_model']}, {meta['cpu_count']} cores. Gateway alone on CPU {GATEWAY_CPU};"
        f" upstream nginx and wrk (1 thread) on CPU {LOAD_CPU}. Python gateways: uvicorn"
        f" {meta['versions'].get('uvicorn')} with uvloop {meta['versions'].get('uvloop')} and"
        f" httptools {meta['versions'].get('httptools')}, one worker; aiohttp"
        f" {meta['versions'].get('aiohttp')}. Medians over the rounds.",
        "",
        "| scenario | ours req/s | aiohttp req/s | ratio | ours p50 / p99 ms | aiohttp p50 / p99 ms"
        " | gateway CPU µs/req ours / aiohttp | nginx floor req/s, µs/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in SCENARIOS:
        ours = summary.get("ours", {}).get(scenario.name)
        peer = summary.get("aiohttp", {}).get(scenario.name)
        floor = summary.get("nginx floor", {}).get(scenario.name)
        if not ours or not peer:
            continue
        ratio = ours["rps"] / peer["rps"] if peer["rps"] else None
        floor_cell = f"{fmt(floor['rps'])}, {fmt(floor['cpu_us_per_req'], 1)}" if floor else "—"
        lines.append(
            f"| {scenario.title} | {fmt(ours['rps'])} | {fmt(peer['rps'])} | **{fmt(ratio, 2)}x** |"
            f" {fmt(ours['p50_ms'], 1)} / {fmt(ours['p99_ms'], 1)} | {fmt(peer['p50_ms'], 1)} /"
            f" {fmt(peer['p99_ms'], 1)} | {fmt(ours['cpu_us_per_req'])} / {fmt(peer['cpu_us_per_req'])} |"
            f" {floor_cell} |"
        )
    lines += [
        "",
        "Spread of req/s over the rounds (max ÷ min), how busy the gateway's process kept its core"
        " (100% when the gateway is the bottleneck; lower when the load side on the other core was,"
        " and then req/s says little: read the CPU µs/req), how busy each whole core was, whatever"
        " ran on it (gateway core / load core: a load core near 100% with the gateway's process"
        " below it means wrk and the upstream, or other work on the machine, set the pace), errors"
        " (wrk: connect, read, write, non-2xx/3xx, timeouts; all rounds) and resident memory of"
        " the gateway after its runs:",
        "",
        "| gateway | " + " | ".join(s.title for s in SCENARIOS) + " |",
        "|---|" + "---:|" * len(SCENARIOS),
    ]
    for name in GATEWAYS:
        cells = []
        for scenario in SCENARIOS:
            cell = summary.get(name, {}).get(scenario.name)
            cells.append(
                "—"
                if not cell
                else f"{cell['rps_spread']:.2f}x, {fmt(cell['busy_pct'])}% busy (cores"
                f" {fmt(cell.get('gateway_core_pct'))}% / {fmt(cell.get('load_core_pct'))}%),"
                f" {cell['errors']} errors, {fmt(cell['rss_mb'])} MB"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = doc["summary"]
    fig, grid = plt.subplots(2, 3, figsize=(13, 7.5))
    colours = {"ours": "#2a7ab9", "aiohttp": "#e0892b", "nginx floor": "#9a9a9a"}
    for column, scenario in enumerate(SCENARIOS):
        names = [n for n in GATEWAYS if scenario.name in summary.get(n, {})]
        for row, (key, label) in enumerate(
            (("rps", "requests/s"), ("cpu_us_per_req", "gateway CPU µs/request"))
        ):
            ax = grid[row][column]
            values = [summary[n][scenario.name][key] or 0 for n in names]
            if not values:  # a scenario left out of this run (--scenarios)
                ax.set_visible(False)
                continue
            bars = ax.bar(names, values, color=[colours[n] for n in names])
            for bar, name in zip(bars, names, strict=True):
                text = f"{bar.get_height():,.0f}"
                if key == "rps":
                    text += f"\np99 {summary[name][scenario.name]['p99_ms']:.1f} ms"
                ax.annotate(
                    text,
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
            ax.set_ylabel(
                label + (" (higher is better)" if key == "rps" else " (lower is better)"), fontsize=8
            )
            ax.set_ylim(0, max(values) * 1.25 if max(values) else 1)
            if row == 0:
                ax.set_title(scenario.title, fontsize=9)
    fig.suptitle(
        "ASGI gateways in front of nginx (uvicorn + uvloop + httptools, 1 worker on 1 core)", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4, help="timed wrk run per gateway and scenario")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--gateways", default=",".join(GATEWAYS), help=f"comma-separated, of {GATEWAYS}")
    ap.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS))
    ap.add_argument("--out", default=str(BENCH / "results"))
    ap.add_argument("--chart", nargs=2, metavar=("JSON", "PNG"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.chart:
        chart(json.loads(Path(args.chart[0]).read_text()), Path(args.chart[1]))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = [n.strip() for n in args.gateways.split(",")]
    wanted = {s.strip() for s in args.scenarios.split(",")}
    scenarios = [s for s in SCENARIOS if s.name in wanted]
    python = ensure_venv(VENV, REQUIREMENTS, sys.executable)
    binary = ensure_wrk()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    runs: list[dict[str, Any]] = []
    with nginx_mod.Nginx(certs_python=python, cpu=int(LOAD_CPU)) as upstream:
        gateways = [
            Gateway(name, python, upstream.http_url, upstream.prefix, upstream.binary) for name in names
        ]
        try:
            for rnd in range(args.rounds):
                order = gateways[rnd % len(gateways) :] + gateways[: rnd % len(gateways)]
                for scenario in scenarios:
                    for gateway in order:
                        result = run_one(gateway, binary, scenario, args.seconds, args.warmup)
                        result["round"] = rnd + 1
                        runs.append(result)
                        log(
                            f"[round {rnd + 1}/{args.rounds}] {scenario.name:9s} {gateway.name:12s}"
                            f" {result['rps']:9,.0f} req/s  p50 {result['p50_ms']:6.1f} ms"
                            f"  p99 {result['p99_ms']:6.1f} ms  {fmt(result['cpu_us_per_req'], 1):>8s} µs/req"
                            f"  busy {result['busy_pct']:3.0f}% (cores {fmt(result['gateway_core_pct'])}%"
                            f" / {fmt(result['load_core_pct'])}%)  errors {result['errors']}"
                        )
        finally:
            for gateway in gateways:
                gateway.stop()
    versions = subprocess.run(
        [
            python,
            "-c",
            "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in"
            " ('uvicorn', 'uvloop', 'httptools', 'aiohttp', 'h11')}))",
        ],
        capture_output=True,
        text=True,
    )
    doc = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(started)),
            "duration_s": round(time.time() - started, 1),
            "git_rev": git_rev(),
            "rounds": args.rounds,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "versions": json.loads(versions.stdout or "{}"),
        },
        "summary": summarise(runs),
        "runs": runs,
    }
    (out / "gateway.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "gateway.md").write_text(markdown(doc))
    subprocess.run(
        [python, __file__, "--chart", str(out / "gateway.json"), str(out / "gateway.png")], check=False
    )
    print(markdown(doc))
    failed = [r for r in runs if not r["ok"]]
    for r in failed:
        log(f"bench: {r['gateway']} / {r['scenario']} round {r['round']}: {r['errors']} errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
