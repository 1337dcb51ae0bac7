#!/usr/bin/env python3
"""The proxied benchmark: ours against encode's httpcore 1.0.9, requests and urllib3,
every request through a local tinyproxy to the bench's nginx.

    .venv/bin/python bench/proxy.py [--rounds 3] [--seconds 2] [--count 3000]
    make bench-proxy

Scenarios (sequential GET / of 12 bytes, one pool or session per run):
  forward_sync / forward_async  http:// origin, forwarded by the proxy (tinyproxy closes its
                                client connection after every forwarded answer, so each
                                request also opens a TCP connection to the proxy, for
                                every client alike);
  tunnel_sync / tunnel_async    https:// origin through one CONNECT tunnel, kept alive.
Each (client, scenario) runs in its own process pinned to CPU 1 (nginx and tinyproxy on
CPU 0), in interleaved rounds with the client order rotated; the figure is the median
client CPU µs per request (getrusage of the client process over the timed part). The
peers run in bench/.venv-peers (bench/run.py sets it up). Results: a table on stdout and
bench/results/proxy.md, raw figures in bench/results/proxy.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import nginx as nginx_mod  # noqa: E402
import run as run_mod  # noqa: E402

CLIENTS = {  # name -> (interpreter kind, scenarios)
    "ours": ("ours", ("forward_sync", "tunnel_sync", "forward_async", "tunnel_async")),
    "httpcore-1.0.9": ("peers", ("forward_sync", "tunnel_sync", "forward_async", "tunnel_async")),
    "requests": ("peers", ("forward_sync", "tunnel_sync")),
    "urllib3": ("peers", ("forward_sync", "tunnel_sync")),
}
SCENARIOS = ("forward_sync", "tunnel_sync", "forward_async", "tunnel_async")


def start_tinyproxy(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    subprocess.run([sys.executable, str(run_mod.REPO / "scripts" / "test_deps.py")], check=False)
    binary = shutil.which("tinyproxy", path="/usr/bin:/usr/sbin:/usr/local/bin")
    if binary is None:
        raise SystemExit("tinyproxy is missing: run scripts/test_deps.py as root")
    port = nginx_mod.free_port()
    config = directory / "tinyproxy.conf"
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 200\nLogLevel Error\n"
        f'LogFile "{directory / "tinyproxy.log"}"\nPidFile "{directory / "tinyproxy.pid"}"\n'
        "Allow 127.0.0.1\nDisableViaHeader Yes\n"
    )
    cmd = [binary, "-d", "-c", str(config)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            import socket

            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("tinyproxy did not start")


def run_one(python: str, env: dict[str, str], client: str, scenario: str, args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    url = urls["forward" if scenario.startswith("forward") else "tunnel"]
    cmd = [
        python, str(BENCH / "clients" / "proxied.py"), client, scenario,
        "--proxy", urls["proxy"], "--url", url, "--ca", urls["ca"],
        "--count", str(args.count), "--seconds", str(args.seconds),
    ]  # fmt: skip
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.seconds + 60)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "timed out"}
    lines = proc.stdout.strip().splitlines()
    try:
        return dict(json.loads(lines[-1]))
    except (IndexError, json.JSONDecodeError):
        return {"ok": False, "error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:300]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    clients = [name for name in args.clients.split(",") if name]
    ours_python = run_mod.default_ours_python()
    peers_python = run_mod.ensure_venv(run_mod.PEERS_VENV, run_mod.PEERS_REQ, ours_python)
    ours_env = {**run_mod.clean_env(), "PYTHONPATH": str(run_mod.REPO)}
    peers_env = run_mod.clean_env()
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp, nginx_mod.Nginx(certs_python=ours_python) as ng:
        tinyproxy, proxy_url = start_tinyproxy(Path(tmp))
        try:
            urls = {"proxy": proxy_url, "forward": ng.http_url + "/", "tunnel": ng.https_url + "/", "ca": str(ng.ca_path)}
            for rnd in range(args.rounds):
                order = clients[rnd % len(clients) :] + clients[: rnd % len(clients)]
                for scenario in SCENARIOS:
                    for client in order:
                        kind, scenarios = CLIENTS[client]
                        if scenario not in scenarios:
                            continue
                        python, env = (ours_python, ours_env) if kind == "ours" else (peers_python, peers_env)
                        result = run_one(python, env, client, scenario, args, urls)
                        results.setdefault((client, scenario), []).append(result)
                        figure = f"{result['cpu_us_per_req']:.1f} us/req" if result.get("ok") else result.get("error")
                        print(f"round {rnd + 1} {scenario:14} {client:15} {figure}", file=sys.stderr, flush=True)
        finally:
            tinyproxy.terminate()
            tinyproxy.wait(timeout=5)
    report(results, clients, args)
    # A peer that fails is reported; only a failure of ours fails the run.
    return 0 if all(r.get("ok") for (client, _), runs in results.items() if client == "ours" for r in runs) else 1


def report(results: dict[tuple[str, str], list[dict[str, Any]]], clients: list[str], args: argparse.Namespace) -> None:
    def median(client: str, scenario: str) -> float | None:
        runs = [r["cpu_us_per_req"] for r in results.get((client, scenario), []) if r.get("ok")]
        return statistics.median(runs) if runs else None

    lines = [
        "# Proxied benchmark (bench/proxy.py)",
        "",
        f"Client CPU µs per request through tinyproxy to nginx, median of {args.rounds} interleaved rounds "
        "(lower is better); `ours ÷ peer` below 1.00 means ours is cheaper. forward: http:// origin, "
        "forwarded (tinyproxy closes its client connection after each answer, so every client also "
        "reconnects to the proxy per request); tunnel: https:// origin through one kept-alive CONNECT tunnel.",
        "",
        "| client | " + " | ".join(SCENARIOS) + " |",
        "|---|" + "---:|" * len(SCENARIOS),
    ]
    for client in clients:
        cells = []
        for scenario in SCENARIOS:
            value = median(client, scenario)
            cells.append("—" if value is None else f"{value:,.0f}")
        lines.append(f"| {client} | " + " | ".join(cells) + " |")
    lines += ["", "| ours ÷ peer | " + " | ".join(SCENARIOS) + " |", "|---|" + "---:|" * len(SCENARIOS)]
    for client in clients:
        if client == "ours":
            continue
        cells = []
        for scenario in SCENARIOS:
            ours, peer = median("ours", scenario), median(client, scenario)
            cells.append("—" if ours is None or peer is None else f"{ours / peer:.2f}")
        lines.append(f"| {client} | " + " | ".join(cells) + " |")
    failed = [
        f"- {client} {scenario}: {len(bad)} of {len(runs)} runs failed ({bad[0].get('error')})"
        for (client, scenario), runs in results.items()
        if (bad := [r for r in runs if not r.get("ok")])
    ]
    if failed:
        lines += ["", "Failed runs (left out of the medians):", *failed]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "proxy.md").write_text(text)
    raw = {f"{client} {scenario}": runs for (client, scenario), runs in results.items()}
    (args.out / "proxy.json").write_text(json.dumps(raw, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
