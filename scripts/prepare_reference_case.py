#!/usr/bin/env python3
"""Copy a reference case of ../shared/reference to a work folder, ready for `predict`.

Usage: prepare_reference_case.py CASE_DIR DEST [GROUP]

The copy has the placeholder /REFERENCE_CASE replaced by DEST in every text file, and what
`clinicadl predict` wrote for GROUP (default: test) removed: maps/groups/GROUP/ and every
maps/split-*/best-*/GROUP/, so that the MAPS is in its "before predict" state. The predict
arguments of cmd.txt (with DEST substituted) are printed on stdout, one per line.
"""
import argparse
import pathlib
import shlex
import shutil


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("case", type=pathlib.Path, help="a case folder, e.g. ../shared/reference/patch_classification")
    parser.add_argument("dest", type=pathlib.Path, help="the work folder to create (replaced if it exists)")
    parser.add_argument("group", nargs="?", default="test", help="the data group to reset (default: test)")
    args = parser.parse_args()
    case, dest, group = args.case, args.dest.resolve(), args.group
    if not (case / "cmd.txt").is_file():
        parser.error(f"{case} is not a reference case folder (it has no cmd.txt)")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(case, dest, ignore=shutil.ignore_patterns("logs"))
    for path in [dest, *dest.rglob("*")]:  # shared/ is read-only; the copy must not be
        path.chmod(path.stat().st_mode | 0o200)
    for path in dest.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".tsv", ".txt", ".log", ".md"}:
            text = path.read_text(errors="surrogateescape")
            if "/REFERENCE_CASE" in text:
                path.write_text(text.replace("/REFERENCE_CASE", str(dest)), errors="surrogateescape")
    maps = dest / "maps"
    shutil.rmtree(maps / "groups" / group, ignore_errors=True)
    for results in maps.glob(f"split-*/best-*/{group}"):
        shutil.rmtree(results)
    command = next(
        line for line in (dest / "cmd.txt").read_text().splitlines() if line.startswith("clinicadl predict")
    )
    for arg in shlex.split(command)[2:]:
        print(arg)


if __name__ == "__main__":
    main()
