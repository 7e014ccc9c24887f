"""``nas mixers [--plugin MODULE] [--json]`` and ``nas mixers --check module:Name``: the declared token
mixers, and the mixer contract run on one of them."""
from __future__ import annotations

import argparse
from typing import Any

from nas.cli.common import print_json, print_table


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "mixers",
        help="list the token mixers, or check one against the mixer contract",
        description="List the token mixers (built in, from --plugin modules and from installed packages' "
                    "nas.mixers entry points) with their layout letters and stage fields; with --check, run the "
                    "mixer contract (shapes, gradients, FLOPs, size guard, export) on one and print the table.",
    )
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it declares mixers); may be given several times")
    p.add_argument("--check", metavar="MODULE:NAME",
                   help="check a mixer: MODULE:NAME (a mixer name, MixerSpec or class in MODULE) or a declared name")
    p.add_argument("--json", action="store_true", help="print the list (or the check's rows) as JSON")
    p.set_defaults(func=run)


def describe() -> list[dict[str, Any]]:
    """One entry per declared mixer, in registry order."""
    from nas.mixers import mixer_specs

    return [
        {"name": s.name, "letter": s.letter, "plugin": s.plugin, "module": s.module_path,
         "fields": {f.name: {"kind": f.kind, "default": None if callable(f.default) else f.default,
                             "range": [f.low, f.high] if f.kind in ("int", "float") else None,
                             "choices": list(f.choices) or None, "describe": f.describe(), "doc": f.doc}
                    for f in s.all_fields},
         "residual": s.residual, "has_mlp": s.has_mlp, "norm": s.norm, "supports_stride": s.supports_stride,
         "attention": s.attention, "estimate": "declared" if s.estimate is not None else "meta device",
         "flop_handles": sorted(s.flop_handles), "description": s.description, "source": s.source}
        for s in mixer_specs()
    ]


def run(args: argparse.Namespace) -> int:
    from nas.mixers import load_plugins

    load_plugins(args.plugin, where="--plugin")
    if args.check:
        return _check(args.check, args.json)
    mixers = describe()
    if args.json:
        print_json(mixers)
        return 0
    rows = [{"mixer": m["name"], "letter": m["letter"], "from": m["plugin"] or "nas",
             "fields": "; ".join(f"{name}: {f['describe']}" for name, f in m["fields"].items()) or "-",
             "block": ("x + mixer(x)" if m["residual"] else "x = mixer(x)") + (", + MLP" if m["has_mlp"] else "")
                      + f", {m['norm']} norm"}
            for m in mixers]
    print_table(rows, title="token mixers (T in a layout stands for transformer_mixer)")
    return 0


def _check(target: str, as_json: bool) -> int:
    from nas.models.contract import check_mixer, resolve_mixer

    spec = resolve_mixer(target)
    rows = check_mixer(spec)
    failed = [r for r in rows if not r.ok]
    if as_json:
        print_json({"mixer": spec.name, "ok": not failed, "rows": [r.__dict__ for r in rows]})
    else:
        print_table([{"check": r.check, "case": r.case, "result": "ok" if r.ok else "FAIL", "detail": r.detail}
                     for r in rows], title=f"mixer contract: {spec.name} ({spec.module_path})")
        print(f"{spec.name}: {len(rows) - len(failed)} of {len(rows)} checks pass"
              + (f"; failing: {', '.join(dict.fromkeys(r.check for r in failed))}" if failed else ""))
    return 1 if failed else 0
