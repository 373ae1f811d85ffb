"""The pacing cases of the end-to-end bench in virtual time, over seeds, with the whole controller and without each
rule: the sweep behind the ablation table of docs/design/pacing.md.

Run: `uv run python bench/bench_pacing_sweep.py` (every case, 5 seeds, the whole controller; ~10 s)
     `uv run python bench/bench_pacing_sweep.py --without echoes noise-floor` (and once without each rule named)
     `uv run python bench/bench_pacing_sweep.py --cases harsh-10 --seeds 10`
     `uv run python bench/bench_pacing_sweep.py --lines` (the pacing modules' lines, with and without docs)

The cases (``bench/support/gateway_sim.run_case``): the real limiters against the sandbox's token buckets in virtual
time; `told` has the limits as ceilings, `blind` a ceiling of 10 R. Printed per case and contender: the median and
min-max of `% of R` (attaches/s of R/10 in the attach cases) and the median share of requests answered 429. The
rules and how each is taken out: bench/support/pacing_ablation.py. Virtual time says what the controller does when
the machine is not the limit; whether a rule earns its place is decided end to end (bench/bench_e2e.py --without).
"""

from __future__ import annotations

import argparse
import ast
import io
import statistics
import subprocess
import sys
import tokenize
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support.gateway_sim import run_case
from bench.support.pacing_ablation import RULES, take_out

CASES = {"harsh-100": ("harsh", 100.0, 30.0), "attach-100": ("attach", 100.0, 30.0),
         "noise-100": ("noise", 100.0, 30.0), "harsh-10": ("harsh", 10.0, 60.0), "attach-10": ("attach", 10.0, 60.0)}

MODULES = ["transforms/pacing_signal.py", "transforms/accepted_rate.py", "transforms/noise_floor.py",
           "transforms/cubic.py", "transforms/rate_control.py", "connectors/rate_limiter.py",
           "connectors/rate_share.py"]


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not a docstring."""
    docs: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            docs.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    lines = {n for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type not in skip
             for n in range(tok.start[0], tok.end[0] + 1)}
    return len(lines - docs)


def print_lines() -> None:
    root = Path(__file__).resolve().parent.parent
    total = [0, 0]
    for name in MODULES:
        source = (root / name).read_text()
        counts = [len(source.splitlines()), code_lines(source)]
        total = [a + b for a, b in zip(total, counts, strict=True)]
        print(f"{name:32} {counts[0]:4} lines, {counts[1]:4} of code")
    print(f"{'all':32} {total[0]:4} lines, {total[1]:4} of code")


def sweep(cases: list[str], seeds: int, label: str) -> None:
    for name in cases:
        case, rate, seconds = CASES[name]
        for told in (True, False):
            runs = [run_case(case, rate, told=told, seed=seed, seconds=seconds) for seed in range(seeds)]
            shares = [r.share_of_r for r in runs]
            print(f"{name:10} {'told' if told else 'blind':5} {label:22} {statistics.median(shares):5.0%} "
                  f"({min(shares):.0%}-{max(shares):.0%})  {statistics.median(r.share_429 for r in runs):6.1%}",
                  flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--without", nargs="*", choices=list(RULES), default=[])
    p.add_argument("--lines", action="store_true", help="print the pacing modules' lines and stop")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.lines:
        print_lines()
        return
    if args.child is not None:  # one contender in a process of its own: a rule taken out stays out
        take_out([args.child] if args.child else [])
        sweep(args.cases, args.seeds, f"without {args.child}" if args.child else "whole controller")
        return
    print("case       who   contender              % of R median (min-max)  429s median", flush=True)
    for rule in ["", *args.without]:
        subprocess.run([sys.executable, __file__, "--child", rule, "--seeds", str(args.seeds), "--cases", *args.cases],
                       check=True)


if __name__ == "__main__":
    main()
