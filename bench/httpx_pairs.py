#!/usr/bin/env python3
"""httpx and httpx2 on our core against the same clients on their own cores.

    .venv/bin/python bench/httpx_pairs.py [--rounds 3] [--seconds 2]
    make bench-httpx

Pairs, each measured in one run against the bench's nginx (GET / of 12 bytes):
  httpx 0.28   httpx.Client/AsyncClient with this repo as its httpcore   vs   on encode's
               httpcore 1.0.9 (with sniffio, its fastest configuration)
  httpx2 2.x   httpx2 clients with httpcore.contrib.httpx transports     vs   on httpcore2
Scenarios: seq_sync, seq_async (one connection, one request at a time) and async_100x10
(100 tasks over 10 connections). Each (client, scenario) runs in its own process pinned
to CPU 1 (nginx on CPU 0), in interleaved rounds with the order rotated; the figure is
the median client CPU µs per request (getrusage of the client process over the timed
part, bench/clients/_common.py). Every run checks that it goes through the core it
names (bench/clients/httpx_pair.py). Targets (issue 15): ours ÷ native at most 0.6 in
async, 0.8 in sync (httpx's own layers bound the sync ratio). The native cores live in
bench/.venv-httpx (bench/requirements-httpx.txt); ours run under the project's venv,
which has httpx and httpx2 from the dev extra. Results: a table on stdout,
bench/results/httpx.md, raw figures in bench/results/httpx.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import nginx as nginx_mod  # noqa: E402
import run as run_mod  # noqa: E402

HTTPX_VENV = BENCH / ".venv-httpx"
HTTPX_REQ = BENCH / "requirements-httpx.txt"
SCENARIOS = ("seq_sync", "seq_async", "async_100x10")
TARGETS = {"seq_sync": 0.8, "seq_async": 0.6, "async_100x10": 0.6}
# client name -> (library, core)
CLIENTS = {
    "httpx on ours": ("httpx", "ours"),
    "httpx on httpcore 1.0.9": ("httpx", "native"),
    "httpx2 on ours": ("httpx2", "ours"),
    "httpx2 on httpcore2": ("httpx2", "native"),
}
PAIRS = (("httpx on ours", "httpx on httpcore 1.0.9"), ("httpx2 on ours", "httpx2 on httpcore2"))


def run_one(
    client: str, scenario: str, pythons: dict[str, str], args: argparse.Namespace, ng: nginx_mod.Nginx
) -> dict[str, Any]:
    library, core = CLIENTS[client]
    env = {**run_mod.clean_env(), "BENCH_HTTPX": library, "BENCH_CORE": core}
    if core == "ours":
        env["PYTHONPATH"] = env["BENCH_OURS_ROOT"] = str(run_mod.REPO)
    cmd = [
        pythons[core], str(BENCH / "clients" / "httpx_pair.py"), scenario,
        "--http-url", ng.http_url, "--https-url", ng.https_url, "--h2-url", ng.h2_url,
        "--ca", str(ng.ca_path), "--count", str(args.count), "--seconds", str(args.seconds),
    ]  # fmt: skip
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=args.seconds + 60, cwd=BENCH / "clients"
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "timed out"}
    lines = proc.stdout.strip().splitlines()
    try:
        return dict(json.loads(lines[-1]))
    except (IndexError, json.JSONDecodeError):
        return {
            "ok": False,
            "error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:300],
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    ours_python = run_mod.default_ours_python()
    pythons = {"ours": ours_python, "native": run_mod.ensure_venv(HTTPX_VENV, HTTPX_REQ, ours_python)}
    clients = list(CLIENTS)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with nginx_mod.Nginx(certs_python=ours_python) as ng:
        for rnd in range(args.rounds):
            order = clients[rnd % len(clients) :] + clients[: rnd % len(clients)]
            for scenario in SCENARIOS:
                for client in order:
                    result = run_one(client, scenario, pythons, args, ng)
                    results.setdefault((client, scenario), []).append(result)
                    figure = (
                        f"{result['cpu_us_per_req']:.1f} us/req" if result.get("ok") else result.get("error")
                    )
                    print(f"round {rnd + 1} {scenario:13} {client:24} {figure}", file=sys.stderr, flush=True)
    report(results, args)
    return 0 if all(r.get("ok") for runs in results.values() for r in runs) else 1


def report(results: dict[tuple[str, str], list[dict[str, Any]]], args: argparse.Namespace) -> None:
    def median(client: str, scenario: str) -> float | None:
        runs = [r["cpu_us_per_req"] for r in results.get((client, scenario), []) if r.get("ok")]
        return statistics.median(runs) if runs else None

    header = "| client | " + " | ".join(SCENARIOS) + " |"
    rule = "|---|" + "---:|" * len(SCENARIOS)
    lines = [
        "# httpx and httpx2 on our core (bench/httpx_pairs.py)",
        "",
        f"Client CPU µs per request, GET / from nginx, median of {args.rounds} interleaved rounds "
        "(lower is better). seq: one connection, one request at a time; async_100x10: 100 tasks "
        "over 10 connections.",
        "",
        header,
        rule,
    ]
    for client in CLIENTS:
        cells = ["—" if (v := median(client, s)) is None else f"{v:,.0f}" for s in SCENARIOS]
        lines.append(f"| {client} | " + " | ".join(cells) + " |")
    lines += ["", "Ours ÷ native (target: at most 0.8 sync, 0.6 async):", "", header, rule]
    for ours, native in PAIRS:
        cells = []
        for scenario in SCENARIOS:
            a, b = median(ours, scenario), median(native, scenario)
            if a is None or b is None:
                cells.append("—")
            else:
                ratio = a / b
                cells.append(f"{ratio:.2f}" + ("" if ratio <= TARGETS[scenario] else " (over target)"))
        lines.append(f"| {ours.split()[0]} | " + " | ".join(cells) + " |")
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
    (args.out / "httpx.md").write_text(text)
    raw = {f"{client} {scenario}": runs for (client, scenario), runs in results.items()}
    (args.out / "httpx.json").write_text(json.dumps(raw, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
