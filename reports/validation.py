"""The validation page: how well a calibrated SimPy model of the live testbed predicts it at
offered rates it was not fitted at. One self-contained HTML page (figures embedded as base64 PNG).

Built from validation.json alone (plain data, as `crossroads validate CAL --out DIR` writes it):
    calibrated (the model's path), description, machine (free-form mapping), replications,
    calibration_levels (rates the model was fitted at),
    levels: [{rate, below_knee, predicted: {throughput, mean_ms, p50_ms, p90_ms, p99_ms, core_cpu,
              ci: {figure: [low, high]}}, measured: {same figures}, error: {throughput, mean_ms,
              p50_ms, p99_ms, core_cpu_points}}]  (held-out levels, ascending rate),
    knee: {p99_limit_ms, predicted, measured, error, rates, predicted_p99_ms, measured_p99_ms},
    whatifs: [{name, what, rate, predicted/measured: {mean_ms, effect_mean_ms, failed, queued},
               error: {effect_mean_ms, failed, queued}, noise: {null_effects_ms, rms_ms,
               standard_error_ms, rounds}, resolved (the measured effect stands out of the
               noise: testbed/calibration/noise.py), faults: [{from_s, until_s, ...}],
               phases (a fault with a window): [{name, from_s, until_s, predicted/measured:
               {mean_ms, effect_ms}, error}], timeline: {step_s, predicted, measured,
               predicted_baseline, measured_baseline}}] (reports/validation_whatifs.py),
    goals: {figure: {goal ("within 5%"), worst, met}},
    whatifs_resolved (optional, not a goal): {goal, worst, met, within_noise}: the what-ifs' goal
            judged by the errors that stand out of the measurement's noise,
    drift: {rate, calibration: {figures}, now: {figures}, change: {as error}} (optional: a
           calibration level measured again before the held-out ones),
    anchored: {anchor: {rate, cpu, delay: {p50, p90, p99}}, knee: {predicted, error}, goals}
            (optional: a second model, the calibrated one anchored to the machine of now by that
            level, testbed/calibration/anchor.py; each level then has its own anchored:
            {predicted, error}),
    at_speed (optional): how fast the machine ran each round, and the levels' latency moved to the
            calibration's speed (reports/validation_speed.py; each level then has its own at_speed).
Any number may be null, the knee may be absent and the what-ifs empty: the page shows "-" or
"not measured" there and never fails on it. Signed errors are (model - measured) / measured,
printed as "+4.2%"; core CPU (a fraction of one core, shown in percent) has its error in
percentage points of one core, printed "+2.0 pt".
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from reports import validation_figures as vf
from reports.html import figure, fmt, page, signed_percent, signed_points, table
from reports.validation_speed import speed_section
from reports.validation_whatifs import whatifs_section

__all__ = ["build_validation_report", "signed_percent", "signed_points"]

Json = Mapping[str, Any]
_QUANTITY_BY_ERROR = {q.error_key: q for q in vf.QUANTITIES}
_GOAL_NAMES = {
    **{q.error_key: q.label.split(" (")[0] for q in vf.QUANTITIES},
    "knee": "knee (offered rate where p99 crosses its limit)",
    "whatifs": "what-ifs (effect of each fault)",
}


_HOW_TO_READ = """<p><b>How to read this page.</b> A computer model of the network was first tuned
("calibrated") on measurements of the real testbed at a few load levels. Here it is tested fairly: it
predicts other load levels, <i>held out</i> from the tuning, and the testbed is measured there anew.
Where the two agree, the model can be trusted for what-if questions the testbed cannot answer cheaply.
Every difference is given as a <i>signed error</i>: (model - measured) / measured. "+4.2%" means the
model said 4.2% more than was measured; "-12.0%" means 12% less. Core CPU is already a share, so its
error is in percentage points of one core: "+2.0 pt" means the model said 30% where 28% was measured.
Each goal says how close is close enough; "-" means there was nothing to compare.</p>"""

_WHY_LATENCY = """How long requests took as the offered load grows. Lines are the model, with a shaded band
where its replications put the answer; open circles are what the testbed measured. Blue is the mean,
orange the 99th percentile (the slowest one request in a hundred). The grey ticks at the bottom are the
levels the model was tuned at; every other level is a fair test. The red dashed line is the p99 limit:
the load where p99 crosses it is the <i>knee</i>, past which queues build up fast (the vertical red lines
mark it, as the model and the testbed place it). The vertical axis is logarithmic: each step up is ten
times slower."""

_WHY_CPU = """How busy the crossroads core keeps its processor as the load grows, in percent of one core (this
machine has two). The line and band are the model, the open circles the testbed. A model that gets the
CPU right knows where the time goes; the ticks at the bottom are the levels it was tuned at."""

_WHY_ERROR = """How far off the model was, figure by figure, at each held-out level. A bar above zero means the
model said more than was measured, below zero less. Each bar stands over a pale band as wide as its
goal: a bar inside its band meets the goal. Latencies and throughput are in percent of the measured
value; core CPU is in percentage points of one core. Levels past the knee are marked: there the load is
too high for the network to keep up, and a small error in the model's speed becomes a big error in
waiting time."""


def _error_text(error_key: str, value: float | None) -> str:
    q = _QUANTITY_BY_ERROR.get(error_key)
    return signed_points(value) if q is not None and q.points else signed_percent(value)


def _plain(value: Any) -> str:
    """A free-form JSON value for people (escaped): numbers formatted, lists joined, null as "-"."""
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return fmt(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{html.escape(str(k))}: {_plain(v)}" for k, v in value.items()) or "-"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ", ".join(_plain(v) for v in value) or "-"
    return html.escape(str(value))


def _rates(rates: Sequence[float | None]) -> str:
    return ", ".join(vf.rate_text(r) for r in rates) or "none"


def _about(validation: Json) -> str:
    """What was measured, the model, the machine, and which levels were fitted and which held out."""
    levels = validation.get("levels") or []
    machine = validation.get("machine") or {}
    items = "".join(f"<li>{html.escape(str(k))}: {_plain(v)}</li>" for k, v in machine.items())
    return (
        f"<p>{html.escape(str(validation.get('description') or ''))}</p>"
        f"<p>Model: <code>{html.escape(str(validation.get('calibrated') or '-'))}</code>, "
        f"{_plain(validation.get('replications'))} replications per level.<br>"
        f"Calibrated at (the model was fitted here): <b>{_rates(validation.get('calibration_levels') or [])}</b> "
        f"requests/s.<br>Held out (tested here): <b>{_rates([level.get('rate') for level in levels])}</b> "
        "requests/s.</p>"
        f"<p>The machine:</p><ul>{items or '<li>not given</li>'}</ul>"
    )


def _met(met: Any) -> str:
    return "-" if met is None else "yes" if met else '<span class="sig">no</span>'


_WHY_ANCHORED = """The last two columns are a second model: the calibrated one anchored to the machine of
the moment by the level measured again (see "The machine since calibrating"), its CPU and path delay moved
by what that one level shows; it reads no held-out level. Where it does better than the model as
calibrated, the machine's drift explains that much of the error."""


