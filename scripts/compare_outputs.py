#!/usr/bin/env python3
"""Compare the predict outputs of two MAPS for one data group, as the tests do.

Usage: compare_outputs.py EXPECTED_MAPS ACTUAL_MAPS GROUP

For every split-*/best-*/GROUP/ of EXPECTED_MAPS: prediction TSVs are compared cell by cell
(identifiers and labels exactly, numbers within 1e-5 relative), metrics TSVs on their `Metrics`
and `Values` rows (the bootstrap CI rows are random in ClinicaDL). Exits 1 on any difference.
"""
import pathlib
import sys

REL = 1e-5


def cells_match(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return abs(x - y) <= REL * max(abs(x), abs(y)) + 1e-12


def compare(actual: pathlib.Path, expected: pathlib.Path, rows: int | None) -> tuple[bool, float]:
    a = [line.split("\t") for line in actual.read_text().splitlines()][:rows]
    e = [line.split("\t") for line in expected.read_text().splitlines()][:rows]
    worst = 0.0
    if len(a) != len(e) or any(len(x) != len(y) for x, y in zip(a, e)):
        return False, worst
    for ra, re in zip(a, e):
        for ca, ce in zip(ra, re):
            if not cells_match(ca, ce):
                return False, worst
            try:
                x, y = float(ca), float(ce)
                if x != y:
                    worst = max(worst, abs(x - y) / max(abs(x), abs(y)))
            except ValueError:
                pass
    return True, worst


def main() -> int:
    expected_maps, actual_maps, group = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    ok = True
    for expected_dir in sorted(expected_maps.glob(f"split-*/best-*/{group}")):
        rel = expected_dir.relative_to(expected_maps)
        for expected in sorted(expected_dir.glob("*.tsv")):
            actual = actual_maps / rel / expected.name
            if not actual.exists():
                print(f"MISSING  {rel / expected.name}")
                ok = False
                continue
            same, worst = compare(actual, expected, 2 if expected.name.endswith("_metrics.tsv") else None)
            ok &= same
            status = "same" if same else "DIFFERENT"
            print(f"{status:9} {rel / expected.name} (largest relative difference {worst:.1e})")
    print("all outputs match ClinicaDL 1.6.1 within 1e-5" if ok else "outputs differ from ClinicaDL 1.6.1")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
