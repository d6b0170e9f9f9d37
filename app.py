"""Flask app factory: the composition root. `gunicorn 'app:create_app()'` works."""

from __future__ import annotations

import os
from datetime import timedelta

from flask import Flask, jsonify
from werkzeug.middleware.proxy_fix import ProxyFix

from settings import Settings, load_settings, secret_key


def create_app(settings: Settings | None = None, *, service=None) -> Flask:
    from web import admin, api, auth, dashboard, headers, ops
    from web.webhooks import bp as webhooks
    from worker.service import Service

    settings = settings or load_settings()
    service = service or Service(settings)
    # Templates and static files live with the blueprints in web/, shared by all of them.
    app = Flask(__name__, template_folder="web/templates", static_folder="web/static")
    if settings.trusted_proxies:
        # The client's address and scheme as the proxies saw them, trusting only as many
        # X-Forwarded-* entries as there are proxies: the rest are the client's to forge.
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    # Behind a proxy that terminates TLS the app sees plain HTTP, so it cannot tell on its
    # own that the session cookie must be Secure; HTTPS requests always get Secure.
    secure_cookies = os.environ.get("PMGUARD_SECURE_COOKIES", "").lower() in ("1", "true", "yes")
    app.config.update(
        SECRET_KEY=secret_key(settings),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure_cookies,
        # The signed session cookie's max age: a sign-in lasts a working day at most.
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        # CSRF tokens live as long as the session, not an hour: a reviewer who spends an
        # afternoon on one incident must not lose the decision they type.
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.extensions["pmguard"] = service
    headers.init_app(app)  # CSP, no framing, no sniffing: on every response
    app.register_blueprint(webhooks)
    csrf = auth.init_app(app)  # sign-in, roles, CSRF on every form, API tokens
    csrf.exempt(webhooks)  # signed by the tracker (HMAC), never posted by a browser
    for blueprint in (ops.bp, dashboard.bp, admin.bp, api.bp):
        app.register_blueprint(blueprint)

    @app.errorhandler(413)
    def too_large(_exc):
        return jsonify({"error": f"body over {settings.max_body_bytes} bytes"}), 413

    return app
