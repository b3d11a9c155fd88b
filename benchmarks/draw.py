"""How long drawing takes on a big spec: building the graph, and rendering it with Graphviz.

    python benchmarks/draw.py                  # 100 areas, 100 steps
    python benchmarks/draw.py --areas 30 --steps 30
"""

from __future__ import annotations

import argparse
import tempfile
import time

from common import write_json
from frontend import sheet_spec

from cortexgraph import draw
from cortexgraph.drawing import VIEWS, render
from cortexgraph.source import parse_text
from cortexgraph.spec import parse_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--areas", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    spec = parse_spec(*parse_text(sheet_spec(args.areas, args.steps), "bench.yaml"))
    draw(spec, "rolled")  # warm-up: the first rolled drawing imports torch (for parameter counts)
    print(f"{args.areas} areas, {args.steps} steps")
    print(f"{'view':>9} {'graph':>8} {'nodes':>7} {'render svg':>11} {'total':>8}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for view in VIEWS:
            t0 = time.perf_counter()
            graph = draw(spec, view, max_elements=1 << 30)  # big on purpose: past the command's default bound
            t1 = time.perf_counter()
            render(graph, f"{tmp}/{view}.svg")
            t2 = time.perf_counter()
            nodes = sum(1 for line in graph.body if " [" in line and "->" not in line)
            rows.append({"view": view, "graph_s": t1 - t0, "nodes": nodes, "render_s": t2 - t1, "total_s": t2 - t0})
            print(f"{view:>9} {t1 - t0:7.2f}s {nodes:7d} {t2 - t1:10.2f}s {t2 - t0:7.2f}s")
    write_json(args.json, {"draw": rows, "areas": args.areas, "steps": args.steps})


if __name__ == "__main__":
    main()
