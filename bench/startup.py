#!/usr/bin/env python3
"""Start-up of storaged-manage: wall time of whole processes, median of runs.

Each command runs as an operator runs it (a fresh ``python -m
storaged.manage.cli`` process, state store and configuration in a
temporary directory), in rotating order with two anchors measured in the
same run:

* ``python -c pass``: the interpreter alone, the floor of any command;
* ``python -c "import oslo_config.cfg"``: the floor of a command that parses
  its configuration with oslo.config, as every storaged command does.

Goal (issue 17): ``--help`` and ``status`` at most 0.15 s.  The machine is
shared and noisy: medians of ``--runs`` (default 21) with min and max;
nothing is asserted.

Usage: python -m bench.startup [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

GOAL = 0.15


def _time(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "storaged.conf")
        with open(conf, "w") as f:
            f.write(f"[DEFAULT]\nstate_path = {tmp}\n")
        manage = [py, "-m", "storaged.manage.cli", "--config-file", conf]
        rows = {
            "python -c pass (anchor)": [py, "-c", "pass"],
            "import oslo_config (anchor)": [py, "-c", "import oslo_config.cfg"],
            "storaged-manage --help": [*manage, "--help"],
            "storaged-manage status": [*manage, "status"],
            "storaged-manage config check": [*manage, "config", "check"],
        }
        env = dict(os.environ)
        for argv in rows.values():  # warm the page cache and the .pyc files
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
        times: dict[str, list[float]] = {label: [] for label in rows}
        labels = list(rows)
        for run in range(args.runs):
            shift = run % len(labels)
            for label in labels[shift:] + labels[:shift]:
                times[label].append(_time(rows[label], env))
    floor = statistics.median(times["python -c pass (anchor)"])
    print(f"start-up, median of {args.runs} runs [min-max], seconds; "
          f"goal <= {GOAL} s for --help and status")
    for label, values in times.items():
        median = statistics.median(values)
        goal = ""
        if label in ("storaged-manage --help", "storaged-manage status"):
            goal = "  met" if median <= GOAL else "  NOT met"
        print(f"{label:<32}{median:7.3f} [{min(values):.3f}-{max(values):.3f}]"
              f"  {median / floor:5.1f}x the interpreter{goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
