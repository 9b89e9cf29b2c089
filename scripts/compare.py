"""Compare training runs from their TensorBoard logs: learning curves and a final table.

python scripts/compare.py runs/multirun/train/<time>/* --out runs/compare
python scripts/compare.py runs/train/* --tags eval/learned/pnl mm/inventory_abs
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agents.compare import compare


def main() -> None:
    """Write the comparison report and print where it is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="training run directories")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    parser.add_argument("--tags", nargs="*", help="TensorBoard tags to plot")
    args = parser.parse_args()
    runs = [r for r in args.runs if (r / "summary.json").is_file()]
    skipped = sorted(set(args.runs) - set(runs))
    if skipped:
        print(f"skipping {len(skipped)} path(s) without summary.json: {[str(p) for p in skipped]}")
    paths = compare(runs, args.out, args.tags)
    print(paths["report"].read_text())
    for name, path in paths.items():
        print(f"  {name:8s} {path}")


if __name__ == "__main__":
    main()
