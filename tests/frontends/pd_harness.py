"""Run real Pure Data around pd_patches/drumdiff.pd and collect what it prints.

`harness_patch` writes a patch with one [drumdiff] per instance name. For an instance `A`:
- messages sent to `A-t` go to its trigger inlet, to `A-p` to its parameter inlet (drive them
  with `pd -send "A-t kick 100"`);
- everything from its message outlet is printed as `A: ...`;
- on `loaded`, its signal outlet is recorded for 0.2 s into an array and, 0.3 s later, the
  recording's maximum is printed as `A-peak: <max>`;
- after `expected` outcomes (`loaded` or `fail`, all instances together) Pd quits; after
  `timeout_ms` it prints `harness: timeout` and quits.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PD_PATCHES = REPO / "pd_patches"


def pd_binary() -> str | None:
    return shutil.which("pd")


def harness_patch(
    instances: list[str], *, daemon_port: int, expected: int, timeout_ms: int = 20000
) -> str:
    lines = ["#N canvas 0 50 1200 700 12;"]
    connects: list[str] = []

    def box(text: str, x: int, y: int, kind: str = "obj") -> int:
        lines.append(f"#X {kind} {x} {y} {text};")
        return len(lines) - 2

    def wire(a: int, o: int, b: int, i: int = 0) -> None:
        connects.append(f"#X connect {a} {o} {b} {i};")

    counter_in = box("t b", 20, 600)
    count = box("f", 20, 630)
    inc = box("+ 1", 60, 630)
    done_sel = box(f"sel {expected}", 20, 660)
    quit_delay = box("delay 300", 20, 690)
    quit_msg = box("\\; pd quit", 20, 720, "msg")
    wire(counter_in, 0, count)
    wire(count, 0, inc)
    wire(inc, 0, count, 1)
    wire(inc, 0, done_sel)
    wire(done_sel, 0, quit_delay)
    wire(quit_delay, 0, quit_msg)
    lb = box("loadbang", 300, 600)
    watchdog = box(f"delay {timeout_ms}", 300, 630)
    timeout_print = box("print harness", 300, 690)
    timeout_msg = box("timeout", 400, 660, "msg")
    wire(lb, 0, watchdog)
    wire(watchdog, 0, timeout_msg)
    wire(timeout_msg, 0, timeout_print)
    wire(timeout_msg, 0, quit_msg)

    for n, name in enumerate(instances):
        x = 20 + n * 280
        rt = box(f"r {name}-t", x, 20)
        rp = box(f"r {name}-p", x + 120, 20)
        dd = box(f"drumdiff {daemon_port}", x, 60)
        pr = box(f"print {name}", x, 100)
        route = box("route loaded fail", x + 100, 130)
        start = box("t b b", x + 100, 160)
        rec = box(f"tabwrite~ {name}-cap", x, 200)
        wait = box("delay 300", x + 140, 200)
        peak = box(f"array max {name}-cap", x + 140, 230)
        peak_print = box(f"print {name}-peak", x + 140, 260)
        box(f"array define {name}-cap 8820", x, 300)
        wire(rt, 0, dd)
        wire(rp, 0, dd, 2)
        wire(dd, 1, pr)
        wire(dd, 1, route)
        wire(route, 0, start)
        wire(route, 1, counter_in)
        wire(start, 1, rec)
        wire(start, 0, wait)
        wire(dd, 0, rec)
        wire(wait, 0, peak)
        wire(peak, 0, peak_print)
        wire(wait, 0, counter_in)  # a hit counts once its peak is printed
    return "\n".join(lines + connects) + "\n"


@dataclass
class PdRun:
    returncode: int
    stderr: str

    def lines(self, prefix: str) -> list[str]:
        """The printed messages of one [print prefix], without the prefix."""
        out = []
        for line in self.stderr.splitlines():
            if line.startswith(prefix + ": "):
                out.append(line[len(prefix) + 2 :])
        return out

    def peaks(self, name: str) -> list[float]:
        return [
            float(v) for v in re.findall(r"(-?[0-9.e+-]+)", " ".join(self.lines(f"{name}-peak")))
        ]


def run_pd(patch: Path, sends: list[str], *, timeout: float = 60.0) -> PdRun:
    """`pd -nogui -nosound` on `patch` with DSP on; waits for it to quit (the patch quits)."""
    pd = pd_binary()
    assert pd is not None
    cmd = [
        pd,
        "-nogui",
        "-nosound",
        "-noprefs",
        "-stderr",
        "-path",
        str(PD_PATCHES),
        "-send",
        "pd dsp 1",
    ]
    for message in sends:
        cmd += ["-send", message]
    cmd.append(str(patch))
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run(
        cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=patch.parent
    )
    return PdRun(proc.returncode, proc.stderr)
