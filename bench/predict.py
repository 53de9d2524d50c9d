"""Benchmark the arrival windows: simulated worlds replayed through `techbot replay`.

For each world (bench/world.py) it writes the dispatch log of a warm-up period and an evaluation
period, replays it with the learned model and with the old fixed rule, asks every visit of the
day "when is the technician coming?" every few minutes, and scores on the evaluation days only:
per horizon before the real arrival, the coverage and width of the window answered and the
point ETA's error; the last window told before arrival; late visits warned in time; false delay
alarms; pushes per visit. The oracle (bench/oracle.py) answers the same questions from the
world's true distributions: the best any predictor could do there.

Run: .venv/bin/python -m bench.predict [--worlds base,slow-city,tight,sprawl] [--technicians 30]
     [--warmup-days 10] [--days 8] [--ask-every 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import Any

from bench.oracle import answer
from bench.world import WORLDS, Simulation, simulate, smaller, write

ROOT = Path(__file__).resolve().parent.parent
TECHBOT = ROOT / ".venv" / "bin" / "techbot"
HORIZONS = ((0, 30), (30, 60), (60, 120), (120, 240), (240, 100_000))
MINUTE = timedelta(minutes=1)
# The bars (#13), checked on the evaluation days.
COVERAGE_BAND = (0.87, 0.93)
WIDTH_VS_ORACLE = 1.2
LAST_WINDOW_HOLDS = 0.93
LATE_WARNED = 0.95
FALSE_ALARMS = 0.05
PUSHES_PER_VISIT = 2.5


@dataclass
class Scores:
    """What one predictor told, scored against what happened."""

    covered: dict[int, list[bool]] = field(default_factory=lambda: defaultdict(list))
    width: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    error: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    last_hit: list[bool] = field(default_factory=list)
    last_width: list[float] = field(default_factory=list)
    late: int = 0
    warned: int = 0
    warned_30: int = 0
    false_alarms: int = 0
    visits: int = 0
    pushes_on_the_day: int = 0
    kinds: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add_answer(self, at: datetime, arrival: datetime, low: datetime, high: datetime,
                   eta: datetime | None) -> None:
        """Score one status answer given before the arrival."""
        horizon = (arrival - at) / MINUTE
        bucket = next(i for i, (a, b) in enumerate(HORIZONS) if a <= horizon < b)
        self.covered[bucket].append(low <= arrival <= high)
        self.width[bucket].append((high - low) / MINUTE)
        if eta is not None:
            self.error[bucket].append(abs((eta - arrival) / MINUTE))


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _replay(log: Path, out: Path, method: str, ask_every: int) -> float:
    env = dict(os.environ, TECHBOT_PREDICTION__METHOD=method)
    started = time.monotonic()
    subprocess.run([str(TECHBOT), "replay", str(log), "--ask-every", str(ask_every),
                    "--out", str(out)], env=env, check=True, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def score(lines: list[dict[str, Any]], truth: dict[str, dict[str, Any]],
          evaluated: set[str]) -> Scores:
    """Score one replay's output on the evaluation days' visits."""
    scores = Scores()
    told: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        number = line["order"]
        if number not in evaluated:
            continue
        fact = truth[number]
        arrival = _time(fact["arrival"])
        at = datetime.fromisoformat(line["at"])
        if line["kind"] == "status":
            if arrival is not None and at < arrival:
                window = line["window"]
                scores.add_answer(at, arrival, datetime.fromisoformat(window["start"]),
                                  datetime.fromisoformat(window["end"]), _time(line["eta"]))
            continue
        told[number].append(line)
    for number in evaluated:
        fact = truth[number]
        arrival = _time(fact["arrival"])
        if arrival is None:
            continue  # cancelled or nobody home: no arrival to be right about
        scores.visits += 1
        start, end = (datetime.fromisoformat(t) for t in fact["window"])
        pushes = told.get(number, [])
        day = start.date()
        on_the_day = [p for p in pushes if datetime.fromisoformat(p["at"]).date() == day
                      and p["kind"] != "rating_request"]
        scores.pushes_on_the_day += len(on_the_day)
        for p in pushes:
            scores.kinds[p["kind"]] += 1
        windows = [p for p in pushes if p["window"] and datetime.fromisoformat(p["at"]) < arrival]
        if windows:
            last = windows[-1]["window"]
            low, high = datetime.fromisoformat(last["start"]), datetime.fromisoformat(last["end"])
        else:
            low, high = start, end
        scores.last_hit.append(low <= arrival <= high)
        scores.last_width.append((high - low) / MINUTE)
        delays = [datetime.fromisoformat(p["at"]) for p in pushes if p["kind"] == "delayed"]
        if arrival > end:
            scores.late += 1
            scores.warned += any(d < end for d in delays)
            scores.warned_30 += any(d <= end - 30 * MINUTE for d in delays)
        elif delays:
            scores.false_alarms += 1
    return scores


def oracle_scores(sim: Simulation, evaluated: set[str], ask_every: int) -> Scores:
    """Ask the oracle the same questions the replay asked, at the same moments."""
    scores = Scores()
    step = timedelta(minutes=ask_every)
    for seed, tday in enumerate(sim.days):
        if not any(v.number in evaluated for v in tday.visits):
            continue
        midnight = datetime.combine(tday.day, datetime.min.time(), tzinfo=sim.world.zone)
        at = midnight
        last = max((v.arrival for v in tday.visits if v.arrival), default=midnight)
        while at < last:
            for number, told in answer(sim, tday, at, seed=seed * 1000 + at.hour).items():
                visit = next(v for v in tday.visits if v.number == number)
                if visit.arrival is not None and not visit.no_show and at < visit.arrival:
                    scores.add_answer(at, visit.arrival, told.low, told.high, told.median)
            at += step
    return scores


def _pct(values: list[bool]) -> str:
    return f"{mean(values):.3f}" if values else "  -  "


def _avg(values: list[float]) -> str:
    return f"{mean(values):5.0f}" if values else "  -  "


def report(name: str, results: dict[str, Scores], seconds: dict[str, float]) -> list[str]:
    """Render one world's figures as Markdown."""
    lines = [f"### world `{name}`", "",
             "| horizon (min) | " + " | ".join(
                 f"{m} cover | {m} width | {m} ETA MAE" for m in results) + " |",
             "|---|" + "---|" * (3 * len(results))]
    for bucket, (a, b) in enumerate(HORIZONS):
        label = f"{a}–{b}" if b < 100_000 else f"{a}+"
        cells = []
        for s in results.values():
            cells += [_pct(s.covered[bucket]), _avg(s.width[bucket]), _avg(s.error[bucket])]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| | " + " | ".join(m for m in results if m != "oracle") + " |",
              "|---|" + "---|" * (len(results) - 1)]
    told = {m: s for m, s in results.items() if m != "oracle"}

    def row(label: str, value: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(value(s) for s in told.values()) + " |")

    row("visits scored", lambda s: str(s.visits))
    row("last window told before arrival: holds", lambda s: _pct(s.last_hit))
    row("... its mean width (min)", lambda s: _avg(s.last_width))
    row("late visits", lambda s: str(s.late))
    row("... warned before the window ended", lambda s: f"{s.warned / s.late:.3f}"
        if s.late else "-")
    row("... warned ≥ 30 min before", lambda s: f"{s.warned_30 / s.late:.3f}"
        if s.late else "-")
    row("false delay alarms (share of visits)", lambda s: f"{s.false_alarms / s.visits:.3f}"
        if s.visits else "-")
    row("pushes per visit on the day", lambda s: f"{s.pushes_on_the_day / s.visits:.2f}"
        if s.visits else "-")
    row("replay seconds", lambda s: next(f"{seconds[m]:.0f}" for m, v in told.items()
                                         if v is s))
    for kind in sorted({k for s in told.values() for k in s.kinds}):
        row(f"pushes `{kind}`", lambda s, k=kind: str(s.kinds.get(k, 0)))
    return [*lines, "", *checks(results), ""]


