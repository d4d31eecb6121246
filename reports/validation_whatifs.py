"""The validation page's what-ifs: each fault's effects as the model predicted them and as the
live testbed measured them, and, for a fault with a window (a host killed, the core stopped),
its phases (before, during, just after, later) and its latency over time.

Plain data in: validation.json's "whatifs" (reports/validation.py lists their fields; the phases
and timeline are testbed/calibration/phases.py's). Any of it may be missing or null.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reports import validation_figures as vf
from reports.html import figure, fmt, signed_percent, signed_value, table

__all__ = ["whatifs_section"]

Json = Mapping[str, Any]

_WHY_PHASES = """The same fault, read over time. Each line is the mean latency of the requests due in each half
second: solid with the fault, dashed without it (the baseline measured just before), blue the model and
orange the testbed; the grey band is when the fault lasted. A fault's effect on the whole window's mean
is often a sum of opposite effects: while a host is down, the exchanges that need it fail at once and
everyone else has one process less to share the machine with (faster); when it serves again, it starts
up and the outbox delivers what it was owed (slower). The table below gives each phase's effect, so that
one can see where the model and the testbed part ways."""

_PHASE_TEXT = {"before": "before the fault", "during": "during the fault", "after": "its first seconds after",
               "later": "the rest of the window"}  # fmt: skip


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


# a what-if's figures: key in its predicted/measured/error, label, how a value is printed
_WHATIF_ROWS: tuple[tuple[str, str, Callable[[float | None], str]], ...] = (
    ("mean_ms", "mean latency (ms)", fmt),
    ("effect_mean_ms", "effect on mean latency (ms)", signed_value),
    ("failed", "requests failed", _count),
    ("queued", "deliveries queued", _count),
)


def _measured_effect(w: Json) -> str:
    """The measured effect on mean latency, with its standard error and, when it does not stand
    out of the noise, a mark saying so."""
    shown = signed_value(vf.number(w.get("measured") or {}, "effect_mean_ms"))
    error = vf.number(w.get("noise") or {}, "standard_error_ms")
    if error is not None:
        shown += f" &plusmn; {fmt(error)}"
    return shown + (" <i>(within the noise)</i>" if w.get("resolved") is False else "")


def _measured_count(w: Json, key: str) -> str:
    """A measured count, with its standard error over the rounds where it has one."""
    shown = _count(vf.number(w.get("measured") or {}, key))
    error = vf.number((w.get("count_noise") or {}).get(key) or {}, "standard_error")
    return shown if error is None else f"{shown} &plusmn; {error:,.1f}"


def _measured_cell(w: Json, key: str, show: Callable[[float | None], str]) -> str:
    if key == "effect_mean_ms":
        return _measured_effect(w)
    if key in ("failed", "queued"):
        return _measured_count(w, key)
    return show(vf.number(w.get("measured") or {}, key))


def _whatif(w: Json) -> list[list[str]]:
    """One what-if's rows: model, measurement and signed error of each of its figures."""
    predicted, error = w.get("predicted") or {}, w.get("error") or {}
    what = f"<b>{html.escape(str(w.get('name') or '-'))}</b>: {html.escape(str(w.get('what') or ''))}"
    rows = [
        ["", "", html.escape(label), show(vf.number(predicted, key)), _measured_cell(w, key, show),
         signed_percent(vf.number(error, key))]
        for key, label, show in _WHATIF_ROWS
    ]  # fmt: skip
    rows[0][:2] = [what, vf.rate_text(vf.number(w, "rate"))]
    return rows


