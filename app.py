"""Flask app factory: the composition root. `gunicorn 'app:create_app()'` works."""

from __future__ import annotations

from flask import Flask, jsonify

from settings import Settings, load_settings, secret_key


def create_app(settings: Settings | None = None, *, service=None) -> Flask:
    from web.webhooks import bp as webhooks
    from worker.service import Service

    settings = settings or load_settings()
    service = service or Service(settings)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key(settings),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.extensions["pmguard"] = service
    app.register_blueprint(webhooks)

    @app.errorhandler(413)
    def too_large(_exc):
        return jsonify({"error": f"body over {settings.max_body_bytes} bytes"}), 413

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    return app