def _goals(goals: Json, anchored: Json | None = None, *, heads: tuple[str, str] = ("worst error", "met")) -> str:
    """The goals' table, `heads` naming its worst error's and its verdict's columns; with
    `anchored` (the anchored model's goals), two columns more."""
    if not goals:
        return "<p>No goals given.</p>"
    rows = []
    for key, g in goals.items():
        if not isinstance(g, Mapping):
            continue
        row = [html.escape(_GOAL_NAMES.get(key, key)), html.escape(str(g.get("goal") or "-")),
               _error_text(key, vf.number(g, "worst")), _met(g.get("met"))]  # fmt: skip
        if anchored is not None:
            a = anchored.get(key) or {}
            row += [_error_text(key, vf.number(a, "worst")), _met(a.get("met"))]
        rows.append(row)
    if anchored is None:
        return table(["figure", "goal", *heads], rows)
    columns = ["figure", "goal", "worst error", "met", "anchored model: worst error", "met"]
    return table(columns, rows) + f"<p>{_WHY_ANCHORED}</p>"


def _interval(ci: Any, scale: float) -> str:
    if not isinstance(ci, Sequence) or len(ci) != 2 or None in ci:
        return "-"
    return f"{fmt(ci[0] * scale)} – {fmt(ci[1] * scale)}"


