"""bench/RESULTS.md and bench/plots/*.png from bench/results/*.json."""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import BENCH_DIR, PLOTS_DIR, read_result, say
from bench.watch_serving import phase_seconds

NAMES = ("pipeline", "sizes", "app", "data", "footprint")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_app(result: dict[str, Any]) -> list[str]:
    plt = _plt()
    routes: dict[str, list[dict[str, Any]]] = {}
    for p in result["points"]:
        routes.setdefault(p["route"], []).append(p)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for route, points in routes.items():
        xs = [p["concurrency"] for p in points]
        left.plot(xs, [p["rps"] for p in points], marker="o", label=route)
        right.plot(xs, [p["p99_ms"] for p in points], marker="o", label=route)
    left.set(xscale="log", xlabel="concurrency", ylabel="requests / s", title="throughput")
    right.set(xscale="log", yscale="log", xlabel="concurrency", ylabel="p99 latency (ms)",
              title="p99 latency")
    right.axhline(25, color="grey", linestyle="--", linewidth=0.8)
    for ax in (left, right):
        ax.set_xticks(result["concurrency"], [str(c) for c in result["concurrency"]])
        ax.grid(alpha=0.3)
    left.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(PLOTS_DIR / "app.png", dpi=110)
    plt.close(fig)
    return ["app.png"]


CONTESTANTS = {"hand": "hand-typed", "ours_up": "inv up --until deploy",
               "ours_separate": "inv build + inv deploy"}


def plot_pipeline(result: dict[str, Any]) -> list[str]:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9))
    for ax, key, title in ((axes[0], "warm_no_change", "warm, nothing changed"),
                           (axes[1], "edit_to_serving", "one-line backend edit to serving")):
        data = result[key]["seconds"]
        ax.boxplot([data[k] for k in CONTESTANTS])
        ax.set_xticks([1, 2, 3], [v.replace(" + ", "\n+ ") for v in CONTESTANTS.values()],
                      fontsize=7)
        ax.set(ylabel="seconds", title=title)
        ax.grid(alpha=0.3)
    watch = result["watch"]["save_to_serving_s"]
    axes[2].plot(range(1, len(watch) + 1), watch, marker="o")
    axes[2].axhline(10, color="red", linestyle="--", linewidth=0.8)
    axes[2].set(xlabel="edit", ylabel="seconds", title="inv watch: save to new code serving")
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(PLOTS_DIR / "pipeline.png", dpi=110)
    plt.close(fig)
    return ["pipeline.png"]


def _phase_lines(timings: dict[str, Any] | None) -> str:
    if not timings:
        return "(not recorded)"
    phases = ", ".join(f"{p['phase']} {p['duration_s']:.2f}" for p in timings["phases"])
    start = timings.get("process_start_to_stage_s")
    return (f"{phases} (stage total {timings['total_s']:.2f} s"
            + (f"; process start to stage {start:.2f} s" if start is not None else "") + ")")


