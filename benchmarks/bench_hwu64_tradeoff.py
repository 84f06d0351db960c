"""The HWU64 trade-off between recall and false masks: person, place and e-mail recall and the share of
clean utterances given a placeholder, per half (tune / held-out), for several common-word thresholds
(``MaskingSpec.common_word_min_share``) with and without generic places (``mask_generic_places``).

    python benchmarks/bench_hwu64_tradeoff.py [--shares 0.002,0.005,0.01,0.02] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    from pipeline.config import MaskingSpec
    from pipeline.pii.evaluate import evaluate_splits, load_records
    from pipeline.pii.masker import Masker

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shares", default="0.002,0.005,0.01,0.02")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    recs = load_records("hwu64")
    rows = []
    for generic in (True, False):
        for share in (float(x) for x in args.shares.split(",")):
            m = Masker(MaskingSpec(common_word_min_share=share, mask_generic_places=generic))
            res = evaluate_splits(records=recs, masker=m)
            for half, r in (("all", res), ("tune", res["splits"]["tune"]), ("held_out", res["splits"]["held_out"])):
                pe, q = r["per_entity"], r["masking_quality"]
                rows.append({"generic_places": generic, "common_word_min_share": share, "half": half,
                             "person_recall": pe["PERSON"]["recall"], "place_recall": pe["GPE"]["recall"],
                             "email_recall": pe["EMAIL_ADDRESS"]["recall"],
                             "false_mask": q["false_mask"]["share"], "label_word_masks": q["label_word_masks"]["share"]})
            if not args.json:
                for row in rows[-3:]:
                    print(f"generic={row['generic_places']!s:5} share={share:<6g} {row['half']:8} person "
                          f"{row['person_recall']:.3f} place {row['place_recall']:.3f} email {row['email_recall']:.3f} "
                          f"false {row['false_mask']:.2%} label {row['label_word_masks']:.2%}", flush=True)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