# a figure's name in a repetition's summary (testbed/calibration/rounds.py), where it differs
_IN_REPETITION = {"throughput": "achieved_per_s"}


def _range(repetitions: Sequence[Json], q: vf.Quantity) -> str:
    """The lowest and highest of a figure over a level's rounds ("-" for fewer than two)."""
    values = [v for r in repetitions if (v := vf.number(r, _IN_REPETITION.get(q.key, q.key))) is not None]
    if len(values) < 2:
        return "-"
    return f"{fmt(min(values) * q.scale)} – {fmt(max(values) * q.scale)}"


def _machine(repetitions: Sequence[Json]) -> str:
    """The machine in each round kept: what the hypervisor took of it, and how many rounds were
    measured again for it; how fast it ran the speed probe's work (each said only when every
    round has it)."""
    shares = [s for r in repetitions if (s := vf.number(r, "stolen")) is not None]
    probes = [p for r in repetitions if (p := vf.number(r, "probe_ms")) is not None]
    said = []
    if repetitions and len(shares) == len(repetitions):
        again = sum(int(vf.number(r, "measured_again") or 0) for r in repetitions)
        each = ", ".join(f"{100 * s:.1f} %" for s in shares)
        redone = f"; {again} measurement{'s' if again != 1 else ''} made again for it" if again else ""
        said.append(f"The machine's CPU taken by the hypervisor for another tenant while this level was measured: "
                    f"{each}{redone}.")  # fmt: skip
    if repetitions and len(probes) == len(repetitions):
        each = ", ".join(f"{p:.2f}" for p in probes)
        said.append(f"The speed probe's fixed work took {each} ms (median of each round; slower: a slower machine).")
    return f'<p class="note">{" ".join(said)}</p>' if said else ""


def _level(level: Json) -> str:
    """One held-out level: its heading (past the knee marked) and a row per figure; measured in
    rounds, also the range of the rounds (the testbed's own spread, beside the model's error);
    with an anchored model, also its figure and error."""
    predicted, measured = level.get("predicted") or {}, level.get("measured") or {}
    ci, error = predicted.get("ci") or {}, level.get("error") or {}
    reps = [r for r in level.get("repetitions") or [] if isinstance(r, dict)]
    moved = level.get("anchored")
    rows = []
    for q in vf.QUANTITIES:
        row = [
            html.escape(q.label),
            fmt(_scaled(predicted, q)),
            _interval(ci.get(q.key), q.scale),
            fmt(_scaled(measured, q)),
            _error_text(q.error_key, vf.number(error, q.error_key)),
        ]
        if len(reps) > 1:
            row.insert(4, _range(reps, q))
        if isinstance(moved, Mapping):
            row += [fmt(_scaled(moved.get("predicted") or {}, q)),
                    _error_text(q.error_key, vf.number(moved.get("error") or {}, q.error_key))]  # fmt: skip
        rows.append(row)
    past = ' <span class="sig">past the knee</span>' if level.get("below_knee") is False else ""
    head = f"<h3>{vf.rate_text(vf.number(level, 'rate'))} requests/s{past}</h3>" + _machine(reps)
    columns = ["figure", "model", "model's interval", "measured"]
    if len(reps) > 1:
        columns.append(f"measured, lowest – highest of {len(reps)} rounds")
    columns.append("signed error")
    if isinstance(moved, Mapping):
        columns += ["anchored model", "its error"]
    return head + table(columns, rows)


_WHY_DRIFT = """Before the held-out levels, one level the model was tuned at is measured again on the fresh
network. The model cannot know how far the machine itself has moved since it was tuned (other work on a
shared machine, a warmer or colder cache); this row shows it. A change here of the size of the errors
below means they are the machine's drift as much as the model's error."""


def _drift(drift: Json | None, anchor: Json | None = None) -> str:
    """The control level: measured at calibration and again now, per figure, with its change,
    and how the model was anchored to it."""
    if not drift:
        return "<p>The machine since calibrating: not measured.</p>"
    then, now, change = drift.get("calibration") or {}, drift.get("now") or {}, drift.get("change") or {}
    rows = [
        [
            html.escape(q.label),
            fmt(_scaled(then, q)),
            fmt(_scaled(now, q)),
            _error_text(q.error_key, vf.number(change, q.error_key)),
        ]
        for q in vf.QUANTITIES
    ]
    head = f"<p>{_WHY_DRIFT}</p><p>Measured again: {vf.rate_text(vf.number(drift, 'rate'))} requests/s.</p>"
    return head + table(["figure", "at calibration", "now", "signed change"], rows) + _anchor(anchor)