def _pipeline_section(r: dict[str, Any]) -> list[str]:
    plots = plot_pipeline(r)
    w, e, watch = r["warm_no_change"], r["edit_to_serving"], r["watch"]
    md = [
        "## Pipeline",
        "",
        ("Side by side in one run, on a private copy of app/ and docker/, in two scratch "
         "namespaces (ours, and hand-typed from k8s/ with `kubectl apply -k`). Each round runs "
         "every contestant once, in a rotated order; medians of the rounds. The 1-minute load "
         "average of every round is in bench/results/pipeline.json: this machine's 2 cores are "
         "shared with other work, so absolute figures move with it; the ratios compare "
         "contestants measured in the same rounds. The exact commands:"),
        "",
    ]
    for name, lines in r["commands"].items():
        md.append(f"- {name}: " + "; ".join(f"`{line}`" for line in lines))
    md += ["", "| scenario | " + " | ".join(f"{v} (median s)" for v in CONTESTANTS.values())
           + " | rounds | load (1 min) |", "|---|---|---|---|---|---|"]
    for label, data in (("warm, nothing changed", w), ("one-line backend edit to serving", e)):
        s = data["summary"]
        hand = s["hand"]["median"]
        cells = [f"{s['hand']['median']}"] + [
            f"{s[k]['median']} ({s[k]['median'] / hand:.2f}x)" for k in ("ours_up", "ours_separate")]
        loads = data["load_1min_per_round"]
        md.append(f"| {label} | " + " | ".join(cells)
                  + f" | {len(data['seconds']['hand'])} | {min(loads)}-{max(loads)} |")
    done = e.get("commands_finished_summary")
    if done:
        hand_done = done["hand"]["median"]
        md += ["", ("The edit's commands themselves returned after (median s): " + ", ".join(
            f"{CONTESTANTS[k]} {done[k]['median']}"
            + ("" if k == "hand" else f" ({done[k]['median'] / hand_done:.2f}x)")
            for k in CONTESTANTS)
            + ". `inv up` smoke-tests a new image after its rollout, `inv build` before "
              "anything is deployed.")]
    accounting = e.get("accounting")
    if accounting:
        md += ["", ("Where an edit's time went (median s after the save): the rollout began "
                    "(hand-typed: `kubectl set image` returned; ours: the deploy's apply ended) at "
                    + ", ".join(f"{CONTESTANTS[k]} {v['rollout_began']['median']}"
                                for k, v in accounting.items())
                    + "; from there to the new code serving: "
                    + ", ".join(f"{CONTESTANTS[k]} {v['rollout_began_to_serving']['median']}"
                                for k, v in accounting.items()) + ".")]
        returns = e.get("hand_command_returns_s") or []
        if returns:
            columns = list(zip(*returns, strict=True))
            md += ["", "The hand-typed commands returned at (median s after the save): "
                   + ", ".join(f"{name} {statistics.median(col):.3f}" for name, col in
                               zip(("docker build", "kubectl set image", "kubectl rollout status"),
                                   columns, strict=False)) + "."]
    ws = watch["summary"]
    md += [
        "",
        (f"`inv watch`, a one-line backend edit saved {len(watch['save_to_serving_s'])} times: "
         f"save to new code serving p50 {ws['p50']} s, p90 {ws['p90']} s (min {ws['min']}, max "
         f"{ws['max']}); Ctrl-C exit code {watch['ctrl_c_exit_code']}."
         + ("" if not watch.get("backend_start_s_after_save_median") else
            " The first new backend pod's start (median s after the save): " + ", ".join(
                f"{mark} {at}" for mark, at in watch["backend_start_s_after_save_median"].items())
            + " (bench/watch_serving.py says what each mark is).")),
        "",
        "Phases of our last runs (seconds; from the gates' details.timings):",
        "",
        f"- warm, build: {_phase_lines((w.get('phases_last') or {}).get('build'))}",
        f"- warm, deploy: {_phase_lines((w.get('phases_last') or {}).get('deploy'))}",
    ]
    for command, phases in (e.get("phases_last") or {}).items():
        for stage in ("build", "deploy"):
            md.append(f"- edit, `{command}`, {stage}: {_phase_lines((phases or {}).get(stage))}")
    if watch.get("watch_output_last_edit"):
        md += ["", "`inv watch`'s own lines for the last edit:", "", "```",
               *watch["watch_output_last_edit"], "```"]
    if r.get("dev"):
        md += _dev_section(r["dev"], "bench/results/pipeline.json")
    c = r.get("cold")
    if c:
        md += ["", ("Cold (new content, no image under the new tags, built with `--no-cache`, "
                    "new namespace), each stage command timed separately: "
                    + ", ".join(f"{k} {v} s" for k, v in c["stages_s"].items())
                    + f"; total {c['total_s']} s."),
               f"- cold deploy: {_phase_lines((c.get('phases') or {}).get('deploy'))}"]
    md += ["", *[f"![{p}](plots/{p})" for p in plots], ""]
    return md


DEV_CONTESTANTS = {"ours": "inv watch --dev", "hand": "hand-typed kubectl cp + SIGHUP"}


