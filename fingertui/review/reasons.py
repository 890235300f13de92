"""Why a sample is in the review queue: the names of the flags (review/flags.py raises
them). Plain names only, so the CLI's parser and the app's filter take them from here
without loading the review code."""

from __future__ import annotations

# The flags a run raises, in the order a user filters by them (`review --reason`, the
# review screen's `f`): the strongest evidence against a label first.
FLAG_REASONS: tuple[str, ...] = (
    "label-error",
    "disagrees",
    "misclassified",
    "unsure",
    "no-hand",
    "finger-borderline",
    "weak-class",
)
# The queue folds near-identical images into one item and says so with this reason.
NEAR_DUPLICATE = "near-duplicate"
# Every reason a queue item may list, in the order it lists them.
REASONS: tuple[str, ...] = (
    "unsure",
    "misclassified",
    "label-error",
    "disagrees",
    "no-hand",
    "finger-borderline",
    "weak-class",
    NEAR_DUPLICATE,
)