def checks(results: dict[str, Scores]) -> list[str]:
    """Say which of the issue's bars the learned model meets in this world."""
    learned, oracle = results.get("learned"), results.get("oracle")
    if learned is None:
        return []
    found = []
    for bucket, (a, _b) in enumerate(HORIZONS):
        if a < 30 or not learned.covered[bucket]:
            continue
        c = mean(learned.covered[bucket])
        ok = COVERAGE_BAND[0] <= c <= COVERAGE_BAND[1]
        found.append(f"- coverage {a}+ bucket {c:.3f} in {COVERAGE_BAND}: "
                     f"{'met' if ok else 'NOT met'}")
        if oracle and oracle.width[bucket]:
            ratio = mean(learned.width[bucket]) / mean(oracle.width[bucket])
            found.append(f"- width {a}+ bucket {ratio:.2f} × oracle (≤ {WIDTH_VS_ORACLE}): "
                         f"{'met' if ratio <= WIDTH_VS_ORACLE else 'NOT met'}")
    bars = [("last window holds", mean(learned.last_hit) if learned.last_hit else 0,
             LAST_WINDOW_HOLDS, True),
            ("late warned before window end", learned.warned / learned.late
             if learned.late else 1, LATE_WARNED, True),
            ("false alarms", learned.false_alarms / max(learned.visits, 1), FALSE_ALARMS, False),
            ("pushes per visit on the day", learned.pushes_on_the_day / max(learned.visits, 1),
             PUSHES_PER_VISIT, False)]
    for label, value, bar, at_least in bars:
        ok = value >= bar if at_least else value <= bar
        found.append(f"- {label} {value:.3f} ({'≥' if at_least else '≤'} {bar}): "
                     f"{'met' if ok else 'NOT met'}")
    return found


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", default="base,slow-city,tight,sprawl")
    parser.add_argument("--technicians", type=int, default=30)
    parser.add_argument("--warmup-days", type=int, default=10)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--ask-every", type=int, default=10)
    parser.add_argument("--methods", default="learned,fixed")
    parser.add_argument("--keep", help="keep logs and outputs in this folder")
    args = parser.parse_args()
    out = [f"# bench.predict: {args.technicians} technicians, {args.warmup_days} warm-up + "
           f"{args.days} scored working days, asked every {args.ask_every} min", ""]
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-predict-"))
    for name in args.worlds.split(","):
        world = smaller(WORLDS[name], technicians=args.technicians,
                        days=args.warmup_days + args.days)
        sim = simulate(world)
        log, truth_file = write(sim, folder / name)
        truth = json.loads(truth_file.read_text())["orders"]
        days = sorted({d.day for d in sim.days})
        scored_days = set(days[args.warmup_days:])
        evaluated = {v.number for v in sim.visits() if v.day in scored_days}
        results, seconds = {}, {}
        for method in args.methods.split(","):
            replayed = folder / name / f"told-{method}.jsonl"
            seconds[method] = _replay(log, replayed, method, args.ask_every)
            lines = [json.loads(line) for line in replayed.read_text().splitlines()]
            results[method] = score(lines, truth, evaluated)
        results["oracle"] = oracle_scores(sim, evaluated, args.ask_every)
        figures = report(name, results, seconds)
        out += figures
        print("\n".join(figures), flush=True)
    if args.keep:
        (folder / "report.md").write_text("\n".join(out) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
