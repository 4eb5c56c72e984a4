"""The apply pages' pieces alone: `[connections.<id>.apply]` typed and checked at start
(app/config.py), the language choice (app/web/apply/i18n.py), preconditions and chains and the
page token (app/intake/boards/apply_form.py)."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import ConfigError, parse_config
from app.core.catalog import Option, QuestionFormat, ScreeningQuestion
from app.intake.boards import apply_form
from app.web.apply import i18n


def config(**apply: Any) -> Any:
    table = {"connector": "laura", "base_url": "https://laura.example", "credentials_env": "K", "apply": apply}
    return parse_config({"connections": {"acme": table}}, {"K": "k"})


@pytest.mark.parametrize(
    "origin", ["https://careers.acme.example", "https://*.acme.example", "http://localhost:8000/", "https://[::1]:8443"]
)
def test_frame_ancestors_take_csp_origins(origin: str) -> None:
    assert config(frame_ancestors=[origin]).connections["acme"].apply.frame_ancestors == (origin,)


def test_apply_settings_are_typed_and_off_by_default() -> None:
    assert config().connections["acme"].apply.enabled is False
    settings = config(enabled=True, frame_ancestors=["https://careers.acme.example"], consent_days=30).connections
    assert settings["acme"].apply.frame_ancestors == ("https://careers.acme.example",)
    assert settings["acme"].apply.consent_days == 30


@pytest.mark.parametrize(
    ("apply", "key"),
    [
        ({"success_url": "javascript:alert(1)"}, "connections.acme.apply.success_url"),
        ({"css_url": "//cdn.example/x.css"}, "connections.acme.apply.css_url"),
        ({"frame_ancestors": ["https://x.example/path"]}, "connections.acme.apply.frame_ancestors"),
        ({"frame_ancestors": ["*"]}, "connections.acme.apply.frame_ancestors"),
        # a ';' or a space would add a directive to the page's CSP
        ({"frame_ancestors": ["https://x.example; script-src *"]}, "connections.acme.apply.frame_ancestors"),
        ({"frame_ancestors": ["https://x.example https://evil.example"]}, "connections.acme.apply.frame_ancestors"),
        ({"frame_ancestors": ["https://user@x.example"]}, "connections.acme.apply.frame_ancestors"),
        ({"css_url": "https://a;script-src%20*@cdn.example/x.css"}, "connections.acme.apply.css_url"),
        ({"success_url": "https://u:p@acme.example/thanks"}, "connections.acme.apply.success_url"),
        ({"default_lang": "pt"}, "connections.acme.apply.default_lang"),
        ({"token_ttl_s": 5}, "connections.acme.apply.token_ttl_s"),
        ({"colour": "red"}, "connections.acme.apply"),
    ],
)
def test_a_bad_apply_setting_stops_the_start_naming_it(apply: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        config(**apply)
    assert key in str(error.value)


@pytest.mark.parametrize(
    ("query", "header", "lang"),
    [
        ("fi", "de", "fi"),
        (None, "nl-BE,nl;q=0.9,en;q=0.8", "nl"),
        (None, "pt-BR, es;q=0.4, fr;q=0.6", "fr"),
        ("xx", "es-ES", "es"),
        (None, None, "de"),
        (None, "en;q=0", "de"),
    ],
)
def test_the_language_is_the_query_then_accept_language_then_the_default(
    query: str | None, header: str | None, lang: str
) -> None:
    assert i18n.pick(query, header, "de") == lang


def test_every_language_has_every_label() -> None:
    assert set(i18n.LABELS) == set(i18n.LANGS)
    assert all(set(labels) == set(i18n.LABELS["en"]) for labels in i18n.LABELS.values())
    assert i18n.error("at most 500 characters", "fr") == "500 caractères au maximum."
    assert i18n.error("the ATS said no", "fi") == "the ATS said no"  # others' reasons as they are


def q(qid: str, kind: Any, pre: str | None = None, options: list[str | bool] | None = None) -> ScreeningQuestion:
    opts = [Option(o, o, o) for o in ("a", "b")] if kind == "SINGLE_SELECT" else None
    return ScreeningQuestion(
        qid, qid, qid, QuestionFormat(kind, options=opts), precondition_question_id=pre, precondition_options=options
    )


def test_a_chain_is_asked_only_while_every_link_holds() -> None:
    licence, where, why = q("1", "BOOLEAN"), q("2", "SINGLE_SELECT", "1", [True]), q("3", "TEXT", "2", ["b"])
    by_id = {x.id: x for x in (licence, where, why)}
    assert apply_form.active(why, {"1": True, "2": "b"}, by_id)
    assert not apply_form.active(why, {"1": False, "2": "b"}, by_id)  # the parent is not asked
    assert not apply_form.active(why, {"1": True, "2": "a"}, by_id)
    assert not apply_form.active(where, {}, by_id)
    assert apply_form.active(licence, {}, by_id)


def test_the_page_token_is_bound_to_its_connection_job_and_time() -> None:
    token = apply_form.sign("secret", "acme", "201", 1000.0, 60)
    assert apply_form.verify(token, ["old", "secret"], "acme", "201", 1030.0)
    assert not apply_form.verify(token, ["secret"], "acme", "202", 1030.0)
    assert not apply_form.verify(token, ["secret"], "beta", "201", 1030.0)
    assert not apply_form.verify(token, ["secret"], "acme", "201", 1061.0)
    assert not apply_form.verify(token, ["other"], "acme", "201", 1030.0)
    assert not apply_form.verify("secret", ["secret"], "acme", "201", 1030.0)


def test_sizes_are_shown_in_the_units_the_config_counts() -> None:
    assert (i18n.size(10_000_000), i18n.size(2_500_000), i18n.size(2000)) == ("10 MB", "2.5 MB", "2 KB")
