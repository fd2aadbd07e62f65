"""The runoff, `--optimize`'s last round: the choice and its near-ties, loaded together and timed head-to-head in
short blocks over many rounds (``Search.runoff``), then chosen again on those figures; under ``latency``, a candidate
those rounds cannot tell from the fastest ties it, and of tied files the smallest ships. Pure functions: the
timing is the search's."""

from __future__ import annotations

import statistics
from dataclasses import replace

from ..stats import mb, sign_test
from .candidates import Measured, choose

# near-ties: within 25% of the choice. On a shared 2-core VM one sweep can put two engines that differ by one option
# 0.68-1.23x apart (benchmarks/results/peers-trained-run13-headtohead.json, ShuffleNetV2's onnxruntime FP32 with and
# without flushing denormals), so a 5% field let one round's noise ship FP32 over a faster INT8 file.
RUNOFF_WITHIN = 0.25
RUNOFF_MAX = 4
RUNOFF_ROUNDS = 15  # head-to-head rounds: enough for a median that one busy spell cannot move


def runoff_field(measured: list[Measured], max_drop: float, objective: str = "latency",
                 within: float = RUNOFF_WITHIN, k: int = RUNOFF_MAX) -> list[Measured]:
    """The near-ties of the choice, fastest first, at most ``k``: the candidates within the budget that the objective
    cannot tell from the choice (for ``size``, the same file size) and whose latency is within ``within`` of it.
    Empty when the choice has no such rival (or nothing fits the budget)."""
    if not any(m.fits(max_drop) for m in measured):
        return []
    best = choose(measured, max_drop, objective)
    near = [m for m in measured if m.fits(max_drop) and m.latency_ms <= best.latency_ms * (1 + within)
            and (objective == "latency" or m.size_bytes == best.size_bytes)]
    near = sorted(near, key=lambda m: (m.latency_ms, m.candidate.name))[:k]
    if best not in near:  # the size objective's choice may be the slowest of its ties: it always runs
        near = [best] + near[:k - 1]
    return near if len(near) > 1 else []


# A runoff candidate "ties" the fastest when the head-to-head cannot tell them apart: a sign test over the rounds
# finds the fastest no faster at 5%, and the median round-by-round ratio is within 5% (two engines that differ by one
# option came out 0.985 and 1.008, quartiles about +-6%, in peers-trained-run13-headtohead.json). Of tied candidates
# the latency objective ships the smallest file: within the noise the speed is the same, and the size is not.
SPEED_TIE_P = 0.05
SPEED_TIE_WITHIN = 0.05


def speed_ties(rounds: dict[str, list[float]], fastest: str) -> dict[str, dict]:
    """The runoff candidates that tie ``fastest`` (see ``SPEED_TIE_P``), each with its sign test against it."""
    out = {}
    for name, ms in rounds.items():
        if name == fastest:
            continue
        t = sign_test(rounds[fastest], ms)
        if t["p"] >= SPEED_TIE_P and t["ratio"] <= 1 + SPEED_TIE_WITHIN:
            out[name] = t
    return out


def after_runoff(measured: list[Measured], rounds: dict[str, list[float]], max_drop: float,
                 objective: str = "latency") -> tuple[list[Measured], Measured, dict[str, dict]]:
    """The runoff's head-to-head figures (each candidate's median block) replace its candidates' first-round ones,
    and the choice is made among them only: the others were never timed beside them. Under ``latency``, the
    candidates within the budget that tie the fastest (``speed_ties``) compete with it on file size; returned with
    their sign tests."""
    def again(m: Measured) -> Measured:
        ms = rounds[m.candidate.name]
        return replace(m, latency_ms=statistics.median(ms),
                       extra={**m.extra, "first_round_ms": m.latency_ms, "runoff_ms": list(ms)})

    out = [again(m) if m.candidate.name in rounds else m for m in measured]
    timed = [m for m in out if m.candidate.name in rounds]
    best = choose(timed, max_drop, objective)
    if objective != "latency":
        return out, best, {}
    ties = {n: t for n, t in speed_ties(rounds, best.candidate.name).items()
            if next(m for m in timed if m.candidate.name == n).fits(max_drop)}
    pool = [best] + [m for m in timed if m.candidate.name in ties]
    return out, min(pool, key=lambda m: (m.size_bytes, round(m.latency_ms, 6), m.candidate.name)), ties


def runoff_notes(runoff: dict, best: Measured, fastest: Measured) -> list[str]:
    """What the runoff did, for the report's notes: who ran, who was fastest, and a tie given to a smaller file."""
    notes = [f"runoff: {', '.join(runoff['candidates'])} (within {runoff['within']:.0%} of the choice) timed again "
             f"head-to-head, {runoff['rounds']} rounds; {runoff['fastest']} is fastest"
             + ("" if runoff["fastest"] == runoff["choice_before"] else
                f", not {runoff['choice_before']} as the first rounds had it")]
    if best.candidate.name != fastest.candidate.name:
        t = runoff["speed_ties"][best.candidate.name]
        notes.append(f"runoff: {best.candidate.name} ties it in speed ({t['ratio']:.3f}x round by round, faster in "
                     f"{t['b_faster']} of {t['n']} rounds, sign test p = {t['p']:.2f}) and is smaller "
                     f"({mb(best.size_bytes):.3f} MB against {mb(fastest.size_bytes):.3f} MB): chose it")
    return notes