def _noise(whatifs: Sequence[Json], resolved: Json) -> str:
    """What the measured effects' noise is (testbed/calibration/noise.py), the counts' where they
    have one, and the what-ifs' goal judged by the errors that stand out of it; "" when no what-if
    has its noise."""
    noise = next((w["noise"] for w in whatifs if isinstance(w.get("noise"), Mapping)), None)
    if noise is None:
        return ""
    nulls = ", ".join(signed_value(float(x)) for x in noise.get("null_effects_ms") or [] if isinstance(x, int | float))
    worst = vf.number(resolved, "worst")
    judged = (f"Judged only by the errors that stand out of it (every count's, and the effects at least two "
              f"standard errors from 0), the what-ifs' worst error is {signed_percent(worst)}: not a goal, "
              f"what the measurement can tell.") if resolved else ""  # fmt: skip
    return (f"<p>The noise an effect on mean latency is measured with: each round measured two baselines at the "
            f"same rate, one after the other, and they differed by {nulls} ms (root mean square "
            f"{fmt(vf.number(noise, 'rms_ms'))} ms). A measured effect is the median of "
            f"{noise.get('rounds', '-')} round(s) of such differences, so its standard error is about "
            f"{fmt(vf.number(noise, 'standard_error_ms'))} ms (the &plusmn; above); an effect within two of them "
            f"of 0 is marked <i>within the noise</i>, and its error says more about the noise than about the "
            f"model. {_counts_noise(whatifs)}{judged}</p>")  # fmt: skip


def _counts_noise(whatifs: Sequence[Json]) -> str:
    """What the counts' &plusmn; is, when a what-if has one; "" otherwise."""
    if not any(isinstance(n, Mapping) for w in whatifs for n in (w.get("count_noise") or {}).values()):
        return ""
    return (
        "A count's &plusmn; is its own standard error, from the spread of its rounds (their standard "
        "deviation, times 1.25 for a median, over the square root of the rounds): an error smaller than "
        "about twice it, over the count, is finer than the rounds can tell. "
    )


def _phase_rows(w: Json) -> list[list[str]]:
    """A what-if's phases: each one's span, and the model's and the testbed's mean latency and effect."""
    rows = []
    for phase in w.get("phases") or []:
        if not isinstance(phase, Mapping):
            continue
        name = str(phase.get("name") or "-")
        predicted, measured = phase.get("predicted") or {}, phase.get("measured") or {}
        span = f"{fmt(vf.number(phase, 'from_s'))}-{fmt(vf.number(phase, 'until_s'))} s"
        rows.append([html.escape(_PHASE_TEXT.get(name, name)), span,
                     fmt(vf.number(predicted, "mean_ms")), fmt(vf.number(measured, "mean_ms")),
                     signed_value(vf.number(predicted, "effect_ms")), signed_value(vf.number(measured, "effect_ms")),
                     signed_percent(vf.number(phase, "error"))])  # fmt: skip
    return rows


def _phases(w: Json) -> str:
    """A what-if with a fault window: its timeline figure and its phases' table; "" without one."""
    rows = _phase_rows(w)
    if not rows and not w.get("timeline"):
        return ""
    title = f"<h3>{html.escape(str(w.get('name') or 'what-if'))}: over time</h3>"
    head = ["phase", "requests due", "mean, model (ms)", "mean, measured (ms)", "effect, model (ms)",
            "effect, measured (ms)", "signed error of the effect"]  # fmt: skip
    shown = figure(vf.timeline_figure(w), f"latency over time, {w.get('name') or 'what-if'}", _WHY_PHASES)
    return title + shown + (table(head, rows) if rows else "")


def whatifs_section(whatifs: Sequence[Json], resolved: Json | None = None) -> str:
    """Each what-if (a fault applied at a rate): model, measurement and error of its effects, the
    noise of the measured effects (with `resolved`, validation.json's "whatifs_resolved": the goal
    judged by the errors that stand out of it), then each one with a fault window over time."""
    if not whatifs:
        return "<p>What-ifs: not measured.</p>"
    shown = [w for w in whatifs if isinstance(w, Mapping)]
    rows = [row for w in shown for row in _whatif(w)]
    effects = table(["what-if", "rate (requests/s)", "figure", "model", "measured", "signed error"], rows)
    return effects + _noise(shown, resolved or {}) + "".join(_phases(w) for w in shown)
