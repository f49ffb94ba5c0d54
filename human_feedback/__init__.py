"""Human feedback: candidates, rendered videos, the annotation server and store, preference pairs.

Pipeline (paper section III-D)::

    candidates.collect      N sampled rollouts per speaker clip + the ground truth -> rendered MP4s
    blinding.render_group   the one rendering path: every candidate, ground truth included, from tokens
    store.Store             SQLAlchemy store (SQLite or PostgreSQL): campaigns, groups, ratings, ...
    migrations.migrate      upgrades a store of an older schema version in place
    server.create_app       FastAPI annotation app: tokens and sessions, blinded pages, rubric, admin view
    viewing                 the server's rules on watching: videos fetched (and watched long enough)
    simulate.simulate       simulated annotators rating through the same API
    analysis                agreement (Krippendorff's alpha), attention checks, per-annotator statistics
    export / preferences    eq. 10 scores -> best-vs-worst pairs -> PreferenceDataset on disk
    study                   mean opinion scores with confidence intervals (paper Table III)

Importing this package is cheap; the web stack loads only in :mod:`human_feedback.server`.
"""

from human_feedback.preferences import PreferenceDataset, PreferencePair

__all__ = ["PreferenceDataset", "PreferencePair"]