def _dev_section(d: dict[str, Any], source: str) -> list[str]:
    """Dev mode (issue 24): save -> new code through the frontend, ours and hand-typed, per edit kind."""
    s, ratio = d["summary"], d.get("ratio_ours_over_hand", {})
    loads = d.get("load_1min_per_round") or [0]
    md = ["", "### Dev mode: save to new code through the frontend (issue 24)", "",
          (f"`inv watch --dev` deployed in dev mode ({d.get('watch_dev_started_s')} s until it watched), "
           f"{d['dev_pods']} pods labelled dev; {d['edits']} rounds, each "
           "saving a one-line edit to the backend's and to the frontend's file for both contestants "
           "(rotated order, same pods, interleaved), timed from the file write until the frontend's "
           "/api/meta shows the new code 3 times in a row on new connections (backend: the body's "
           f"`code`; frontend: the `X-Code-Version` header). Files: {', '.join(d['files'].values())}. "
           + "Load (1 min) " + (f"{d['load_1min_at_start']} at the run's start, " if "load_1min_at_start" in d else "")
           + f"{min(loads)}-{max(loads)} during the rounds; ReplicaSets unchanged: "
           f"{d['replicasets_unchanged']}; Ctrl-C exit code {d['ctrl_c_exit_code']}. Details in {source}."),
          "", "| edit | contestant | p50 s | p90 s | min | max | ours / hand-typed (p50, p90) |",
          "|---|---|---|---|---|---|---|"]
    for kind in ("backend", "frontend"):
        for who, label in DEV_CONTESTANTS.items():
            q = s.get(f"{who}_{kind}")
            if not q:
                continue
            r = ratio.get(kind, {})
            shown = f"{r.get('p50')}x, {r.get('p90')}x" if who == "ours" and r else ""
            md.append(f"| {kind} | {label} | {q['p50']} | {q['p90']} | {q['min']} | {q['max']} | {shown} |")
    returns = d.get("hand_command_returns_s") or {}
    if returns:
        md += ["", "The hand-typed commands (one pod listing, then a copy and a reload per pod, one pod after "
               "the other) had all returned after (median s from the save): " + ", ".join(
                   f"{kind} {statistics.median(r[-1] for r in runs):.2f}" for kind, runs in returns.items() if runs)
               + "; `inv watch --dev`'s own sync phase (devsync in every pod in parallel, until each "
               "supervisor's new child answered) lasted (median s): " + ", ".join(
                   f"{kind} {statistics.median(found):.2f}" for kind, edits in d.get("watch_output_per_edit", {}).items()
                   if (found := [x for lines in edits if (x := phase_seconds(lines, "sync into the dev pods"))]))
               + ". The rest: for the hand-typed sequence the new process's start (`kill -HUP` returns at "
               "once), and for both the file event (ours) and the frontend answering with the new code 3 times "
               "in a row."]
    hand = d.get("commands", {}).get("hand_dev")
    if hand:
        md += ["", "The hand-typed sequence: " + "; ".join(f"`{line}`" for line in hand) + "."]
    return [*md, ""]


