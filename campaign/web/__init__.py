"""The web console and its JSON API (`campaign web`): a Starlette app over the same store
and config as the commands, calling only `workflow`, `workflow_queue` and `workflow_web`.

    app.py        create_app: middleware, routes of every module below, the worker
    security.py   headers on every response, CSRF and Origin checks
    auth.py       sessions, API tokens, roles (`require`), sign-in throttle, audit
    i18n.py       zh (default) / en: lang_of, t; catalogs in i18n_zh.py, i18n_en.py
    render.py     Jinja2 (autoescape, StrictUndefined) over templates/
    uploads.py    multipart uploads streamed to disk, size-limited (413)
    scratch.py    one request's folders (uploads, imports, downloads), gone at shutdown
    plans.py      uploaded plans kept until sent (one campaign per plan)
    events.py     Server-Sent Events: live progress (watches.py: one poller per campaign)
    server.py     uvicorn server of `campaign web`: streams end first on Ctrl-C
    pages_*.py    the pages; api.py the JSON API under /api/v1
    static/       vendored htmx + sse extension (VENDORED.md), app.css, app.js
"""
