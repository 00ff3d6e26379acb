"""Fig. 11 from an evaluation document: PSNR and MS-SSIM against packet loss for every scheme, as a PNG
and as a self-contained HTML page (plot embedded, table of every row).

Both work from the JSON document ``mstvsc-eval`` writes, so a saved run can be re-plotted.
"""

from __future__ import annotations

import base64
import html

from .figures import new_figure, png_bytes

METRICS = (("psnr", "PSNR (dB)"), ("ms_ssim", "MS-SSIM"))


def _style(scheme: str) -> dict:
    """Ours solid, its ablations dashed, classic codecs dotted: the families read apart at a glance."""
    if scheme == "mstvsc":
        return {"linestyle": "-", "linewidth": 2.2, "marker": "o"}
    if scheme.startswith("mstvsc"):
        return {"linestyle": "--", "marker": "s"}
    return {"linestyle": ":", "marker": "^"}


def curves_png(doc: dict) -> bytes:
    """The two panels of Fig. 11 for ``doc["rows"]``."""
    figure = new_figure((11, 4.2))
    axes = figure.subplots(1, 2)
    schemes = list(dict.fromkeys(row["scheme"] for row in doc["rows"]))
    for ax, (key, label) in zip(axes, METRICS):
        drawn = False
        for scheme in schemes:
            points = sorted((r["loss"], r[key]) for r in doc["rows"] if r["scheme"] == scheme and r[key] is not None)
            if points:
                ax.plot(*zip(*points), label=scheme, **_style(scheme))
                drawn = True
        ax.set_xlabel("packet loss rate")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if not drawn:
            ax.text(0.5, 0.5, f"{label} not measured\n(a frame side of 160 px or less)", ha="center",
                    va="center", transform=ax.transAxes)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"{doc['clip']} {doc['size']} @ {doc['fps']:.2f} fps, {doc.get('loss_model', 'bernoulli')} loss",
                    fontsize=10)
    figure.tight_layout()
    return png_bytes(figure)


def report_html(doc: dict, png: bytes) -> str:
    """A page with the plot embedded (base64) and every row in a table."""
    e = html.escape
    columns = ("scheme", "loss", "PSNR dB", "MS-SSIM", "kbps", "measured loss")
    header = "".join(f"<th>{e(name)}</th>" for name in columns)
    body = []
    for row in doc["rows"]:
        ssim = "n/a" if row["ms_ssim"] is None else f"{row['ms_ssim']:.4f}"
        cells = (row["scheme"], f"{row['loss']:g}", f"{row['psnr']:.2f}", ssim, f"{row['kbps']:.1f}",
                 f"{row['measured_loss']:.4f}")
        body.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    facts = [("clip", doc["clip"]), ("size", doc["size"]), ("fps", f"{doc['fps']:.3f}"),
             ("model", doc.get("model", "")), ("loss model", doc.get("loss_model", "bernoulli")),
             ("baseline keyframe interval", doc.get("keyint", ""))]
    fact_list = "".join(f"<li>{e(name)}: {e(str(value))}</li>" for name, value in facts if value != "")
    image = base64.b64encode(png).decode("ascii")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>mstvsc-eval: {e(doc['clip'])}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:0.2em 0.6em;text-align:right}} td:first-child{{text-align:left}}</style>
</head><body>
<h1>Quality against packet loss</h1>
<ul>{fact_list}</ul>
<img alt="PSNR and MS-SSIM against packet loss" src="data:image/png;base64,{image}">
<table><thead><tr>{header}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
</body></html>
"""
