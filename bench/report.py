#!/usr/bin/env python3
"""Turn bench results (results.json, written by bench/run.py) into results.md and chart.png.

`markdown(doc)` is stdlib-only so run.py can call it under any interpreter; the chart
needs matplotlib, which lives in bench/.venv-peers, so run.py runs
`report.py --chart results.json chart.png` with that interpreter.  Either can be
re-run by hand on an existing results.json:
  python bench/report.py --markdown bench/results/results.json bench/results/results.md
  bench/.venv-peers/bin/python bench/report.py --chart bench/results/results.json bench/results/chart.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCENARIO_INFO: dict[str, str] = {
    "seq_sync": "sync, one connection, sequential keep-alive `GET /` (12-byte body)",
    "seq_async": "async, one connection, sequential keep-alive `GET /`",
    "async_100x10": "async, 100 tasks sharing a pool of 10 connections, `GET /`",
    "async_100x100": "async, 100 tasks over a pool of 100 connections, `GET /`",
    "async_16x100": "async, 16 tasks over a pool allowing 100 connections (16 used), `GET /`",
    "async_512x100": "async, 512 tasks over a pool of 100 connections, `GET /`",
    "threads_8": "sync, 8 threads sharing one pool/session (8 connections), `GET /`",
    "download_sync": "sync, streamed `GET /16m` (16 MiB), chunks counted and dropped",
    "download_async": "async, streamed `GET /16m` (16 MiB)",
    "upload_sync": "sync, `POST /sink` with a 16 MiB bytes body",
    "upload_async": "async, `POST /sink` with a 16 MiB bytes body",
    "tls_sync": "sync, HTTPS `GET /` with a NEW client + SSLContext + TCP + TLS handshake per request",
    "tls_async": "async, HTTPS `GET /` with a NEW client + SSLContext + TCP + TLS handshake per request",
    "h2_seq_async": "async, HTTP/2 over TLS (ALPN h2), sequential `GET /` on one connection",
    "h2_100_streams": "async, HTTP/2 over TLS, 100 tasks as concurrent streams on ONE connection, `GET /`",
}

SHORT = {
    "seq_sync": "seq sync",
    "seq_async": "seq async",
    "async_100x10": "100 tasks/10 conn",
    "async_100x100": "100 tasks/100 conn",
    "async_16x100": "16 tasks/100 conn",
    "async_512x100": "512 tasks/100 conn",
    "threads_8": "8 threads",
    "download_sync": "16M down sync",
    "download_async": "16M down async",
    "upload_sync": "16M up sync",
    "upload_async": "16M up async",
    "tls_sync": "TLS new conn sync",
    "tls_async": "TLS new conn async",
    "h2_seq_async": "h2 seq async",
    "h2_100_streams": "h2 100 streams/1 conn",
    "h2_threads_8": "h2 8 threads/1 conn",
}

DASH = "—"

# Issue 13's targets: ours at most 0.8x aiohttp's CPU per request on the same event loop in
# these rows, and throughput at 512 tasks at least 0.9x that at 16 (same connection cap).
ISSUE13_ROWS = ["seq_async", "async_100x10", "async_100x100", "async_16x100", "async_512x100"]
ISSUE13_PAIRS = [("asyncio", "ours", "aiohttp"), ("uvloop", "ours+uvloop", "aiohttp+uvloop")]
ISSUE13_CPU_TARGET = 0.8
SCALING_TARGET = 0.9


def _is_transfer(s: str) -> bool:
    return s.startswith(("download", "upload"))


def _num(x: float | None, digits: int = 1) -> str:
    if x is None:
        return DASH
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A markdown table; the first `left` columns are labels (left-aligned), the rest figures."""
    align = ["---"] * left + ["---:"] * (len(header) - left)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _cell(doc: dict[str, Any], client: str, s: str, fn: Any) -> str:
    cell = doc["summary"].get(client, {}).get(s)
    if cell is None:
        return DASH
    if not cell["ok"]:
        return "ERROR"
    return str(fn(cell))


