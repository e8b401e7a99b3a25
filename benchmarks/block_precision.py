"""What serving a block-causal recogniser head with a cheaper encoder costs on validation
speakers (issue 26): the head of ``adaptation_curve.py select`` (trained on the row's own
frames, the recipe's validation protocol), scored on the validation speakers' frames computed
as the row's, then with ``--served`` parameters changed (e.g. ``bf16: true``: the transformer's
products in bfloat16), every condition of ``select`` (training statistics, heard, adapted).
Only the validation speakers' frames are computed again, so the difference is the served
encoder's alone; labels that change are counted too.

    python benchmarks/adaptation_curve.py select --models mp_base_3_blocks   # pools first
    python benchmarks/block_precision.py --model mp_base_3_blocks --served '{"bf16": true}'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
from adaptation_curve import (
    ROOT,
    TAUS,
    Pooled,
    best_tau,
    load,
    recipe,
    score,
    selection_split,
    summary,
    test,
    train_head,
)
from results import machine, write_section

from emovox.features import FeatureCache, make_extractor


def served_version(config, corpus, rows: np.ndarray, served: dict) -> Pooled:
    """The clean version with ``rows`` pooled again from frames of the served extractor."""
    extractor = make_extractor(config.features.name,
                               **{**config.features.params, **served})
    cache = FeatureCache(config.features.cache)
    clean = corpus.versions[0]
    count, total, squares = clean.count.copy(), clean.sum.copy(), clean.sumsq.copy()
    utterances = {u.id: u for u in corpus.manifest}
    for i, r in enumerate(rows):
        frames = cache.get(extractor, utterances[corpus.ids[r]]).astype(np.float64)
        count[r], total[r], squares[r] = len(frames), frames.sum(0), np.square(frames).sum(0)
        if i % 100 == 0:
            print(f"served frames: {i}/{len(rows)}", file=sys.stderr, flush=True)
    return Pooled(count, total, squares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mp_base_3_blocks", help="a row of the config")
    parser.add_argument("--served", default='{"bf16": true}',
                        help="features.params changed when serving (JSON)")
    parser.add_argument("--config", type=Path, default=ROOT / "benchmarks" / "cross_corpus.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "adaptation")
    parser.add_argument("--section", default="block_precision")
    args = parser.parse_args()
    served = json.loads(args.served)
    config = recipe(args.model, args.config)
    start = time.time()
    corpus = load(config, args.out / "stats")
    train, checkpoint, chosen = selection_split(corpus)
    head = train_head(config, corpus, corpus.rows(train), corpus.rows(checkpoint))
    rows = corpus.rows(chosen)
    as_trained = test(head, corpus, rows, list(TAUS))
    cheaper = dataclasses.replace(corpus, versions=[served_version(config, corpus, rows, served)])
    as_served = test(head, cheaper, rows, list(TAUS))
    a, b = summary(corpus, rows, as_trained), summary(cheaper, rows, as_served)
    shown = ["training"] + [f"heard {s}s tau=500" for s in (5, 10, 30, 60)] + \
        ["adapted tau=500"]
    lines = [
        f"## Serving a block-causal head with a cheaper encoder ({args.model}, {args.served})",
        "",
        "```",
        f"python benchmarks/block_precision.py --model {args.model} --served '{args.served}'",
        "```",
        "",
        f"{machine()}; {time.time() - start:.0f} s. Validation speakers {', '.join(chosen)} "
        f"({len(rows)} utterances), the head of `adaptation_curve.py select` (trained on the "
        "row's frames); UAR = mean over the validation speakers; `changed` = share of labels "
        "that differ.",
        "",
        "| condition | as trained | served | Δ UAR | labels changed |",
        "|---|---|---|---|---|",
        *[f"| {name} | {score(a[name]):.3f} | {score(b[name]):.3f} | "
          f"{score(b[name]) - score(a[name]):+.3f} | "
          f"{np.mean(as_trained[name]['pred'] != as_served[name]['pred']):.1%} |"
          for name in shown],
        "",
        f"Best tau as trained: {best_tau(a)[0]:g}; served: {best_tau(b)[0]:g}.",
    ]
    write_section(args.section, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
