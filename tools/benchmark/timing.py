"""Timing and statistics: median/min/max over repetitions, CPU seconds, peak RSS, load, paired alternation."""
import os
import statistics
import sys
import time


PAIR_PAUSE_S = 0.2  # --paired: idle time before each step; the libraries' spinning threads settle by then


# --------------------------------------------------------------------------- timing helpers
def time_repeats(fn, repeat, warmup, steps):
    """Wall-clock and process CPU seconds per step for ``repeat`` repetitions of ``steps`` calls,
    after ``warmup`` repetitions."""
    for _ in range(warmup * steps):
        fn()
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            fn()
        walls.append((time.perf_counter() - wall) / steps)
        cpus.append((time.process_time() - cpu) / steps)
    return walls, cpus


def summarize(times, batch):
    """Images/s: median (from the median step time), min, max and the per-repetition values; and
    the median CPU seconds per step over all threads (a busy machine inflates wall time, not this)."""
    walls, cpus = times
    rates = sorted(batch / t for t in walls)
    return {"median": round(batch / statistics.median(walls), 3), "min": round(rates[0], 3),
            "max": round(rates[-1], 3), "runs": [round(r, 3) for r in rates],
            "cpu_s_per_step": round(statistics.median(cpus), 4)}


def peak_rss_mb():
    try:
        import resource
    except ImportError:  # not on Linux/macOS
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def first_line(err):
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(err).__name__


def load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def alternate(ours, theirs, pairs, warmup, pause=PAIR_PAUSE_S, clock=time.perf_counter, sleep=time.sleep):
    """Time ``ours`` and ``theirs`` step for step: ``pairs`` pairs after ``warmup`` untimed ones,
    the order swapped every pair, ``pause`` seconds before each step so that neither library's idle
    threads are still spinning into the other's step. Returns (our times, their times)."""
    for _ in range(warmup):
        ours()
        theirs()
    times = {ours: [], theirs: []}
    for pair in range(pairs):
        for step in ((ours, theirs) if pair % 2 == 0 else (theirs, ours)):
            sleep(pause)
            start = clock()
            step()
            times[step].append(clock() - start)
    return times[ours], times[theirs]


def summarize_pairs(ours, theirs, batch):
    """The twin's step time over ours for every pair (> 1: we are faster): median, min, max."""
    ratios = sorted(t / o for o, t in zip(ours, theirs))
    return {"ratio": round(statistics.median(ratios), 3), "min": round(ratios[0], 3), "max": round(ratios[-1], 3),
            "ratios": [round(r, 3) for r in ratios], "ours_img_s": round(batch / statistics.median(ours), 3),
            "twin_img_s": round(batch / statistics.median(theirs), 3)}
