"""Label-consistency checks for masked, deduplicated tickets.

Steps, all tables in and tables out:
  1. `normalize_labels`: map each exported label string to the taxonomy (exact, spelling variant,
     configured alias, declared rename) or mark it unknown.
  2. `detect_renames`: an unknown label used only after (or only before) a known label, whose texts
     a classifier trained on the known labels assigns to that label, is an undeclared rename.
  3. `operator_conflicts`: the same exact text or near-duplicate cluster labelled differently.
  4. `label_issues`: cross-validated out-of-sample probabilities (TF-IDF word + char n-grams,
     logistic regression) ranked by cleanlab's `find_label_issues`.
  5. `apply_policy`: flag or drop; unknown labels and dropped rows go to a rejected table with a reason.
`check_labels` runs them all and returns the labelled table and a report.

Label decisions on published tickets are frozen: given `frozen` (ticket id -> the label a published
dataset version gave it), those tickets keep that label and are never rejected, whatever a later
rename detection, conflict or label-issue decision says; a detected rename applies to new tickets
only, and the report counts the published tickets whose decision would have changed.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
import warnings

import numpy as np
import pandas as pd

from pipeline.config import DedupSpec, LabelCheckSpec, TaxonomySpec

__all__ = [
    "label_key",
    "normalize_labels",
    "detect_renames",
    "apply_renames",
    "operator_conflicts",
    "label_issues",
    "apply_policy",
    "check_labels",
]

_SEP = re.compile(r"[\s_\-]+")


def label_key(raw) -> str | None:
    """Spelling-insensitive key of a label: NFKC, casefold, runs of space/_/- -> '_', stripped."""
    if raw is None or (isinstance(raw, float) and np.isnan(raw)):
        return None
    k = _SEP.sub("_", unicodedata.normalize("NFKC", str(raw)).casefold()).strip("_")
    return k or None


# --------------------------------------------------------------------------------------------
# 1. vocabulary
# --------------------------------------------------------------------------------------------
def _resolve(taxonomy: TaxonomySpec, raw) -> tuple[str | None, str]:
    canon = {label_key(n): n for n in taxonomy.labels}
    if raw in taxonomy.labels:
        return raw, "ok"
    k = label_key(raw)
    if k is None:
        return None, "unknown"
    if k in canon:
        return canon[k], "variant"
    aliases = {label_key(a): n for n, ls in taxonomy.labels.items() for a in ls.aliases}
    if k in aliases:
        return aliases[k], "alias"
    renames = {label_key(o): canon.get(label_key(n)) for o, n in taxonomy.renames.items()}
    if renames.get(k):
        return renames[k], "renamed"
    return None, "unknown"


def normalize_labels(df: pd.DataFrame, taxonomy: TaxonomySpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add `label` (canonical or None) and `label_status` ('ok'|'variant'|'alias'|'renamed'|'unknown').

    Returns (frame, variants) where variants lists every raw spelling that is not exactly a
    taxonomy name: raw, label, status, count (most frequent first).
    """
    out = df.copy()
    raw = out["label_raw"]
    uniq = pd.unique(raw.dropna())
    mapping = {r: _resolve(taxonomy, r) for r in uniq}
    out["label"] = raw.map(lambda r: mapping[r][0] if r in mapping else None).astype(object)
    out["label_status"] = raw.map(lambda r: mapping[r][1] if r in mapping else "unknown")
    out.loc[out["label"].isna(), "label"] = None
    counts = raw.value_counts(dropna=False)
    rows = [
        {"raw": r, "label": mapping.get(r, (None, "unknown"))[0], "status": mapping.get(r, (None, "unknown"))[1],
         "count": int(c)}
        for r, c in counts.items()
        if mapping.get(r, (None, "unknown"))[1] != "ok"
    ]
    variants = pd.DataFrame(rows, columns=["raw", "label", "status", "count"])
    variants = variants.sort_values(["count", "raw"], ascending=[False, True], key=None, kind="mergesort",
                                    na_position="last").reset_index(drop=True)
    return out, variants


