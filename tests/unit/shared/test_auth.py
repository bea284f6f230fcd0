"""Bearer tokens with roles guard the admin and finance endpoints."""

import pytest
from flask import Flask
from flask.views import MethodView
from flask_smorest import Blueprint

from services.shared.auth import parse_tokens, protected, require_role, roles_of
from services.shared.web import create_service_app

TOKENS = parse_tokens("secret-admin:admin,secret-books:finance+admin")


def test_tokens_and_their_roles_are_read_from_one_setting() -> None:
    assert TOKENS == {
        "secret-admin": frozenset({"admin"}),
        "secret-books": frozenset({"finance", "admin"}),
    }
    with pytest.raises(SystemExit):
        parse_tokens("no-role-here")


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer nope", "Bearer "])
def test_an_unknown_or_missing_token_has_no_roles(header: str | None) -> None:
    assert roles_of(header, TOKENS) is None


def app() -> Flask:
    flask_app, _api = create_service_app("test", "test", checks={}, config={"API_TOKENS": TOKENS})

    @flask_app.get("/books")
    @require_role("finance")
    def books() -> dict[str, bool]:
        return {"ok": True}

    return flask_app


def test_a_finance_endpoint_needs_a_token_with_the_finance_role() -> None:
    client = app().test_client()
    missing = client.get("/books")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json["message"]
    assert client.get("/books", headers={"Authorization": "Bearer secret-admin"}).status_code == 403
    ok = client.get("/books", headers={"Authorization": "Bearer secret-books"})
    assert ok.status_code == 200 and ok.json == {"ok": True}


def test_a_protected_operation_says_in_its_document_which_role_it_needs() -> None:
    flask_app, rest = create_service_app("test", "test", checks={}, config={"API_TOKENS": TOKENS})
    books = Blueprint("books", __name__, url_prefix="/books")

    @books.route("/")
    class Books(MethodView):
        @protected(books, "finance")
        @books.response(200)
        def get(self) -> dict[str, bool]:
            """The books."""
            return {"ok": True}

    rest.register_blueprint(books)
    client = flask_app.test_client()
    document = client.get("/openapi.json").json
    operation = document["paths"]["/books/"]["get"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert operation["security"] == [{"bearerAuth": []}]
    assert operation["x-required-role"] == "finance"
    assert "`finance` role" in operation["description"]
    assert operation["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
    for status in ("401", "403"):
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}
    assert client.get("/books/").status_code == 401
    assert client.get("/books/", headers={"Authorization": "Bearer secret-admin"}).json == {
        "code": 403,
        "status": "Forbidden",
        "message": "this token does not have the finance role",
    }
    assert client.get("/books/", headers={"Authorization": "Bearer secret-books"}).json == {
        "ok": True
    }
