"""Print the Avellaneda-Stoikov (2008) table as simulated by mmgym, published values in brackets.

python scripts/as2008.py [--gammas 0.1 0.01 1.0] [--seed 2008]
"""

from __future__ import annotations

import argparse

from agents.experiments.as2008 import markdown_table


def main() -> None:
    """Simulate and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gammas", nargs="+", type=float, default=[0.1, 0.01])
    parser.add_argument("--seed", type=int, default=2008)
    args = parser.parse_args()
    print(markdown_table(tuple(args.gammas), seed=args.seed))


if __name__ == "__main__":
    main()
