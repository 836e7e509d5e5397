"""Seeds per group for the mechanism study's questions from a pilot's probe results (issue 26;
docs/PROTOCOL.md §7, "Sizing the mechanism study").

Usage: python power.py RUNS_DIR [--alpha 0.05] [--family 3] [--power 0.8] [--effects 0.05,0.03]

Reads every `<dataset>/<view mode>/seed-<n>/probe.json` under RUNS_DIR (one experiment's folder),
takes the photo probe's top-1 per group, and prints each group's seed standard deviation, the
pooled one (σ, with its one-sided 80 % upper confidence limit), the part test sampling explains
(binomial, from the test split's size), and for each effect δ the fewest seeds n per group for
which a one-sided two-sample t-test at α / family (df 2n − 2, the noncentral t) has the power asked.
Needs SciPy.
"""
import argparse
import json
import math
import pathlib

from scipy import stats


def groups(root):
    out = {}
    for p in sorted(pathlib.Path(root).glob("*/*/seed-*/probe.json")):
        js = json.loads(p.read_text())
        key = f"{p.parts[-4]}/{p.parts[-3]}"
        out.setdefault(key, []).append((js["tasks"]["photo"]["top1"], js["protocol"]["test_size"]))
    return out


def power(n, sigma, delta, alpha):
    df = 2 * n - 2
    crit = stats.t.ppf(1 - alpha, df)
    return stats.nct.sf(crit, df, delta / (sigma * math.sqrt(2 / n)))


def seeds(sigma, delta, alpha, target):
    n = 2
    while power(n, sigma, delta, alpha) < target:
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--family", type=int, default=3)
    ap.add_argument("--power", type=float, default=0.8)
    ap.add_argument("--effects", default="0.05,0.03")
    a = ap.parse_args()
    g = groups(a.runs)
    ss, df = 0.0, 0
    for key, vals in g.items():
        acc = [v for v, _ in vals]
        m = sum(acc) / len(acc)
        sd = math.sqrt(sum((x - m) ** 2 for x in acc) / (len(acc) - 1))
        binom = math.sqrt(m * (1 - m) / vals[0][1])
        print(f"{key:40s} n={len(acc)} mean={100*m:.2f} sd={100*sd:.2f} (test sampling alone {100*binom:.2f})")
        ss += sd * sd * (len(acc) - 1)
        df += len(acc) - 1
    sigma = math.sqrt(ss / df)
    upper = sigma * math.sqrt(df / stats.chi2.ppf(0.2, df))
    alpha = a.alpha / a.family
    print(f"pooled sigma = {100*sigma:.2f} points (df {df}); one-sided 80 % upper limit {100*upper:.2f}")
    for d in map(float, a.effects.split(",")):
        n, nu = seeds(sigma, d, alpha, a.power), seeds(upper, d, alpha, a.power)
        print(f"delta {100*d:.1f} points at alpha {alpha:.4f}: n = {n} per group "
              f"(power {power(n, sigma, d, alpha):.3f}); at the upper limit n = {nu}")


if __name__ == "__main__":
    main()
