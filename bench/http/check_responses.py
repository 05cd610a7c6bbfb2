#!/usr/bin/env python3
"""check_responses.py: checks that V2 infer answers carry the expected predictions.

    check_responses.py EXPECTED_JSON NAME=RESPONSE_JSON...

EXPECTED_JSON is a flat list of floats (make_bodies.py writes it from XGBoost itself). Each
RESPONSE_JSON is a server's V2 answer; its first output's data (flat or nested) must have the
same length and every value within 1e-6 of the expected one. Prints one line per server and
exits 1 when any answer is wrong. Standard library only.
"""

import json
import math
import sys

TOLERANCE = 1e-6


def flatten(value):
    if isinstance(value, list):
        for item in value:
            yield from flatten(item)
    else:
        yield value


def check(expected, path):
    """Returns (ok, message)."""
    try:
        with open(path, "rb") as f:
            answer = json.load(f)
        data = list(flatten(answer["outputs"][0]["data"]))
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        return False, f"not a V2 answer ({type(e).__name__}: {e})"
    if len(data) != len(expected):
        return False, f"{len(data)} values, expected {len(expected)}"
    worst = 0.0
    for got, want in zip(data, expected):
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return False, f"non-numeric value {got!r}"
        diff = abs(float(got) - want)
        if math.isnan(diff):
            return False, "NaN in the answer"
        worst = max(worst, diff)
    if worst > TOLERANCE:
        return False, f"max |diff| {worst:.3g} > {TOLERANCE:g}"
    return True, f"{len(data)} predictions, max |diff| {worst:.3g}"


def main():
    if len(sys.argv) < 3 or any("=" not in a for a in sys.argv[2:]):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    with open(sys.argv[1]) as f:
        expected = [float(v) for v in json.load(f)]
    failed = False
    for arg in sys.argv[2:]:
        name, path = arg.split("=", 1)
        ok, message = check(expected, path)
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {message}")
        failed |= not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