def plot_footprint(result: dict[str, Any]) -> list[str]:
    plt = _plt()
    names = sorted(result["under_load_mib"])
    idle = [result["idle_mib"].get(n, {}).get("usage_bytes", 0) for n in names]
    load = [result["under_load_mib"][n]["usage_bytes"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ys = range(len(names))
    ax.barh([y + 0.2 for y in ys], idle, height=0.4, label="idle")
    ax.barh([y - 0.2 for y in ys], load, height=0.4, label="under load (highest sample)")
    ax.set_yticks(list(ys), [f"{result['under_load_mib'][n]['component']}: {n[-11:]}" for n in names],
                  fontsize=7)
    ax.set(xlabel="MiB (cgroup usage)", title="pod memory")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOTS_DIR / "footprint.png", dpi=110)
    plt.close(fig)
    return ["footprint.png"]


def plot_sizes_data(sizes: dict[str, Any] | None, data: dict[str, Any] | None) -> list[str]:
    plt = _plt()
    out = []
    if sizes:
        fig, ax = plt.subplots(figsize=(6, 2.8))
        names = list(sizes["images"])
        ax.barh(names, [sizes["images"][n]["added_mb"] for n in names], label="added above base")
        for i, n in enumerate(names):
            limit = next(t["limit"] for t in sizes["targets"] if t["target"].startswith(n))
            ax.plot([limit, limit], [i - 0.4, i + 0.4], color="red", linewidth=2)
        ax.set(xlabel="MB (10^6 bytes)", title="image size above the base (red: target)")
        fig.tight_layout()
        fig.savefig(PLOTS_DIR / "sizes.png", dpi=110)
        plt.close(fig)
        out.append("sizes.png")
    if data:
        fig, ax = plt.subplots(figsize=(6, 2.8))
        labels = [f"{p['tasks']} tasks" for p in data["points"]]
        ax.bar(labels, [p["p99_ms"] for p in data["points"]], label="p99")
        ax.bar(labels, [p["p50_ms"] for p in data["points"]], label="p50")
        ax.set(ylabel="ms", title=f"first page of the list, concurrency {data['concurrency']}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(PLOTS_DIR / "data.png", dpi=110)
        plt.close(fig)
        out.append("data.png")
    return out


def _targets_table(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| benchmark | target | measured | verdict |", "|---|---|---|---|"]
    for name, result in results.items():
        if name == "app-before-wrk":  # shown beside the app's own figures, not as a target
            continue
        for t in result.get("targets", []):
            verdict = "**met**" if t["met"] else "**MISSED**"
            lines.append(f"| {name} | {t['target']} | {t['value']:g} {t['unit']} "
                         f"({t['comparison']} {t['limit']:g}) | {verdict} |")
    return lines


def _machine(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name, result in results.items():
        m = result.get("machine", {})
        lines.append(f"- `{name}`: measured {result.get('measured_at')} at commit "
                     f"`{m.get('git_commit', '?')}`, {m.get('cpus')} CPUs ({m.get('cpu_model', '?')}), "
                     f"{m.get('mem_total_mib', '?')} MiB RAM, load average at start "
                     f"{m.get('load_avg_at_start')}")
    return lines


def write() -> None:
    PLOTS_DIR.mkdir(parents=True, exist_ok=True)
    results = {n: r for n in (*NAMES, "pipeline-dev", "app-before-wrk") if (r := read_result(n)) is not None}
    md = [
        "# Benchmark results",
        "",
        ("Generated by `python -m bench report` (run by `inv bench all` / `python -m bench all`) "
        "from `bench/results/*.json`; do not edit by hand. Every figure below was measured on "
        "this 2-core machine against the test cluster (localcluster, Kubernetes v1.20, node = "
        "this host's Docker). The load generators run on the same two cores as the cluster "
        "(and as whatever else the machine runs: the load average at start is recorded): "
        "Debian's `wrk` (C, one thread) for the app's throughput, Python asyncio + httpx for "
        "the data and footprint runs; their CPU seconds are recorded per point (`client_cpu_s`)."),
        "",
        "## Targets",
        "",
        *_targets_table(results),
        "",
        "## When and where",
        "",
        *_machine(results),
        "",
    ]
    if "pipeline" in results:
        md += _pipeline_section(results["pipeline"])
    if "pipeline-dev" in results:
        md += ["## Pipeline, dev mode alone (`python -m bench pipeline --only dev`)", "",
               *_dev_section(results["pipeline-dev"]["dev"], "bench/results/pipeline-dev.json")[3:]]
    if "sizes" in results:
        r = results["sizes"]
        md += ["## Image sizes", "", "| image | total MB | base MB | added above base MB |",
               "|---|---|---|---|"]
        for name, img in r["images"].items():
            md.append(f"| {name} (`{img['ref']}`) | {img['size_bytes'] / 1e6:.1f} | "
                      f"{img['base_size_bytes'] / 1e6:.1f} | {img['added_mb']} |")
        md.append("")
    if "app" in results:
        r = results["app"]
        plots = plot_app(r)
        h = r.get("ceiling_route") or r["health_route"]  # results measured before /started was the ceiling
        ceiling = next((p["route"].split("GET ", 1)[-1] for p in r["points"] if p["route"].startswith("ceiling")),
                       "/health")
        md += [
            "## The deployed app: throughput and latency",
            "",
            (f"{r['backend_replicas']} backend pod; {r['path']}; {r['duration_s']:g} s per point "
            f"after a {r['warmup_s']:g} s warm-up. The ceiling is the backend's `{ceiling}` "
            f"(parameters: {h['parameters'] or 'none'}; touches nothing: {h['touches_nothing']})."),
            "",
            ("| route | concurrency | req/s | fraction of ceiling | p50 ms | p99 ms | errors | "
            "client CPU s |"),
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in r["points"]:
            md.append(f"| {p['route']} | {p['concurrency']} | {p['rps']} | "
                      f"{p['fraction_of_ceiling']} | {p['p50_ms']} | {p['p99_ms']} | "
                      f"{p['errors']} | {p['client_cpu_s']}/{p['duration_s']} |")
        md += ["", *[f"![{p}](plots/{p})" for p in plots], ""]
        md += _before_after(results.get("app-before-wrk"), r)
    if "data" in results:
        r = results["data"]
        md += ["## Scale of data", "",
               f"First page (50 items) of the task list at concurrency {r['concurrency']}:", "",
               "| tasks | req/s | p50 ms | p99 ms |", "|---|---|---|---|"]
        md += [f"| {p['tasks']} | {p['rps']} | {p['p50_ms']} | {p['p99_ms']} |"
               for p in r["points"]]
        md += ["", f"p99 ratio: {r['ratio_p99']}x", ""]
    if "footprint" in results:
        r = results["footprint"]
        plots = plot_footprint(r)
        md += ["## Footprint", "", r["source"] + ".", "",
               "| pod | component | idle MiB | under load MiB (highest sample) | working set MiB |",
               "|---|---|---|---|---|"]
        for name, row in sorted(r["under_load_mib"].items()):
            md.append(f"| {name} | {row['component']} | "
                      f"{r['idle_mib'].get(name, {}).get('usage_bytes', '?')} | "
                      f"{row['usage_bytes']} | {row['working_set_bytes']} |")
        md += ["", (f"Load: mixed (create via frontend, chat, list via frontend, page), "
               f"concurrency 64: {r['load']['rps']} req/s, {r['load']['errors']} errors."), "",
               *[f"![{p}](plots/{p})" for p in plots], ""]
    extra = plot_sizes_data(results.get("sizes"), results.get("data"))
    md += [f"![{p}](plots/{p})" for p in extra]
    md += ["", "## Findings", "", *FINDINGS, ""]
    missing = [n for n in NAMES if n not in results]
    if missing:
        md += [f"Not measured yet: {', '.join(missing)} (run `python -m bench all`).", ""]
    (BENCH_DIR / "RESULTS.md").write_text("\n".join(md))
    say("wrote bench/RESULTS.md")


def _before_after(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """The throughput target's two routes, the app before issue 11's changes against now,
    both measured with wrk (bench/app.py with BENCH_SOURCE_REF=<ref> for the before)."""
    if not before:
        return []

    def rows(result: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
        return {(p["route"], p["concurrency"]): p for p in result["points"]}

    old, new = rows(before), rows(after)
    md = ["### Before and after (issue 11)", "",
          (f"Before: the app as of `{before.get('source_ref', '?')}` (measured "
           f"{before.get('measured_at', '?')}, load average at start "
           f"{before.get('machine', {}).get('load_avg_at_start', '?')}); after: this commit's. "
           "Same cluster, same wrk settings."), "",
          "| route | concurrency | req/s before | req/s after | p99 ms before | p99 ms after |",
          "|---|---|---|---|---|---|"]
    for key in sorted(set(old) & set(new), key=lambda k: (not k[0].startswith("ceiling"), k[0], k[1])):
        md.append(f"| {key[0]} | {key[1]} | {old[key]['rps']} | {new[key]['rps']} | "
                  f"{old[key]['p99_ms']} | {new[key]['p99_ms']} |")
    for t_old, t_new in zip(before.get("targets", []), after.get("targets", []), strict=False):
        md.append(f"\n- {t_new['target']}: {t_old['value']} {t_old['unit']} before, "
                  f"{t_new['value']} {t_new['unit']} after ({'met' if t_new['met'] else 'MISSED'})")
    return [*md, ""]


# Findings from the reliability drills (tests/drills), kept here so the report states them.
FINDINGS = [
    ("- The app's two targets after issue 19 (throttles, quotas, idempotency, connection slots, "
     "proxies: more work per request), where the time goes (bench/machine.py accounts for both "
     "cores during every point): with the machine quiet, the backend is CPU-bound at its 1-CPU "
     "limit on both routes (0.93-0.99 cores; CFS throttling next to none), /started costs "
     "~0.31 ms of backend CPU, list tasks ~0.57 ms, PostgreSQL uses 0.31 cores, softirq "
     "(kube-proxy's NAT, loopback) 0.15, the cluster's own components ~0.1, so ~0.4 of a core "
     "stays idle: the list/ceiling fraction is the ratio of the two routes' CPU per request, "
     "49-52% in two runs an hour apart (the first 49.3%, p99 13.5 ms; the recorded one both "
     "met). The list request's extra ~0.26 ms (py-spy on loopback): the asyncpg round trip "
     "~0.10, the event loop and socket work around it ~0.06, the token check, query parsing "
     "and the page's bytes ~0.04, the rest spread thin over the middleware each await "
     "resumes. The p99 target missed earlier today (66 ms) was the machine, not the app: the "
     "load average was 2.6 at start and /started's own p99 at concurrency 8 was 51 ms."),
    ("- Hostile input (tests/drills/test_hostile_input.py): schemathesis first found a schema "
     "violation on every operation with a body or typed parameters (422 answers carry `detail` "
     "as a sentence while FastAPI's default schema declared an array) and a 500 for ids beyond "
     "the 32-bit id columns. Both are fixed (the schema declares the real 422 body; ids are "
     "bounded and answer 422), and the drill now passes with no 5xx and no schema violation. "
     "The schema documents no 401/403/404/409/503, so `status_code_conformance` is not "
     "asserted. Hostile titles (SQL, HTML, template syntax) are stored verbatim, control "
     "characters are rejected with 422, a 100 000-character chat message is refused with 413 "
     "without echoing it, and the frontend only ever inserts titles with textContent."),
    ("- Database restart (tests/drills/test_database_restart.py): the drill first found **500** "
     "answers (SQLAlchemy's pool `TimeoutError` was not mapped to 503) and, in CI, backend "
     "pods restarted: `/health` ran in the worker-thread pool, queued behind threads waiting "
     "on the database, so the liveness probe timed out. Fixed: an exhausted pool answers 503 "
     "after at most 3 s, the pool has a connection per worker thread at peak, and the "
     "liveness and startup probes run on the event loop. The drill now passes: only clean "
     "503s during the outage, no app restart, service back within 30 s, no write lost."),
    ("- Throughput (issue 11): measured with `wrk` (one thread, ~0.1 CPU-s per 10 s point, so "
     "the generator is no longer the bottleneck: the Python client used ~9). The app as of "
     "`main` before the change served list tasks at 291 req/s at best, 11% of its /health "
     "ceiling (2542 req/s), with p99 105 ms at concurrency 8. One request path is async end "
     "to end; the list page is one round trip (the session check and the page's JSON built by "
     "PostgreSQL) with no SQLAlchemy greenlet hops; verified tokens are cached until they "
     "expire; `gc.freeze()` after start-up removes ~90 ms full collections; logs are written by "
     "a thread of their own. That brought a list request from ~6 ms of backend CPU to ~0.48 ms "
     "against ~0.22 ms for /health (42.5% of the ceiling on a quiet machine: missed). The rest "
     "was found on loopback (wrk at concurrency 8, the backend's CPU from /proc per request): "
     "without the database round trip a list request cost ~0.29 ms, so the round trip was "
     "~0.2 ms of backend CPU; psycopg's asyncio mode adds and removes a reader on the event "
     "loop at every wait and its pool's checkout adds more (8 workers on one process: ~150 us "
     "of CPU per query through psycopg's pool, ~50 us through asyncpg directly); FastAPI's "
     "per-parameter validation was another ~40 us /health does not pay. The page now runs on "
     "asyncpg's pool (no reset round trip on release, no timed acquire while a connection is "
     "idle; psycopg's pool stays for URLs that ask for channel binding, which asyncpg cannot "
     "do) and the route validates its query with one pydantic model: ~0.38 ms of backend CPU "
     "per list request on the cluster (cgroup cpuacct over the point), and both targets met in "
     "the same run, the table above (load average 4.4 at start)."),
    ("- Load and abuse (issue 11, tests/drills/test_limits_and_abuse.py, "
     "test_agent_linear_time.py, test_hostile_input.py, tests/backend/test_auth_hardening.py): "
     "a burst of 200 list requests and 20 chats is now answered in full (SQLite and PostgreSQL: "
     "220 x 200, slowest 1.6 s) while /health answers every 50 ms probe in < 0.15 s (before: "
     "/health failed for ~270 s on SQLite, ~27 s on PostgreSQL); a saturated pool or connection "
     "limit answers 503 with Retry-After; the offline agent's parser is linear (every hostile "
     "shape at 4000 characters parses in < 50 ms; \"a\" + 800 spaces + \"x\" took 8 s); 16 "
     "concurrent sign-ins (three rounds) peak at ~156 MiB RSS (limit 256 Mi; before, 4 "
     "concurrent sign-ins were OOM-killed): argon2id m=19 MiB t=2 p=1, two at a time on a "
     "dedicated pool; 50 MB bodies get 413 and 1 or 16 MiB heads 431 without being read, slow "
     "clients 408, in both apps; 30 wrong passwords give five 401s then 429 + Retry-After, the "
     "right password included; sign-out ends the session for every copy of the cookie and the "
     "token; `alice`/`ALICE` are one account; common passwords and the username are refused; "
     "the CSRF token rotates at sign-in and sign-out; the form-field CSRF path works on JSON "
     "routes; hostile X-Request-ID values are ignored."),
    ("- Pipeline, where the time went before issue 14 (measured then: warm no-change `inv "
     "build` + `inv deploy` 1.23 s vs 0.69 s by hand; edit to running 49.9 s vs 24.7 s): each "
     "`inv` imported the kubernetes SDK (0.3-0.6 s) and the docker SDK (0.1-0.3 s); a "
     "no-change deploy made 58 sequential requests (every object server-side-applied, 16 "
     "kinds listed to prune, 4 calls per Deployment to wait); the rollout wait lasted until "
     "the old pods were gone (~28 s of the edit); a migration Job ran for every new image "
     "(~3-4 s); the probes ran every 2 s (startup) and 5 s (readiness) and the new pods "
     "started one at a time; `inv build` smoke-tested each new image before anything was "
     "deployed (7-10 s under load)."),
    ("- Pipeline, now: the API is reached through a urllib3 pool built from the kubeconfig "
     "(the SDK only for exec/auth-provider users); a no-change build is decided from the "
     "file system and one request on the engine's socket (no docker SDK); a no-change "
     "deploy reads the live objects in one parallel round and applies nothing (skip-by-hash "
     "against the recorded resourceVersions; the chart's render is cached); a rollout is "
     "done when `kubectl rollout status` would say so; the migration Job is keyed by the "
     "migrations; probes every 1 s and maxSurge 100%; `inv up` smoke-tests a new image "
     "after its rollout and `inv watch` after the new code serves; `inv` keeps the garbage "
     "collector off while tasks.py imports the workflow and freezes the objects at exit (the "
     "interpreter's final collections were ~0.1 s of a no-change `inv build`); while the engine "
     "builds, `inv up` renders the manifests for the image being built (the cluster stage "
     "renders as the deploy will, one render for both). Where an edit's time goes, from the "
     "accounting above: from the rollout's start to the new code serving, ours and the "
     "hand-typed sequence are equal within the rounds' spread (same manifests, same cluster); "
     "the difference is before it. The hand-typed `docker build` returns when the engine's "
     "build does, and `kubectl set image` adds ~0.09 s; `inv up` first starts an interpreter "
     "and imports invoke, pydantic (the settings) and rich (0.22-0.3 s to its first stage, "
     "more under load), then the docker SDK (~0.07 s), and after the build records the gate "
     "and runs the cluster stage's checks and the deploy's reads (~0.08 s). That start is the "
     "floor of a Python command on this machine; `inv watch`, one process for every edit, "
     "does not pay it (its save-to-serving figures are above). `inv build` "
     "smoke-tests a new image (an app start in a container, 2-5 s of CPU) before `inv deploy` "
     "can begin (`inv up` runs it after the rollout). The figures move with the load of the "
     "shared 2-core machine and "
     "with the room left on the shared node (a rollout's new pods wait for CPU requests to fit)."),
    ("- `inv watch`, save to new code through the frontend (issue 22 item 4; bench/watch_serving.py: "
     "a scratch namespace, 2 backend replicas, 5 one-line backend edits; "
     "bench/results/watch-serving-*-startup*.json): the apps before and after the start-up "
     "changes, back to back, quiet machine (load 1.2-2.4): p50 5.06 -> 4.33 s, p90 6.90 -> 5.06 s; "
     "busy (load 3.7-5.8, the bytecode change alone): p50 9.84 -> 7.03 s. The images held no "
     "bytecode for 101 modules the start loads (sqlalchemy.orm, pydantic.v1, uvicorn's "
     "protocols, websockets...), compiled again at every pod start: they are precompiled now "
     "(tests/integration/test_image_bytecode.py fails on any module loaded at start without "
     "it); uvicorn no longer loads a websocket protocol; the collector stays off while the "
     "backend starts. Import + app + server config at 1 CPU: 1.11 -> 0.81 s (bytecode), "
     "0.83 -> 0.74 s (the collector); in the pods, container started -> app imported median "
     "1.45 -> 0.88 s. Where an edit's seconds go now (median s after the save): the build "
     "0.7-1.0 and the apply, the pod created ~1 (the API's times are whole seconds), its "
     "container started 2.0 (the kubelet's sandbox and network: ~1 s), the app imported 2.85, "
     "started 2.93, first /started 200 3.67, first /ready 200 4.15, the frontend answering "
     "with it 0.2-0.4 s later. Left: the node's ~1 s and the probes' ~1.2 s between the app "
     "started and its first /ready 200 (the readiness probe runs only after the startup probe "
     "has passed, each every 1 s, the API's floor). The rollout waits on nothing avoidable "
     "(maxSurge 100%, maxUnavailable 0, no minReadySeconds; the old ReplicaSet gives up a pod "
     "for each new one ready). `bench pipeline`'s own watch run (the table above) came at load "
     "3.8-9.3, other work on the shared machine: p50 10.0 s, the pods' start 2-3x the quiet "
     "figures; its edit rounds (load 1.5-2.9), through the frontend for every contestant: "
     "inv up --until deploy 1.09x the hand-typed sequence, equal from the rollout's start on "
     "(4.28 vs 4.22 s), the difference before it (1.88 vs 1.31 s: a Python process's start and "
     "the stages' checks around the same docker build). The cold run was measured right after, "
     "on its own (the run had BENCH_COLD=0), at load 4-7: `--no-cache` build 146.8 s (67.2 s on "
     "2026-11-29 at load 2.7)."),
    ("- Rolling update (2 replicas, 10 req/s through the frontend), pod loss and the secrets "
     "scan (repository, both images' layers, every non-Secret object, pod logs, stage output, "
     "a full `inv up`'s output and files, `inv config`/`inv status`) pass: zero failed "
     "requests, no acknowledged task lost."),
]
