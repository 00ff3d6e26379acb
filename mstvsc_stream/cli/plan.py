"""``mstvsc-plan``: the fewest packets for a GOP's data that meet a packet loss or MS-SSIM threshold at a
given symbol error rate (paper, section III), and the Fig. 9 / Fig. 10 surfaces.

    mstvsc-plan --ser 1e-5 --modulation 1 --header 49 --data 155520 --max-loss 0.15
    mstvsc-plan --ser 1e-5 --modulation 2 --data 2880 --min-ms-ssim 0.7 --json

The answer's packet count goes to ``mstvsc-send --packets N``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..net.loss import parse_probability
from ..analysis.plan_figures import Link, loss_surface_png, quality_surface_png
from ..analysis.planner import PlanError, QualityCurve, loss_floor, plan_for_quality, plan_packets
from ..runtime import DEFAULT_MODEL, find_model
from .common import check_output_path, checked, non_negative_int, parser, positive_int, run_main, setup_logging

PAPER_HEADER = 3 + 8 + 20 + 18  # application + UDP + IPv4 + Ethernet header and FCS (section V-A)
PAPER_QUALITY_PLANE = 0.7  # Fig. 10's MS-SSIM plane, drawn when no --min-ms-ssim is given


def build_parser() -> argparse.ArgumentParser:
    p = parser("mstvsc-plan", "Choose the number of packets N_p for a GOP's data from the symbol error rate "
                              "(eq. 1-10 of the MSTVSC paper).")
    p.add_argument("--ser", required=True, type=checked(parse_probability), metavar="P", help="symbol error rate")
    p.add_argument("--modulation", required=True, type=checked(positive_int), metavar="M",
                   help="bits per symbol (modulation order 2^M; 1 = BPSK)")
    p.add_argument("--header", type=checked(non_negative_int), default=PAPER_HEADER, metavar="BYTES",
                   help=f"header and trailer bytes per packet, all layers (default {PAPER_HEADER})")
    p.add_argument("--data", required=True, type=checked(positive_int), metavar="BYTES",
                   help="data bytes to send (e.g. one GOP's packed codes)")
    threshold = p.add_mutually_exclusive_group()
    threshold.add_argument("--max-loss", type=checked(parse_probability), metavar="P",
                           help="packet loss threshold (default 0.15)")
    threshold.add_argument("--min-ms-ssim", type=float, metavar="Q",
                           help="MS-SSIM threshold, through the measured curve of MS-SSIM against loss")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--curve", type=Path, help="mstvsc-eval JSON giving the MS-SSIM curve (its mstvsc rows)")
    source.add_argument("--model", help=f"model whose card gives the curve (default {DEFAULT_MODEL})")
    p.add_argument("--json", action="store_true", help="print only {packets, payload, loss_rate, total_bytes}")
    p.add_argument("--plot-loss", type=Path, metavar="PNG", help="write the Fig. 9 surface (packet loss)")
    p.add_argument("--plot-quality", type=Path, metavar="PNG", help="write the Fig. 10 surface (MS-SSIM)")
    return p


def load_curve(args: argparse.Namespace) -> tuple[QualityCurve, str]:
    """f_p from an eval JSON's mstvsc rows, or from a model card's measured quality rows."""
    if args.curve is not None:
        where = str(args.curve)
        try:
            document = json.loads(args.curve.read_text())
        except ValueError as exc:
            raise PlanError(f"{where}: not JSON ({exc})") from None
    else:
        card = find_model(args.model)
        document, where = card.data.get("quality", {}), f"the {card.name} card"
    try:
        points = [(float(row["loss"]), float(row["ms_ssim"])) for row in document["rows"]
                  if row.get("scheme", "mstvsc") == "mstvsc" and row.get("ms_ssim") is not None]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"{where}: no readable quality rows ({exc!r})") from None
    if not points:
        raise PlanError(f"no MS-SSIM measurements in {where}")
    return QualityCurve.from_points(points), where


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    check_output_path(p, "--plot-loss", args.plot_loss)
    check_output_path(p, "--plot-quality", args.plot_quality)
    setup_logging(args)
    if args.min_ms_ssim is None and (args.curve or args.model) and not args.plot_quality:
        p.error("--curve and --model give the MS-SSIM curve for --min-ms-ssim or --plot-quality")

    def body() -> int:
        link = Link(args.modulation, args.header, args.data)
        needs_curve = args.min_ms_ssim is not None or args.plot_quality is not None
        curve, where = load_curve(args) if needs_curve else (None, "")
        if args.min_ms_ssim is not None:
            max_loss, plan = plan_for_quality(curve, args.min_ms_ssim, args.ser, args.modulation, args.header,
                                              args.data)
            threshold = f"MS-SSIM >= {args.min_ms_ssim:g}, so packet loss <= {max_loss:.4g} (f_p from {where})"
        else:
            max_loss = 0.15 if args.max_loss is None else args.max_loss
            plan = plan_packets(args.ser, args.modulation, args.header, args.data, max_loss)
            threshold = f"packet loss <= {max_loss:g}"
        if args.plot_loss:
            args.plot_loss.write_bytes(loss_surface_png(link, args.ser, max_loss))
        if args.plot_quality:
            gamma = PAPER_QUALITY_PLANE if args.min_ms_ssim is None else args.min_ms_ssim
            args.plot_quality.write_bytes(quality_surface_png(link, args.ser, curve, gamma))
        if args.json:
            print(json.dumps(plan.as_dict()))
            return 0
        headers = plan.total_bytes - args.data
        print(f"SER {args.ser:g}, {args.modulation} bit(s)/symbol, {args.header}-byte headers, {args.data} data bytes")
        print(f"threshold  {threshold}")
        print(f"packets    {plan.packets}  (mstvsc-send --packets {plan.packets})")
        print(f"payload    {plan.payload} B, packets of {plan.payload + args.header} B")
        floor = loss_floor(args.ser, args.header, args.modulation)
        print(f"loss rate  {plan.loss_rate:.4g}  (floor {floor:.4g}, eq. 7)")
        if curve is not None:
            print(f"MS-SSIM    {float(curve(plan.loss_rate)):.4f} expected (f_p)")
        print(f"total      {plan.total_bytes} B ({headers} B of headers, {100 * headers / plan.total_bytes:.2f}%)")
        return 0

    return run_main("mstvsc-plan", body)


if __name__ == "__main__":
    sys.exit(main())
