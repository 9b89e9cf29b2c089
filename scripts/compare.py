"""Compare training runs from their TensorBoard logs: learning curves and a final table.

python scripts/compare.py runs/multirun/train/<time> --out runs/compare
python scripts/compare.py runs/demo/<time>          # the demo's folder: finds train/
python scripts/compare.py runs/train/* --tags eval/learned/pnl mm/inventory_abs

Run directories are found at or below the paths given; runs that cannot be compared (no
summary.json, no final evaluation) are left out, each with the reason.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agents.compare import compare


def main() -> None:
    """Write the comparison report and print where it is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "runs", nargs="+", type=Path, help="training run directories, or folders holding them"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    parser.add_argument("--tags", nargs="*", help="TensorBoard tags to plot")
    args = parser.parse_args()
    try:
        paths = compare(args.runs, args.out, args.tags)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    print(paths["report"].read_text())
    for name, path in paths.items():
        print(f"  {name:8s} {path}")


if __name__ == "__main__":
    main()