def markdown(doc: dict[str, Any]) -> str:
    meta, scenarios, clients = doc["meta"], doc["scenarios"], doc["clients"]
    floors = set(doc.get("floors", []))
    label = {c: (f"*{c}*" if c in floors else ("**ours**" if c == "ours" else c)) for c in clients}
    head = ["client"] + [SHORT.get(s, s) for s in scenarios]
    parts: list[str] = []
    parts.append(f"# httpcore benchmarks ({meta['mode']})\n")
    parts.append(
        f"{meta['date']}, git `{meta.get('git_rev') or '?'}`, "
        f"{meta['cpu_count']} CPUs ({meta['cpu_model']}), "
        f"kernel {meta['kernel']}, {meta['nginx']}.  \n"
        f"Median of **{meta['rounds']} interleaved round(s)**; each timed part capped at "
        f"{meta['seconds_cap']} s and {meta['count_caps']} requests, after a warm-up.  \n"
        f"Pinning: {meta['pinning']}.  Whole run: {meta['duration_s']} s.  \n"
        f"Ours: `{meta['ours_python']}` {meta.get('ours_versions', {})}.  \n"
        + (f"Peers: {meta['peers_versions']}.  \n" if meta.get("peers_versions") else "")
        + "*Italic* rows are hand-written floors (the least work possible), not real clients. "
        "— = the client has no such mode.  See bench/README.md for how to read these.\n\n"
    )

    parts.append("## Client CPU µs per request (lower is better)\n\n")
    parts.append(
        "user+sys CPU time of the client process over the timed part, divided by the "
        "requests completed. For the 16 MiB transfers this is per 16 MiB request.\n\n"
    )
    rows = [
        [label[c]] + [_cell(doc, c, s, lambda x: _num(x["cpu_us_per_req"])) for s in scenarios]
        for c in clients
    ]
    parts.append(_table(head, rows))

    parts.append(
        "\n## Throughput (higher is better): requests/s, MB/s (10⁶ bytes/s) for the 16 MiB transfers\n\n"
    )
    rows = [
        [label[c]]
        + [
            _cell(
                doc,
                c,
                s,
                (lambda x: _num(x["mb_per_s"]) + " MB/s") if _is_transfer(s) else (lambda x: _num(x["rps"])),
            )
            for s in scenarios
        ]
        for c in clients
    ]
    parts.append(_table(head, rows))

    parts.append(
        "\n## Peak RSS of the client process, MB (includes the interpreter and imports; "
        "uploads hold a 16 MiB body)\n\n"
    )
    rows = [
        [label[c]] + [_cell(doc, c, s, lambda x: _num(x["max_rss_mb"])) for s in scenarios] for c in clients
    ]
    parts.append(_table(head, rows))

    if doc.get("ratios"):
        basis = doc.get("ratio_basis", {})

        def vs(c: str) -> str:
            """The peer's label, with the row of ours it is divided into when not plain ours."""
            b = basis.get(c, "ours")
            return label[c] if b == "ours" else f"{label[c]} (vs {b})"

        parts.append(
            "\n## Ours vs peers: CPU µs/req, ours ÷ peer (< 1.00: ours uses less CPU per request)\n\n"
        )
        rows = []
        for c in clients:
            if c not in doc["ratios"]:  # ours, and the trio pair (its own table below)
                continue
            r = doc["ratios"][c]
            rows.append(
                [vs(c)] + [f"{r[s]['cpu']:.2f}" if s in r and r[s]["cpu"] else DASH for s in scenarios]
            )
        parts.append(_table(["peer", *head[1:]], rows))
        parts.append("\n## Ours vs peers: throughput, ours ÷ peer (> 1.00: ours is faster)\n\n")
        rows = []
        for c in clients:
            if c not in doc["ratios"]:  # ours, and the trio pair (its own table below)
                continue
            r = doc["ratios"][c]
            rows.append(
                [vs(c)]
                + [f"{r[s]['throughput']:.2f}" if s in r and r[s]["throughput"] else DASH for s in scenarios]
            )
        parts.append(_table(["peer", *head[1:]], rows))

    parts.append(_issue13(doc))

    if doc.get("adapter_ratios"):
        parts.append(
            "\n## requests on HTTPCoreAdapter ÷ requests on its default adapter (urllib3): CPU µs/req\n\n"
        )
        r = doc["adapter_ratios"]
        parts.append(
            _table(
                ["", *head[1:]], [["ratio"] + [f"{r[s]['cpu']:.2f}" if s in r else DASH for s in scenarios]]
            )
        )

    if doc.get("trio_ratios"):
        parts.append("\n## Under trio.run: ours ÷ encode's httpcore 1.0.9, CPU µs/req\n\n")
        r = doc["trio_ratios"]
        parts.append(
            _table(
                ["", *head[1:]], [["ratio"] + [f"{r[s]['cpu']:.2f}" if s in r else DASH for s in scenarios]]
            )
        )

    parts.append("\n## Spread: max ÷ min of CPU µs/req across rounds\n\n")
    parts.append("How noisy each figure is; above ~1.3 treat small differences as noise.\n\n")
    rows = [
        [label[c]]
        + [
            _cell(
                doc,
                c,
                s,
                lambda x: (
                    f"{x['cpu_us_per_req_max'] / x['cpu_us_per_req_min']:.2f}"
                    if x.get("cpu_us_per_req_min")
                    else DASH
                ),
            )
            for s in scenarios
        ]
        for c in clients
    ]
    parts.append(_table(head, rows))

    slow = [
        (c, s, cell["slowest_request_s"])
        for c in clients
        for s, cell in doc["summary"].get(c, {}).items()
        if cell.get("slowest_request_s") and cell["slowest_request_s"] > 1.0
    ]
    if slow:
        parts.append(
            "\n## Slowest single request over 1 s\n\n"
            "In the concurrent scenarios this includes waiting for a pooled connection, so it also "
            "shows unfair queueing (a task starved while others reuse the connections).\n\n"
        )
        parts.extend(f"- {c} / {s}: slowest request {t:.2f} s\n" for c, s, t in slow)

    errors = [
        (c, s, cell["errors"])
        for c in clients
        for s, cell in doc["summary"].get(c, {}).items()
        if cell["errors"]
    ]
    if errors:
        parts.append("\n## Errors\n\n")
        parts.extend(f"- {c} / {s}: `{e}`\n" for c, s, errs in errors for e in errs)

    parts.append("\n## Scenarios\n\n")
    parts.extend(f"- `{s}` ({SHORT.get(s, s)}): {SCENARIO_INFO.get(s, '')}\n" for s in scenarios)
    return "".join(parts)


