"""Export a vetted policy as a bundle (``mmgym-export``; the format: docs/deploy.md).

    mmgym-export run=runs/train/<time> out=bundles/demo
    mmgym-export run=<run dir> out=<bundle dir> force=true       # unvetted or failed policy
    mmgym-export run=<run dir> out=<bundle dir> overwrite=true   # replace an existing bundle
    mmgym-export baseline=adaptive env=volatile vetting=<vetting.json> out=<bundle dir>

The settings are conf/export.yaml (schema ``agents.config.ExportJob``); unknown keys are
refused. Prints the bundle's path, the vetting verdict and the measured parity error.
Exit codes: 0 exported; 2 bad input or a refused export, with a one-line message on stderr.
"""

from __future__ import annotations

import sys

from agents.cli import job_main
from agents.config import ExportJob
from agents.deploy.bundle import Bundle
from agents.deploy.export import export_baseline, export_bundle
from mmgym.scenarios import make_params


def export(job: ExportJob) -> Bundle:
    """Export what ``job`` names; ValueError (ExportError, BundleError) for bad input."""
    if (job.run is None) == (job.baseline is None):
        raise ValueError("give exactly one of run=<training run dir> and baseline=<name>")
    if job.run is not None:
        return export_bundle(
            job.run, job.out, force=job.force, vetting=job.vetting, overwrite=job.overwrite
        )
    assert job.baseline is not None
    params = make_params(job.env.scenario, **job.env.overrides)
    return export_baseline(
        job.baseline,
        job.out,
        params,
        force=job.force,
        vetting=job.vetting,
        overwrite=job.overwrite,
    )


def describe(bundle: Bundle) -> str:
    """The bundle's path, verdict and parity error, one per line."""
    m = bundle.manifest
    v = m.vetting
    verdict = v.verdict or "none"
    if v.forced:
        verdict += f" (exported with force=true: {v.problem})"
    if m.network is None:
        parity = "none (a baseline bundle has no network)"
    else:
        p = m.network.parity
        parity = f"{p.max_abs_error:.3g} max |ONNX Runtime - SB3| over {p.observations} obs"
    return f"bundle: {bundle.path}\nkind: {m.kind}\nverdict: {verdict}\nparity: {parity}"


def main(argv: list[str]) -> int:
    """Run the export; return the exit code."""

    def run(job: ExportJob) -> int:
        print(describe(export(job)))
        return 0

    return job_main("mmgym-export", "export", ExportJob, argv, run, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
