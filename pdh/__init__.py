"""The tools above every component: the ``pdh`` CLI, supervisor, demo, verification and the
scenario runner. Importing the package registers every process kind (:mod:`pdh.topology`)."""

from pdh import topology as _topology  # noqa: F401  (registers the kinds)
