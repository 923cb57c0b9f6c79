"""Derive (and check) the minimax polynomial of fortran/elementary.f90's fexp.

fexp evaluates exp(r) on |r| <= ln2/2 as 1 + r + r**2 q(r).  This script finds
q of degree 10 (so exp is approximated by a polynomial of degree 12) that
minimises the largest *relative* error of q against
g(r) = (exp(r) - 1 - r) / r**2 on [-ln2/2, ln2/2], by the Remez exchange
algorithm in 60-digit arithmetic (mpmath).  It then rounds the coefficients to
double precision and measures, still in high precision, the error that the
rounded polynomial gives for exp(r) itself:

    |1 + r + r**2 q_double(r) - exp(r)| / exp(r)

which is the part of fexp's error due to the approximation (the rest is the
rounding of the double-precision evaluation; tests/test_elementary.py measures
the total against a reference).  Run:

    python scripts/derive_exp_minimax.py

and paste the printed coefficients into fortran/elementary.f90 if they change.
Needs mpmath.
"""

from __future__ import annotations

import sys

import mpmath as mp

mp.mp.dps = 60
DEGREE = int(sys.argv[1]) if len(sys.argv) > 1 else 10  # degree of q; exp(r) ~ polynomial of degree DEGREE + 2
H = mp.log(2) / 2               # |r| <= ln2/2 after the Cody-Waite reduction


def g(r):
    """(exp(r) - 1 - r) / r**2, with its limit 1/2 at 0 (series near 0)."""
    if abs(r) < mp.mpf("1e-12"):
        return mp.mpf(1) / 2 + r / 6 + r * r / 24
    return (mp.exp(r) - 1 - r) / (r * r)


def poly(c, r):
    acc = mp.mpf(0)
    for cj in reversed(c):
        acc = acc * r + cj
    return acc


def rel_err(c, r):
    return (poly(c, r) - g(r)) / g(r)


def extrema(c, n_grid=4000):
    """Points where the relative error has its alternating local extrema."""
    xs = [-H + 2 * H * i / n_grid for i in range(n_grid + 1)]
    es = [rel_err(c, x) for x in xs]
    # local extrema of e on the grid, ends included, then refined by golden search
    cand = [0]
    for i in range(1, n_grid):
        if (es[i] - es[i - 1]) * (es[i + 1] - es[i]) <= 0:
            cand.append(i)
    cand.append(n_grid)
    pts = []
    for i in cand:
        if i in (0, n_grid):
            pts.append(xs[i])
            continue
        sign = 1 if es[i] > 0 else -1
        a, b = xs[i - 1], xs[i + 1]
        f = lambda x: -sign * rel_err(c, x)  # noqa: E731  minimise -|e|
        for _ in range(60):
            m1, m2 = a + (b - a) * 0.382, a + (b - a) * 0.618
            if f(m1) < f(m2):
                b = m2
            else:
                a = m1
        pts.append((a + b) / 2)
    # keep one point per sign run: the largest |e| of each run
    runs = []
    for x in pts:
        e = rel_err(c, x)
        if runs and (runs[-1][1] > 0) == (e > 0):
            if abs(e) > abs(runs[-1][1]):
                runs[-1] = (x, e)
        else:
            runs.append((x, e))
    return runs


def remez(degree=DEGREE, iterations=12):
    n = degree + 2  # unknowns: degree+1 coefficients and the levelled error E
    # Chebyshev points as the first reference
    ref = [H * mp.cos(mp.pi * (n - 1 - i) / (n - 1)) for i in range(n)]
    for it in range(iterations):
        # q(x_i) - (-1)^i E g(x_i) = g(x_i)
        a = mp.matrix(n, n)
        b = mp.matrix(n, 1)
        for i, x in enumerate(ref):
            gx = g(x)
            for j in range(degree + 1):
                a[i, j] = x ** j
            a[i, degree + 1] = -((-1) ** i) * gx
            b[i] = gx
        sol = mp.lu_solve(a, b)
        c = [sol[j] for j in range(degree + 1)]
        level = abs(sol[degree + 1])
        runs = extrema(c)
        emax = max(abs(e) for _, e in runs)
        print(f"iteration {it}: levelled error {mp.nstr(level, 6)}, max {mp.nstr(emax, 6)}, "
              f"{len(runs)} alternations")
        if len(runs) < n:
            raise RuntimeError("lost alternation")
        # choose the n consecutive extrema that contain the global maximum
        best = max(range(len(runs) - n + 1),
                   key=lambda s: min(abs(e) for _, e in runs[s:s + n]))
        ref = [x for x, _ in runs[best:best + n]]
        if emax - level < level * mp.mpf("1e-6"):
            break
    return c


def main():
    c = remez()
    cd = [float(cj) for cj in c]
    print("\ncoefficients of q (double, shortest repr):")
    for j, v in enumerate(cd):
        print(f"  c{j} = {v!r}_dp   ! Taylor 1/{j + 2}! = {1 / mp.factorial(j + 2)!s:.17}")
    # check the double-rounded set against exp itself, in high precision
    worst = mp.mpf(0)
    n = 20000
    for i in range(n + 1):
        r = -H + 2 * H * i / n
        approx = 1 + r + r * r * poly([mp.mpf(v) for v in cd], r)
        worst = max(worst, abs(approx - mp.exp(r)) / mp.exp(r))
    print(f"\nmax relative error of 1 + r + r^2 q(r) (double coefficients, exact arithmetic) "
          f"on |r| <= ln2/2: {mp.nstr(worst, 4)} = {mp.nstr(worst / mp.mpf(2) ** -52, 4)} ulp(1)")


if __name__ == "__main__":
    main()
