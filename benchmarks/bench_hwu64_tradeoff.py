"""The HWU64 trade-off between recall and false masks: person, place and e-mail recall and the share of
clean utterances given a placeholder, per half (tune / held-out), for the default masking settings and one
change at a time: the common-word threshold (``MaskingSpec.common_word_min_share``), generic places
(``mask_generic_places``), names resting on rare unknown words (``lower_case_rare_names``).

    python benchmarks/bench_hwu64_tradeoff.py [--shares 0.003,0.03] [--json]
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
    ap.add_argument("--shares", default="0.003,0.03", help="common-word thresholds to try besides the default")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    recs = load_records("hwu64")
    rows = []
    points = [("default", {})] + [(f"common_word_min_share={x}", {"common_word_min_share": float(x)})
                                  for x in args.shares.split(",") if x]
    points += [("mask_generic_places=False", {"mask_generic_places": False}),
               ("lower_case_rare_names=True", {"lower_case_rare_names": True})]
    for name, change in points:
        spec = MaskingSpec(**change)
        res = evaluate_splits(records=recs, masker=Masker(spec))
        for half, r in (("all", res), ("tune", res["splits"]["tune"]), ("held_out", res["splits"]["held_out"])):
            pe, q = r["per_entity"], r["masking_quality"]
            rows.append({"setting": name, "half": half, "person_recall": pe["PERSON"]["recall"],
                         "place_recall": pe["GPE"]["recall"], "email_recall": pe["EMAIL_ADDRESS"]["recall"],
                         "false_mask": q["false_mask"]["share"], "label_word_masks": q["label_word_masks"]["share"]})
            if not args.json:
                row = rows[-1]
                print(f"{name:28} {half:8} person {row['person_recall']:.3f} place {row['place_recall']:.3f} "
                      f"email {row['email_recall']:.3f} false {row['false_mask']:.2%} "
                      f"label {row['label_word_masks']:.2%}", flush=True)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