# --------------------------------------------------------------------------------------------
# text model shared by rename detection and label issues
# --------------------------------------------------------------------------------------------
def _vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    # Word uni/bi-grams carry the intent; char n-grams inside words survive typos and inflection.
    # The vocabulary and idf are fitted once on all texts (no labels involved), not per fold.
    return make_union(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=3, sublinear_tf=True, max_features=20000),
    )


def _features(texts: pd.Series, vec=None):
    vec = _vectorizer() if vec is None else vec
    return vec.fit_transform(texts.fillna("").astype(str)).astype(np.float32)


def _classifier(seed: int):
    from sklearn.linear_model import SGDClassifier

    # Logistic regression (log loss) fitted by SGD: on 77 classes and ~10k rows, 5 folds take
    # ~10 s where the lbfgs solver of LogisticRegression took minutes for the same accuracy (~0.90).
    return SGDClassifier(loss="log_loss", alpha=2e-5, max_iter=5, tol=None, random_state=seed)


def _fit(clf, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter is deliberately small: ConvergenceWarning
        clf.fit(X, y)
    return clf


# --------------------------------------------------------------------------------------------
# 2. renames
# --------------------------------------------------------------------------------------------
def detect_renames(df: pd.DataFrame, taxonomy: TaxonomySpec, spec: LabelCheckSpec, model=None) -> pd.DataFrame:
    """Undeclared renames: unknown labels time-disjoint from a known label that predicts their texts.

    For each unknown label (spellings grouped by `label_key`) with at least `spec.rename_min_rows`
    rows, a classifier trained on the rows with a known label predicts the unknown label's texts. If
    one known label takes >= `spec.rename_min_similarity` of them and the two labels are used in
    disjoint periods (at most `spec.rename_max_overlap` of the known label's rows on the wrong side
    of the switch), it is a rename. direction 'after': the unknown name replaced a taxonomy name
    (taxonomy out of date); 'before': an old unknown name was replaced by a taxonomy name.
    Columns: old, new, label (taxonomy label the rows map to), switch_date, n_rows,
    evidence_share, overlap_share, direction, raw_spellings.
    `model` (a stored `LabelModel`, fitted on the labelled rows of an earlier full check) predicts the
    unknown label's texts instead of a classifier fitted here.
    """
    cols = ["old", "new", "label", "switch_date", "n_rows", "evidence_share", "overlap_share", "direction",
            "raw_spellings"]
    if "label" not in df.columns:
        df, _ = normalize_labels(df, taxonomy)
    unk = df[(df["label_status"] == "unknown") & df["label_raw"].notna()].copy()
    unk["key"] = unk["label_raw"].map(label_key)
    unk = unk[unk["key"].notna()]
    sizes = unk.groupby("key").size()
    cand_keys = sorted(sizes[sizes >= spec.rename_min_rows].index)
    known = df[df["label"].notna()]
    if not cand_keys or known["label"].nunique() < 2:
        return pd.DataFrame(columns=cols)

    if model is not None:
        pred = pd.Series(model.predict(model.features(unk["text"])), index=unk.index)
    else:
        texts = pd.concat([known["text"], unk["text"]], ignore_index=True)
        X = _features(texts)
        Xk, Xu = X[: len(known)], X[len(known):]
        clf = _fit(_classifier(spec.seed), Xk, known["label"].to_numpy())
        pred = pd.Series(clf.predict(Xu), index=unk.index)

    created = pd.to_datetime(df["created_at"], utc=True)
    recs = []
    for key in cand_keys:
        rows = unk[unk["key"] == key]
        share = pred.loc[rows.index].value_counts(normalize=True).sort_index()
        share = share.sort_values(ascending=False, kind="mergesort")
        target, evidence = share.index[0], float(share.iloc[0])
        if evidence < spec.rename_min_similarity:
            continue
        t_unk = created.loc[rows.index]
        t_known = created.loc[known.index[known["label"] == target]]
        if len(t_known) == 0:
            continue
        after = float((t_known >= t_unk.min()).mean())  # known label still used once the new name appeared
        before = float((t_known <= t_unk.max()).mean())  # known label already used while the old name lived
        if after <= spec.rename_max_overlap:
            direction, overlap, switch, old, new = "after", after, t_unk.min(), target, _spelling(rows)
        elif before <= spec.rename_max_overlap:
            direction, overlap, switch, old, new = "before", before, t_known.min(), _spelling(rows), target
        else:
            continue
        recs.append({
            "old": old, "new": new, "label": target, "switch_date": switch, "n_rows": int(len(rows)),
            "evidence_share": round(evidence, 4), "overlap_share": round(overlap, 4), "direction": direction,
            "raw_spellings": sorted(rows["label_raw"].astype(str).unique()),
        })
    return pd.DataFrame(recs, columns=cols)


def _spelling(rows: pd.DataFrame) -> str:
    vc = rows["label_raw"].astype(str).value_counts()
    return str(sorted(vc[vc == vc.max()].index)[0])


def apply_renames(df: pd.DataFrame, renames: pd.DataFrame) -> pd.DataFrame:
    """Map rows carrying a detected renamed label to its taxonomy label, status 'renamed'."""
    out = df.copy()
    for r in renames.itertuples():
        mask = (out["label_status"] == "unknown") & out["label_raw"].isin(r.raw_spellings)
        out.loc[mask, "label"] = r.label
        out.loc[mask, "label_status"] = "renamed"
    return out


# --------------------------------------------------------------------------------------------
# 3. conflicts
# --------------------------------------------------------------------------------------------
def operator_conflicts(df: pd.DataFrame, clusters: pd.DataFrame) -> pd.DataFrame:
    """Exact groups and near-duplicate clusters whose tickets carry different (canonical) labels.

    Columns of `pipeline.data.dedup.cluster_label_conflicts` plus `cross_operator`: the disagreeing
    labels come from different operators (False: one operator labelled the same text two ways).
    """
    from pipeline.data.dedup import cluster_label_conflicts

    cols = [c for c in ("ticket_id", "label", "label_raw", "operator_id") if c in df.columns]
    m = df[cols].merge(clusters[["ticket_id", "exact_group", "cluster_id"]], on="ticket_id", how="inner")
    conf = cluster_label_conflicts(m, label_col="label")
    if conf.empty:
        return conf.assign(cross_operator=pd.Series(dtype=bool))
    by_id = m.set_index("ticket_id")
    cross = []
    for tids in conf["ticket_ids"]:
        g = by_id.loc[tids]
        g = g[g["label"].notna()]
        ops_per_label = g.groupby("label")["operator_id"].agg(lambda s: frozenset(s.dropna().astype(str)))
        all_ops = frozenset().union(*ops_per_label)
        cross.append(len(all_ops) > 1)
    return conf.assign(cross_operator=cross)


# --------------------------------------------------------------------------------------------
# 4. label issues
# --------------------------------------------------------------------------------------------
def _cluster_folds(d: pd.DataFrame, y: np.ndarray, spec: LabelCheckSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds that keep each cluster in one fold.

    sklearn's StratifiedGroupKFold does this with a greedy search that took 8 s on 10k rows in
    ~10k groups; since almost every cluster is small, a StratifiedKFold over one row per cluster
    (labelled by that row) followed by mapping the members to their cluster's fold is as good here.
    """
    from sklearn.model_selection import StratifiedKFold

    skf = StratifiedKFold(spec.cv_folds, shuffle=True, random_state=spec.seed)
    if "cluster_id" not in d.columns or d["cluster_id"].isna().all():
        return list(skf.split(np.zeros(len(y)), y))
    groups = d["cluster_id"].fillna(d["ticket_id"]).to_numpy()
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    fold_of_group = np.empty(len(first), dtype=int)
    gy = y[first]
    # a class with fewer clusters than folds cannot be stratified: spread its clusters round-robin
    counts = np.bincount(gy, minlength=y.max() + 1)
    ok = counts[gy] >= spec.cv_folds
    for k, (_, te) in enumerate(skf.split(np.zeros(ok.sum()), gy[ok])):
        fold_of_group[np.flatnonzero(ok)[te]] = k
    fold_of_group[~ok] = np.arange((~ok).sum()) % spec.cv_folds
    fold = fold_of_group[inverse]
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(spec.cv_folds)]


def label_issues(df: pd.DataFrame, spec: LabelCheckSpec, return_all: bool = False, progress=None) -> pd.DataFrame:
    """Likely wrong labels, from cross-validated out-of-sample probabilities and cleanlab.

    Rows with no `label` and classes with fewer than max(min_class_size, cv_folds) rows are not
    scored (they cannot be stratified across folds). When `df` has a `cluster_id` column the folds
    keep each cluster together, so a near-duplicate twin cannot vouch for a wrong label.
    Returns the issues, most likely first: ticket_id, given_label, suggested_label, label_quality
    (cleanlab self-confidence: probability of the given label), rank. With return_all=True every
    scored row is returned with `is_issue` (rank is NaN for non-issues).
    """
    out, _ = _label_issues(df, spec, return_all, progress)
    return out


def _scorable(df: pd.DataFrame, spec: LabelCheckSpec) -> pd.DataFrame:
    """The rows the check scores: labelled, in classes with at least max(min_class_size, cv_folds) rows."""
    d = df[df["label"].notna()]
    min_n = max(spec.min_class_size, spec.cv_folds)
    counts = d["label"].value_counts()
    return d[d["label"].isin(counts[counts >= min_n].index)].reset_index(drop=True)


def _label_issues(df, spec, return_all, progress):
    """`label_issues`, and (vectorizer, X, y, classes) of what was scored (None when nothing was)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from scipy.special import softmax

    cols = ["ticket_id", "given_label", "suggested_label", "label_quality", "rank"]
    d = _scorable(df, spec)
    if d["label"].nunique() < 2:
        return pd.DataFrame(columns=cols + (["is_issue"] if return_all else [])), None

    classes = np.array(sorted(d["label"].unique()))
    y = np.searchsorted(classes, d["label"].to_numpy())
    vec = _vectorizer()
    X = _features(d["text"], vec)
    folds = _cluster_folds(d, y, spec)
    probs = np.zeros((len(d), len(classes)))
    for k, (tr, te) in enumerate(folds):
        clf = _fit(_classifier(spec.seed), X[tr], y[tr])
        # Softmax over the linear scores (the multinomial-logit reading of the model): SGD's own
        # predict_proba normalises one-vs-rest sigmoids, which is underconfident and cost ~20 points
        # of recall on planted errors.
        z = np.full((len(te), len(classes)), -1e9)
        z[:, clf.classes_] = clf.decision_function(X[te])
        probs[te] = softmax(z, axis=1)
        if progress is not None:
            progress(k + 1, len(folds))

    ranked = find_label_issues(y, probs, filter_by=spec.issue_filter_by, return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(y, probs, method="self_confidence")
    out = pd.DataFrame({
        "ticket_id": d["ticket_id"].to_numpy(),
        "given_label": classes[y],
        "suggested_label": classes[probs.argmax(1)],
        "label_quality": quality,
        "rank": np.nan,
    })
    out.loc[ranked, "rank"] = np.arange(1, len(ranked) + 1)
    fitted = (vec, X, y, classes)
    if return_all:
        return out.assign(is_issue=out["rank"].notna()), fitted
    return out.loc[ranked].assign(rank=lambda x: x["rank"].astype(int)).reset_index(drop=True), fitted


def _store_state(scored_in: pd.DataFrame, scores: pd.DataFrame, fitted, spec: LabelCheckSpec, folder,
                 renames_key: str, renames: pd.DataFrame) -> None:
    """Fit the model on every scored row and store it with the scores and cut-offs (pipeline.data.label_model)."""
    from pipeline.data.label_model import LabelModel, LabelState, row_keys

    vec, X, y, classes = fitted
    clf = _fit(_classifier(spec.seed), X, classes[y])
    d = _scorable(scored_in, spec)
    stored = pd.DataFrame({"ticket_id": d["ticket_id"].astype(str).to_numpy(), "key": row_keys(d).to_numpy()}).merge(
        scores[["ticket_id", "suggested_label", "label_quality", "is_issue"]], on="ticket_id", how="inner")
    flagged = scores[scores["is_issue"]]
    cutoffs = {str(k): float(v) for k, v in flagged.groupby("given_label")["label_quality"].max().items()}
    LabelState(LabelModel.from_fitted(vec, clf), stored, cutoffs, int(len(scores)),
               float(scores["label_quality"].mean()), renames_key,
               renames.assign(switch_date=renames["switch_date"].astype(str)).to_dict("records")).save(folder)


def _score_incremental(scored_in: pd.DataFrame, spec: LabelCheckSpec, state) -> tuple[pd.DataFrame | None, dict]:
    """Scores from the stored state: unchanged rows keep theirs, new rows are scored by the stored model.
    Returns (None, why) when the model must be refitted instead."""
    from pipeline.data.label_model import row_keys

    d = _scorable(scored_in, spec)
    unknown = sorted(set(d["label"]) - set(state.model.classes))
    if unknown:
        return None, {"refit": f"{len(unknown)} label(s) the stored model does not know"}
    keys = row_keys(d)
    stored = state.scores.drop_duplicates("ticket_id").set_index("ticket_id")
    hit = (d["ticket_id"].astype(str).map(stored["key"]) == keys).to_numpy()
    new = d[~hit]
    if len(new) > spec.refit_after_share * state.n_fit:
        return None, {"refit": f"{len(new)} new or changed rows, more than refit_after_share "
                               f"({spec.refit_after_share}) of the {state.n_fit} fitted"}
    old = stored.loc[d.loc[hit, "ticket_id"].astype(str)]
    out_old = pd.DataFrame({"ticket_id": d.loc[hit, "ticket_id"].to_numpy(), "given_label": d.loc[hit, "label"].to_numpy(),
                            "suggested_label": old["suggested_label"].to_numpy(),
                            "label_quality": old["label_quality"].to_numpy(), "is_issue": old["is_issue"].to_numpy()})
    info = {"rows_reused": int(hit.sum()), "rows_scored_new": int(len(new))}
    if len(new):
        P = state.model.probabilities(state.model.features(new["text"]))
        classes = list(state.model.classes)
        given = np.array([classes.index(lab) for lab in new["label"]])
        quality = P[np.arange(len(new)), given]
        drop = state.mean_quality - float(quality.mean())
        if len(new) >= 50 and drop > spec.refit_drift:
            return None, {"refit": f"drift: the new rows' mean label quality is {drop:.3f} below the fit's"}
        cut = new["label"].map(state.cutoffs).astype(float).fillna(-1.0).to_numpy()
        out_new = pd.DataFrame({"ticket_id": new["ticket_id"].to_numpy(), "given_label": new["label"].to_numpy(),
                                "suggested_label": np.asarray(classes, dtype=object)[P.argmax(1)],
                                "label_quality": quality, "is_issue": quality <= cut})
        out = pd.concat([out_old, out_new], ignore_index=True)
    else:
        out = out_old
    out["rank"] = np.nan
    issues = out.index[out["is_issue"]]
    order = out.loc[issues, "label_quality"].sort_values(kind="mergesort").index
    out.loc[order, "rank"] = np.arange(1, len(order) + 1)
    return out[["ticket_id", "given_label", "suggested_label", "label_quality", "rank", "is_issue"]], info


# --------------------------------------------------------------------------------------------
# 5. policy
# --------------------------------------------------------------------------------------------
def apply_policy(df: pd.DataFrame, issues: pd.DataFrame, conflicts: pd.DataFrame,
                 spec: LabelCheckSpec, keep_ids=frozenset()) -> tuple[pd.DataFrame, dict]:
    """Attach flags and apply the policy. Returns (kept, info).

    Rows without a label (unknown or missing) never go to training under either policy: they are
    returned in info['rejected'] (ticket_id, label_raw, label, reason). Under 'flag' every labelled
    row is kept with its flags. Under 'drop', label issues are removed, and inside an exact group with
    conflicting labels the rows outside a strict majority label are removed (a tie removes the group);
    conflicts between near-duplicates are only flagged (different intents can read alike).
    Rows whose ticket id is in `keep_ids` (published tickets, whose label is frozen) are never rejected.
    kept + rejected always equals the input rows.
    """
    out = df.copy()
    iss = issues
    if "is_issue" in iss.columns:
        iss = iss[iss["is_issue"]]
    scored = issues.set_index("ticket_id")
    out["label_issue"] = out["ticket_id"].isin(set(iss["ticket_id"]))
    out["suggested_label"] = out["ticket_id"].map(scored["suggested_label"]).astype(object)
    out["label_quality"] = out["ticket_id"].map(scored["label_quality"]).astype(float)
    out.loc[~out["label_issue"], "suggested_label"] = None

    out["conflict"] = False
    out["conflict_level"] = None
    minority: dict[str, str] = {}
    for c in conflicts.itertuples():
        tids = set(c.ticket_ids)
        hit = out["ticket_id"].isin(tids)
        out.loc[hit, "conflict"] = True
        out.loc[hit & out["conflict_level"].isna(), "conflict_level"] = c.level
        if c.level == "exact":
            top = c.counts[0]
            tie = len(c.counts) > 1 and c.counts[1] == top
            for t in tids:
                lab = out.loc[out["ticket_id"] == t, "label"]
                if lab.empty or lab.iloc[0] is None:
                    continue
                if tie:
                    minority[t] = "conflict_unresolved: exact copies labelled " + " / ".join(c.labels)
                elif lab.iloc[0] != c.labels[0]:
                    minority[t] = f"conflict_minority: exact copies mostly labelled {c.labels[0]}"

    reason = pd.Series(None, index=out.index, dtype=object)
    no_label = out["label"].isna()
    reason[no_label & out["label_raw"].isna()] = "missing_label"
    unk = no_label & out["label_raw"].notna()
    reason[unk] = "unknown_label: " + out.loc[unk, "label_raw"].astype(str)
    if spec.policy == "drop":
        li = reason.isna() & out["label_issue"]
        reason[li] = "label_issue: suggested " + out.loc[li, "suggested_label"].astype(str)
        mi = reason.isna() & out["ticket_id"].isin(minority)
        reason[mi] = out.loc[mi, "ticket_id"].map(minority)
    if keep_ids:
        reason[out["ticket_id"].isin(keep_ids) & out["label"].notna()] = None

    rejected = out.loc[reason.notna(), ["ticket_id", "label_raw", "label"]].assign(reason=reason[reason.notna()])
    kept = out[reason.isna()].reset_index(drop=True)
    info = {
        "policy": spec.policy,
        "n_in": int(len(out)),
        "n_kept": int(len(kept)),
        "n_rejected": int(len(rejected)),
        "rejected_by_reason": {k: int(v) for k, v in
                               rejected["reason"].str.split(":").str[0].value_counts().sort_index().items()},
        "rejected": rejected.reset_index(drop=True),
    }
    return kept, info


# --------------------------------------------------------------------------------------------
# all together
# --------------------------------------------------------------------------------------------
def check_labels(df: pd.DataFrame, clusters: pd.DataFrame | None, taxonomy: TaxonomySpec,
                 spec: LabelCheckSpec, frozen: pd.Series | None = None, progress=None,
                 state_dir=None) -> tuple[pd.DataFrame, dict]:
    """Run every label check. Returns (labelled, report).

    labelled: ticket_id, label, label_status, label_issue, suggested_label, label_quality, conflict,
    conflict_level, label_raw (rows that are kept under the policy).
    report: JSON-safe figures (n_rows, variants, renames, conflicts, n_label_issues, issue_rate,
    rare_classes, class_counts, policy counts) plus report['rejected'], a DataFrame of the rows
    that were not kept, each with its reason.
    frozen: ticket id -> label of tickets in a published version; they keep it (status 'frozen' where
    today's checks would decide otherwise), and report['frozen_labels'] says how many that is.
    state_dir: where the model of the last full check is kept (pipeline.data.label_model). With it, a
    run whose new rows are few scores only those (report['label_model'] says which way it went).
    """
    from pipeline.data.dedup import find_clusters
    from pipeline.data.label_model import LabelState

    if clusters is None:
        clusters, _ = find_clusters(df, DedupSpec())
    normed, variants = normalize_labels(df, taxonomy)
    state = LabelState.load(state_dir, [v for _, v in _vectorizer().transformer_list]) \
        if state_dir is not None and spec.incremental else None
    # a rename depends on the unknown label's texts and on when every label was used: stored renames are
    # reused only for the same rows (a re-run), otherwise found again with the stored model
    unknown = (normed["label_status"] == "unknown").to_numpy()
    rows = (normed["ticket_id"].astype(str) + "\x1f" + normed["label_raw"].astype(str) + "\x1f"
            + normed["created_at"].astype(str) + "\x1f" + normed["text"].astype(str).where(unknown, ""))
    renames_key = hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()[:16]
    if state is not None and state.renames_key == renames_key:
        cols = ["old", "new", "label", "switch_date", "n_rows", "evidence_share", "overlap_share", "direction",
                "raw_spellings"]
        renames = pd.DataFrame(state.renames or [], columns=cols)
        renames["switch_date"] = pd.to_datetime(renames["switch_date"], utc=True)
    else:
        renames = detect_renames(normed, taxonomy, spec, model=state.model if state is not None else None)
    normed = apply_renames(normed, renames)
    frozen_info = {"n_published": 0, "n_decision_changed": 0}
    keep_ids: frozenset = frozenset()
    if frozen is not None and len(frozen):
        fixed = normed["ticket_id"].map(frozen)
        hit = fixed.notna()
        # what the checks would decide today for a published ticket, before the frozen label wins
        frozen_info = {"n_published": int(hit.sum()),
                       "n_decision_changed": int((hit & (normed["label"].astype(object) != fixed)).sum())}
        # only a changed decision is overridden (status 'frozen'): an unchanged input gives an unchanged table
        changed = hit & (normed["label"].astype(object) != fixed)
        normed.loc[changed, "label"] = fixed[changed]
        normed.loc[changed, "label_status"] = "frozen"
        keep_ids = frozenset(normed.loc[hit, "ticket_id"])
    conflicts = operator_conflicts(normed, clusters)

    scored_in = normed.drop(columns=["cluster_id"], errors="ignore").merge(
        clusters[["ticket_id", "cluster_id"]], on="ticket_id", how="left")
    scores, model_info = None, {"mode": "full"}
    if state is not None:
        scores, why = _score_incremental(scored_in, spec, state)
        model_info = {"mode": "incremental", **why} if scores is not None else {"mode": "full", **why}
    if scores is None:
        scores, fitted = _label_issues(scored_in, spec, True, progress)
        if state_dir is not None and spec.incremental and fitted is not None:
            try:
                _store_state(scored_in, scores, fitted, spec, state_dir, renames_key, renames)
            except OSError as exc:  # the stored model only saves time: the next run checks in full
                model_info["not_stored"] = str(exc)
    elif progress is not None:
        progress(1, 1)
    kept, info = apply_policy(normed, scores, conflicts, spec, keep_ids)

    labelled = kept[["ticket_id", "label", "label_status", "label_issue", "suggested_label", "label_quality",
                     "conflict", "conflict_level", "label_raw"]]
    class_counts = normed["label"].value_counts()
    min_n = max(spec.min_class_size, spec.cv_folds)
    n_issues = int(scores["is_issue"].sum()) if len(scores) else 0
    report = {
        "n_rows": int(len(df)),
        "label_status_counts": {k: int(v) for k, v in normed["label_status"].value_counts().sort_index().items()},
        "variants": variants.to_dict("records"),
        "renames": [
            {**r, "switch_date": pd.Timestamp(r["switch_date"]).isoformat()} for r in renames.to_dict("records")
        ],
        "conflicts": {
            "n_exact_groups": int((conflicts["level"] == "exact").sum()) if len(conflicts) else 0,
            "n_clusters": int((conflicts["level"] == "cluster").sum()) if len(conflicts) else 0,
            "n_cross_operator": int(conflicts["cross_operator"].sum()) if len(conflicts) else 0,
            "n_rows": int(normed["ticket_id"].isin({t for ts in conflicts.get("ticket_ids", []) for t in ts}).sum()),
        },
        "frozen_labels": frozen_info,
        "label_model": model_info,
        "n_scored": int(len(scores)),
        "n_label_issues": n_issues,
        "issue_rate": round(n_issues / max(1, len(scores)), 4),
        "rare_classes": {k: int(v) for k, v in class_counts[class_counts < min_n].sort_index().items()},
        "class_counts": {k: int(v) for k, v in class_counts.sort_index().items()},
        **{k: v for k, v in info.items()},
    }
    return labelled, report