def _issue13(doc: dict[str, Any]) -> str:
    """Issue 13's two tables: ours ÷ aiohttp per loop (from `ratios`), and 512 ÷ 16 tasks (`scaling`)."""
    out: list[str] = []
    rows = []
    for loop, ours, peer in ISSUE13_PAIRS:
        # Only a ratio taken against this loop's row of ours (older results.json: against ours).
        same_loop = doc.get("ratio_basis", {}).get(peer, "ours") == ours
        r = doc.get("ratios", {}).get(peer, {}) if same_loop else {}
        for s in ISSUE13_ROWS:
            a = doc["summary"].get(ours, {}).get(s)
            b = doc["summary"].get(peer, {}).get(s)
            if a is None and b is None:
                continue
            ratio = r.get(s, {}).get("cpu")
            met = DASH if ratio is None else ("yes" if ratio <= ISSUE13_CPU_TARGET else "**no**")
            rows.append(
                [
                    loop,
                    SHORT.get(s, s),
                    _cell(doc, ours, s, lambda x: _num(x["cpu_us_per_req"])),
                    _cell(doc, peer, s, lambda x: _num(x["cpu_us_per_req"])),
                    DASH if ratio is None else f"{ratio:.2f}",
                    met,
                ]
            )
    if rows:
        out.append(
            "\n## Issue 13: ours ÷ aiohttp on the same event loop, CPU µs/req "
            f"(target ≤ {ISSUE13_CPU_TARGET:.2f})\n\n"
        )
        out.append(
            _table(
                ["loop", "scenario", "ours", "aiohttp", "ours ÷ aiohttp", f"≤ {ISSUE13_CPU_TARGET:.2f}"],
                rows,
                left=2,
            )
        )
    scaling = doc.get("scaling", {})
    if scaling:
        out.append(
            "\n## 512 tasks ÷ 16 tasks over the same 100-connection cap "
            f"(issue 13: throughput ≥ {SCALING_TARGET:.2f} for ours)\n\n"
        )
        rows = []
        for c in doc["clients"]:
            if c not in scaling:
                continue
            x = scaling[c]
            ours = c.startswith("ours")
            met = ("yes" if x["throughput"] >= SCALING_TARGET else "**no**") if ours else DASH
            rows.append(
                [
                    c,
                    _cell(doc, c, "async_16x100", lambda v: _num(v["rps"])),
                    _cell(doc, c, "async_512x100", lambda v: _num(v["rps"])),
                    f"{x['throughput']:.2f}",
                    met,
                    f"{x['cpu']:.2f}",
                ]
            )
        out.append(
            _table(
                [
                    "client",
                    "req/s, 16 tasks",
                    "req/s, 512 tasks",
                    "throughput 512 ÷ 16",
                    f"≥ {SCALING_TARGET:.2f}",
                    "CPU µs/req 512 ÷ 16",
                ],
                rows,
            )
        )
    return "".join(out)


