#!/usr/bin/env python
"""Agreement benchmark: annotate.agreement.krippendorff_alpha beside the `krippendorff` package.

1. Large data, few values: 1,000,000 units x 3 coders, 5 random labels, ~5 % missing; every
   level (nominal, ordinal, interval, ratio), ours and the package's on the same data. The
   target is nominal in <= 1 s.
2. Many distinct values: continuous ratings (a true score per unit plus noise per coder), for
   a ladder of sizes up to 100,000 units x 3 coders; interval and ordinal. The package builds
   units x values x values arrays, so it runs only where that fits the caps.
3. Our values must equal the package's to 1e-9 wherever both ran.

The package runs in a forked child process, stopped after --package-timeout seconds and
skipped beforehand when its estimated memory exceeds --package-memory-gb (the estimate and
the measured peak are both printed). No database and no Django needed:

    .venv/bin/python bench/agreement_bench.py [--units 1000000] [--repeats 5]
        [--ladder 100 200 1000 100000] [--package-timeout 60] [--package-memory-gb 4]

See bench/README.md for what each column means and the latest results.
"""

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
import tracemalloc
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from annotate.agreement import krippendorff_alpha  # noqa: E402

LEVELS = ["nominal", "ordinal", "interval", "ratio"]
TARGET_NOMINAL_S = 1.0
TOLERANCE = 1e-9
# Arrays of units x values x values float64 the package holds at once at its peak
# (value counts outer product, the identity broadcast, their difference, the division):
# calibrated against the measured peaks printed in the table.
PACKAGE_PEAK_ARRAYS = 3


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def labelled_data(rng, units, coders, labels, missing):
    data = rng.integers(1, labels + 1, size=(coders, units)).astype(np.float64)
    data[rng.random(data.shape) < missing] = np.nan
    return data


def continuous_data(rng, units, coders, missing):
    truth = rng.gamma(4.0, 10.0, size=units)
    data = np.abs(truth + rng.normal(0.0, 5.0, size=(coders, units)))
    data[rng.random(data.shape) < missing] = np.nan
    return data


def time_ours(data, level, repeats):
    """Return (median seconds, value, peak MB traced) for our alpha."""
    value = krippendorff_alpha(data, level)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        krippendorff_alpha(data, level)
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    krippendorff_alpha(data, level)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), value, peak / 2**20


def package_estimate_gb(data):
    present = data[~np.isnan(data)]
    values = np.unique(present).size
    units = data.shape[1]
    return PACKAGE_PEAK_ARRAYS * units * values * values * 8 / 2**30, values


def _package_child(data, level, conn):
    try:
        import krippendorff

        start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        value = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_rss
        conn.send(("ok", float(value), seconds, peak / 1024))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, whatever it is
        conn.send(("error", f"{type(exc).__name__}: {exc}", None, None))
    finally:
        conn.close()


def time_package(data, level, timeout, memory_gb):
    """Return (seconds, value, peak extra RSS MB, note) for the krippendorff package."""
    try:
        import krippendorff  # noqa: F401
    except ImportError:
        return None, None, None, "package not installed (pip install krippendorff)"
    estimate, values = package_estimate_gb(data)
    if estimate > memory_gb:
        return None, None, None, (
            f"package skipped: would need ~{estimate:,.0f} GB ({PACKAGE_PEAK_ARRAYS} arrays of "
            f"{data.shape[1]:,} units x {values:,} x {values:,} values, float64) "
            f"> --package-memory-gb {memory_gb:g}"
        )
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_package_child, args=(data, level, child))
    process.start()
    child.close()
    if not parent.poll(timeout):
        process.kill()
        process.join()
        return None, None, None, f"package stopped after {timeout:g} s without a result"
    status, value, seconds, peak = parent.recv()
    process.join()
    if status != "ok":
        return None, None, None, f"package failed: {value}"
    return seconds, value, peak, None


def measure(rows, notes, case, data, level, args):
    ours_s, ours, ours_mb = time_ours(data, level, args.repeats)
    if args.no_package:
        pkg_s = pkg = pkg_mb = None
        note = None
    else:
        pkg_s, pkg, pkg_mb, note = time_package(data, level, args.package_timeout,
                                                args.package_memory_gb)
    distinct = np.unique(data[~np.isnan(data)]).size
    row = {
        "case": case, "level": level, "units": data.shape[1], "coders": data.shape[0],
        "distinct": distinct, "ours_s": ours_s, "ours_mb": ours_mb, "alpha": ours,
        "pkg_s": pkg_s, "pkg_mb": pkg_mb,
        "diff": abs(ours - pkg) if pkg is not None else None,
    }
    rows.append(row)
    if note:
        note = f"{case}, {data.shape[1]:,} units: {note}"
        if note not in notes:
            notes.append(note)
    shown = f"package {pkg_s * 1e3:.1f} ms" if pkg_s is not None else "package -"
    log(f"{case:<9} {level:<8} {data.shape[1]:>9,} units: ours {ours_s * 1e3:.1f} ms, {shown}")
    return row