def _anchor(anchor: Json | None) -> str:
    """How the model was moved to the machine of now (nothing when it was not)."""
    if not anchor:
        return ""
    delay = anchor.get("delay") or {}
    factors = ", ".join(f"{q} &times;{fmt(vf.number(delay, q))}" for q in ("p50", "p90", "p99"))
    return ("<p>The anchored model (a second model, beside the one as calibrated) is moved by this: every CPU "
            f"demand &times;{fmt(vf.number(anchor, 'cpu'))} (the core's "
            f"CPU per request now over then), the path's delay {factors} (what brings the model's own "
            "quantiles at this level to those measured now).</p>")  # fmt: skip


def _scaled(figures: Json, q: vf.Quantity) -> float | None:
    value = vf.number(figures, q.key)
    return None if value is None else value * q.scale


def _levels(levels: Sequence[Json]) -> str:
    if not levels:
        return "<p>No held-out level: not measured.</p>"
    return "\n".join(_level(level) for level in levels)


def _knee(knee: Json | None, anchored: Json | None = None) -> str:
    if not knee:
        return "<p>The knee: not measured.</p>"
    limit = vf.number(knee, "p99_limit_ms")
    rows = [
        ["the model puts it at", f"{vf.rate_text(vf.number(knee, 'predicted'))} requests/s"],
        ["the testbed reached it at", f"{vf.rate_text(vf.number(knee, 'measured'))} requests/s"],
        ["signed error", signed_percent(vf.number(knee, "error"))],
    ]
    if knee.get("at_least") is True:  # every stair climbed held by its median: the knee is higher
        rows[1][1] = f"at least {rows[1][1]} (every stair climbed held by its median)"
        rows[2][1] += " (against that lower bound)"
    if anchored:
        rows += [["the anchored model puts it at", f"{vf.rate_text(vf.number(anchored, 'predicted'))} "
                  f"requests/s ({signed_percent(vf.number(anchored, 'error'))})"]]  # fmt: skip
    return (
        f"<p>The knee is the offered load at which the 99th percentile latency crosses "
        f"{fmt(limit)} ms: past it, queues build faster than they drain.</p>" + table(["the knee", ""], rows)
    )


def build_validation_report(validation: dict[str, Any]) -> str:
    """The HTML page of one validation (validation.json as a dict): self-contained, no script."""
    levels = [level for level in validation.get("levels") or [] if isinstance(level, Mapping)]
    anchored = validation.get("anchored") or {}  # a second model's, when the validation made one
    at_speed_goals = (validation.get("at_speed") or {}).get("goals") or {}
    speed_goals = _goals(at_speed_goals, heads=("worst error at the calibration's speed", "would be met"))
    parts = [
        "<h1>Validation: the model against the live testbed</h1>",
        _about(validation),
        _HOW_TO_READ,
        "<h2>The goals</h2>",
        _goals(validation.get("goals") or {}, anchored.get("goals")),
        "<h2>Latency against offered load</h2>",
        figure(vf.latency_figure(validation), "latency against offered load", _WHY_LATENCY),
        "<h2>Core CPU against offered load</h2>",
        figure(vf.cpu_figure(validation), "core CPU against offered load", _WHY_CPU),
        "<h2>Error per figure</h2>",
        figure(vf.error_figure(validation), "error per figure", _WHY_ERROR),
        "<h2>The machine since calibrating</h2>",
        _drift(validation.get("drift"), anchored.get("anchor")),
        "<h2>The machine's speed in each round</h2>",
        speed_section(validation, speed_goals),
        "<h2>Each held-out level</h2>",
        _levels(levels),
        "<h2>The knee</h2>",
        _knee(validation.get("knee"), anchored.get("knee")),
        "<h2>What-ifs</h2>",
        whatifs_section(validation.get("whatifs") or [], validation.get("whatifs_resolved")),
    ]
    return page(f"Validation: {validation.get('calibrated') or 'model'}", "\n".join(parts))