def chart(doc: dict[str, Any], path: Path) -> None:
    """Grouped bar chart, log scale: CPU µs/req per scenario (groups) per client (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios, clients = doc["scenarios"], doc["clients"]
    floors = set(doc.get("floors", []))
    fig, ax = plt.subplots(figsize=(max(10, 1.6 * len(scenarios)), 6.5), dpi=110)
    cmap = plt.get_cmap("tab20")
    colors = {c: ("black" if c == "ours" else cmap(i % 20)) for i, c in enumerate(clients)}
    labelled: set[str] = set()
    group = 0.85
    for j, s in enumerate(scenarios):
        present = [(c, doc["summary"][c][s]) for c in clients if s in doc["summary"].get(c, {})]
        present = [(c, cell) for c, cell in present if cell["ok"] and cell["cpu_us_per_req"]]
        width = group / max(1, len(present))
        for i, (c, cell) in enumerate(present):
            ax.bar(
                j - group / 2 + width * (i + 0.5),
                cell["cpu_us_per_req"],
                width * 0.95,
                color=colors[c],
                hatch="//" if c in floors else None,
                edgecolor="white" if c in floors else None,
                linewidth=0,
                label=None if c in labelled else c,
            )
            labelled.add(c)
    ax.set_yscale("log")
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels([SHORT.get(s, s) for s in scenarios], rotation=25, ha="right")
    ax.set_ylabel("client CPU µs per request (log scale, lower is better)")
    meta = doc["meta"]
    ax.set_title(
        f"httpcore vs peers: client CPU per request (median of {meta['rounds']} rounds, {meta['date'][:10]})"
    )
    ax.grid(axis="y", which="both", alpha=0.3)
    if labelled:
        ax.legend(ncol=4, fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "--chart":
        chart(json.loads(Path(argv[1]).read_text()), Path(argv[2]))
        return 0
    if len(argv) == 3 and argv[0] == "--markdown":
        Path(argv[2]).write_text(markdown(json.loads(Path(argv[1]).read_text())))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