def fmt(value, spec, empty="-"):
    return empty if value is None else format(value, spec)


def report(rows, args, notes, machine):
    print()
    print(f"krippendorff_alpha benchmark: ours (annotate.agreement) vs the krippendorff "
          f"package {machine}")
    print(f"ours = median of {args.repeats} runs after a warm-up; package = one run in a "
          "forked process; MB = peak traced allocations (ours) / peak extra RSS (package)")
    header = (f"{'case':<9} {'level':<8} {'units':>9} {'coders':>6} {'distinct':>8} "
              f"{'alpha':>9} {'ours ms':>9} {'pkg ms':>9} {'pkg/ours':>9} {'ours MB':>8} "
              f"{'pkg MB':>8} {'|diff|':>8}")
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = r["pkg_s"] / r["ours_s"] if r["pkg_s"] is not None else None
        print(f"{r['case']:<9} {r['level']:<8} {r['units']:>9,} {r['coders']:>6} "
              f"{r['distinct']:>8,} {r['alpha']:>9.5f} {r['ours_s'] * 1e3:>9.1f} "
              f"{fmt(r['pkg_s'] and r['pkg_s'] * 1e3, '9.1f'):>9} "
              f"{fmt(ratio, ',.1f') + ('x' if ratio else ''):>9} "
              f"{r['ours_mb']:>8.1f} {fmt(r['pkg_mb'], '8.0f'):>8} "
              f"{fmt(r['diff'], '8.1e'):>8}")
    print()
    print("targets")
    nominal = [r for r in rows if r["case"] == "labels" and r["level"] == "nominal"]
    for r in nominal:
        ok = r["ours_s"] <= TARGET_NOMINAL_S
        print(f"  {'PASS' if ok else 'MISS'}  nominal alpha, {r['units']:,} units x "
              f"{r['coders']} coders <= {TARGET_NOMINAL_S:g} s   {r['ours_s']:.3f} s "
              f"(package {fmt(r['pkg_s'], '.3f')} s)")
    diffs = [r["diff"] for r in rows if r["diff"] is not None]
    if diffs:
        worst = max(diffs)
        print(f"  {'PASS' if worst <= TOLERANCE else 'MISS'}  values equal the package's to "
              f"{TOLERANCE:g}        max |diff| {worst:.1e} over {len(diffs)} comparisons")
    else:
        print("  ----  values equal the package's: no comparison ran")
    for note in notes:
        print(f"  note: {note}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=1_000_000,
                        help="units of the labelled (few values) case")
    parser.add_argument("--coders", type=int, default=3, help="coders in every case")
    parser.add_argument("--labels", type=int, default=5, help="distinct labels, first case")
    parser.add_argument("--missing", type=float, default=0.05, help="share of missing ratings")
    parser.add_argument("--ladder", type=int, nargs="+", default=[100, 200, 1_000, 100_000],
                        help="unit counts of the many-distinct-values case")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of ours (median)")
    parser.add_argument("--package-timeout", type=float, default=60.0,
                        help="seconds before a package run is stopped")
    parser.add_argument("--package-memory-gb", type=float, default=4.0,
                        help="skip package runs estimated to need more")
    parser.add_argument("--no-package", action="store_true", help="time ours only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    started = time.monotonic()
    rng = np.random.default_rng(args.seed)
    rows, notes = [], []
    machine = f"on {os.cpu_count()} CPU core(s), numpy {np.__version__}"
    try:
        machine += f", krippendorff {metadata.version('krippendorff')}"
    except metadata.PackageNotFoundError:
        machine += ", krippendorff not installed"

    data = labelled_data(rng, args.units, args.coders, args.labels, args.missing)
    log(f"labelled case: {args.units:,} units x {args.coders} coders, {args.labels} labels, "
        f"{np.isnan(data).mean():.1%} missing")
    for level in LEVELS:
        measure(rows, notes, "labels", data, level, args)
    del data

    for units in args.ladder:
        data = continuous_data(rng, units, args.coders, args.missing)
        for level in ("interval", "ordinal"):
            measure(rows, notes, "distinct", data, level, args)
    notes.append(f"total run time {time.monotonic() - started:.0f} s")
    report(rows, args, notes, machine)
    failed = any(r["diff"] is not None and r["diff"] > TOLERANCE for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
