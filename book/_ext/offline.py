"""Sphinx extension: keep the book readable offline.

Jupyter Book 1.x always loads sphinx-thebe, which adds a script that would
fetch thebe from unpkg.com (and, in this version, declares its configuration
twice, a script error on every page). The book launches no live kernels, so
both scripts are dropped from every page.
"""


def _drop_thebe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if scripts is None:
        return
    context["script_files"] = [
        script for script in scripts
        if not str(script).endswith("sphinx-thebe.js")
        and "THEBE_JS_URL" not in str(getattr(script, "attributes", {}).get("body", ""))
    ]


def setup(app):
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
