"""The web console over plain HTTP (no browser): sign-in cookie, CSRF and origin checks, security
headers, escaping of user text everywhere, one 404 page for missing and foreign ids, and the main
flows (revise with a stale base, labels, reviews by two users, keys). Runs on SQLite and Postgres.

The browser suite (tests/browser) drives the same pages in Chromium."""
from __future__ import annotations

import re
import uuid
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient

from interfaces.console.app import CSP
from tests.e2e.support import PASSWORD

ORIGIN = "http://testserver"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
SCRIPT = '<script>alert("pwned")</script>'
IMG = "<img src=x onerror=alert(1)>"
INJECT = "{{7*7}}"


class Console:
    """One browser: its own cookie jar, the CSRF token of the last page, form posts with an Origin."""

    def __init__(self, api, origin: str = ORIGIN):
        self.api = api
        self.origin = origin
        self.client = TestClient(api.app, base_url=origin, follow_redirects=False)
        self.token = ""

    def get(self, url: str, **kw):
        response = self.client.get(url, **kw)
        found = _TOKEN.search(response.text)
        if found:
            self.token = found.group(1)
        return response

    def post(self, url: str, data: dict | None = None, *, token: str | None = None, origin: str | None = "", **kw):
        origin = self.origin if origin == "" else origin
        headers = {"Origin": origin} if origin else {}
        headers.update(kw.pop("headers", {}))
        body = {"csrf_token": self.token if token is None else token, **(data or {})}
        return self.client.post(url, data=body, headers=headers, **kw)

    def follow(self, response):
        assert response.status_code == 303, (response.status_code, response.text[:2000])
        return self.get(response.headers["location"])

    def sign_in(self, email: str, password: str = PASSWORD):
        self.get("/console/login")
        response = self.post("/console/login", {"email": email, "password": password, "next": "/console/"})
        assert response.status_code == 303, response.text[:2000]
        return response


def _user(api, name: str = "Ada") -> tuple[str, str]:
    email = f"{re.sub('[^a-z]', '', name.lower())[:20]}-{uuid.uuid4().hex[:8]}@example.com"
    body = api.register(email, display_name=name)
    return email, body["id"]


@pytest.fixture
def ada(api):
    email, user_id = _user(api, "Ada")
    console = Console(api)
    console.sign_in(email)
    console.email, console.user_id = email, user_id
    return console


def _org(console: Console, name: str = "Acme") -> str:
    console.get("/console/orgs/new")
    page = console.follow(console.post("/console/orgs/new", {"name": name}))
    return re.search(r"/console/orgs/([0-9a-f-]{36})/", str(page.url)).group(1)


def _prompt(console: Console, org: str, name: str = "support/reply", template: str = "Hi {{name}}", **extra) -> str:
    console.get(f"/console/orgs/{org}/prompts/new")
    response = console.post(f"/console/orgs/{org}/prompts/new",
                            {"name": name, "type": "text", "template": template, "rows": "0", **extra})
    assert response.status_code == 303, response.text[:3000]
    return re.search(r"/prompts/([0-9a-f-]{36})", response.headers["location"]).group(1)


# -- the entrance ------------------------------------------------------------------------------
def test_root_redirects_to_the_console_and_docs_stay(api):
    r = api.client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/console/"
    r = api.client.get("/console/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert api.client.get("/docs").status_code == 200
    assert api.client.get("/openapi.json").status_code == 200
    assert not [p for p in api.client.get("/openapi.json").json()["paths"] if p.startswith("/console")]


def test_sign_in_sets_an_httponly_lax_cookie_and_sign_out_revokes_the_session(api, ada):
    console = Console(api)
    console.get("/console/login")
    r = console.post("/console/login", {"email": ada.email, "password": PASSWORD, "next": "/console/"})
    cookie = SimpleCookie(r.headers["set-cookie"])["pf_console"]
    assert cookie["httponly"] and cookie["samesite"].lower() == "lax" and cookie["path"] == "/console"
    assert not cookie["secure"]  # plain http here; see the next test
    stolen = console.client.cookies.get("pf_console")
    assert console.get("/console/orgs/new").status_code == 200
    console.get("/console/orgs/new")
    r = console.post("/console/logout")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
    replay = TestClient(api.app, base_url=ORIGIN, follow_redirects=False)
    replay.cookies.set("pf_console", stolen, domain="testserver", path="/console")
    r = replay.get("/console/orgs/new")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login"), "the session was revoked"


def test_wrong_password_is_refused_without_a_cookie(api, ada):
    console = Console(api)
    console.get("/console/login")
    r = console.post("/console/login", {"email": ada.email, "password": "not the password at all"})
    assert r.status_code == 401 and "pf_console" not in r.headers.get("set-cookie", "")
    assert "invalid email or password" in r.text


def test_the_cookie_is_secure_when_configured(api_factory):
    api = api_factory(console_cookie_secure=True)
    email, _ = _user(api)
    console = Console(api, "https://testserver")  # Secure cookies travel over TLS only
    r = console.sign_in(email)
    assert SimpleCookie(r.headers["set-cookie"])["pf_console"]["secure"]


def test_next_is_never_an_open_redirect(api, ada):
    for target in ("https://evil.example/", "//evil.example/x", "/v1/orgs"):
        console = Console(api)
        console.get("/console/login")
        r = console.post("/console/login", {"email": ada.email, "password": PASSWORD, "next": target})
        assert r.headers["location"] == "/console/", target


# -- CSRF and origin ---------------------------------------------------------------------------
def test_state_changing_forms_need_the_token_and_this_origin(api, ada):
    org = _org(ada)
    pid = _prompt(ada, org)
    url = f"/console/orgs/{org}/prompts/{pid}/labels/move"
    form = {"label": "staging", "version": "1", "expected_version": "0"}
    for refused in (ada.post(url, form, token=""),  # no token
                    ada.post(url, form, token="x" * 43),  # a forged one
                    ada.post(url, form, origin="https://evil.example"),  # another site
                    ada.post(url, form, origin="null"),  # an opaque origin (sandboxed frame, data: URL)
                    ada.post(url, form, origin=None, headers={"Referer": "https://evil.example/page"})):
        assert refused.status_code == 403, refused.text[:500]
        assert "text/html" in refused.headers["content-type"]
    bob_email, _ = _user(api, "Bob")
    bob = Console(api)
    bob.sign_in(bob_email)
    bob.get("/console/orgs/new")
    assert ada.post(url, form, token=bob.token).status_code == 403, "a token is bound to its session"
    assert api.container.catalogue.get(org, pid)["labels"] == {}, "nothing was moved"
    r = ada.post(url, form)
    assert r.status_code == 303
    assert api.container.catalogue.get(org, pid)["labels"] == {"staging": 1}


def test_the_sign_in_form_itself_needs_a_token(api, ada):
    console = Console(api)  # a page on another site posting a login form (login CSRF)
    r = console.post("/console/login", {"email": ada.email, "password": PASSWORD}, token="")
    assert r.status_code == 403 and "pf_console" not in r.headers.get("set-cookie", "")


def test_forms_must_be_url_encoded(api, ada):
    org = _org(ada)
    r = ada.client.post(f"/console/orgs/{org}/prompts/new", content=b'{"name": "x"}',
                        headers={"Content-Type": "application/json", "Origin": ORIGIN, "X-CSRF-Token": ada.token})
    assert r.status_code == 415


# -- headers and assets ------------------------------------------------------------------------
def test_security_headers_and_a_csp_without_inline_scripts(api, ada):
    org = _org(ada)
    r = ada.get(f"/console/orgs/{org}/prompts")
    csp = r.headers["content-security-policy"]
    assert csp == CSP
    script_src = [d for d in csp.split(";") if d.strip().startswith("script-src")][0]
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src and "'self'" in script_src
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin" and r.headers["cache-control"] == "no-store"
    # Nothing from another origin, no inline script or handler, no style attribute.
    html = r.text
    assert not re.search(r'(src|href)="(https?:)?//', html), "nothing loads from a CDN"
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts and all('src="/console/static/' in s for s in scripts)
    assert not re.search(r"<script[^>]*>(?!</script>)", html) and " onclick=" not in html and " style=" not in html


def test_vendored_assets_are_served_with_their_licenses(api):
    from interfaces.console.rendering import STATIC

    for path, kind in (("vendor/htmx/htmx.min.js", "javascript"), ("vendor/htmx-ext-sse/sse.min.js", "javascript"),
                       ("vendor/pico/pico.min.css", "css"), ("console.js", "javascript"), ("console.css", "css")):
        r = api.client.get(f"/console/static/{path}")
        assert r.status_code == 200 and kind in r.headers["content-type"], path
        assert r.headers["cache-control"].startswith("public")
    for license_file in ("vendor/htmx/LICENSE", "vendor/htmx-ext-sse/LICENSE", "vendor/pico/LICENSE.md"):
        assert (STATIC / license_file).is_file()
    assert api.client.get("/console/static/../session.py").status_code == 404


# -- escaping ----------------------------------------------------------------------------------
def _assert_inert(html: str, where: str) -> None:
    assert SCRIPT not in html and "<img src=x" not in html, f"unescaped payload in {where}"
    assert html.count("<script") == 3, f"a script tag besides the three vendored ones in {where}"


def test_user_text_is_escaped_and_never_evaluated_on_any_page(api_factory):
    api = api_factory(webhooks_allow_private_networks=True)
    email, _ = _user(api, f"Eve{IMG}")
    eve = Console(api)
    eve.sign_in(email)
    org = _org(eve, f"Org {IMG}")
    payload = f"{SCRIPT} {IMG} {INJECT}"
    pid = _prompt(eve, org, name=f"xss/{SCRIPT}{IMG}", template=f"Hello {payload}", template_format="plain",
                  message=f"first {payload}")
    base = f"/console/orgs/{org}"
    eve.get(f"{base}/prompts/{pid}/edit")
    r = eve.post(f"{base}/prompts/{pid}/edit", {"base_version": "1", "template": f"Bye {payload}",
                                                "template_format": "plain", "message": f"second {payload}"})
    assert r.status_code == 303
    refused = eve.post(f"{base}/prompts/{pid}/edit", {"base_version": "2", "template": "x", "tags": SCRIPT})
    assert refused.status_code == 422 and "&lt;script&gt;" in refused.text  # the refusal quotes it, escaped
    _assert_inert(refused.text, "a refusal")
    eve.post(f"{base}/prompts/{pid}/labels/move", {"label": "staging", "version": "2", "expected_version": "0"})
    r = eve.post(f"{base}/reviews", {"prompt_id": pid, "label": "production", "version": "2", "expected_version": "0",
                                     "reason": payload})
    review = re.search(r"/reviews/([0-9a-f-]{36})", r.headers["location"]).group(1)
    eve.post(f"{base}/api-keys", {"name": f"key {SCRIPT}", "permissions": "prompts:read"})
    assert eve.post(f"{base}/releases", {"label": "staging", "count": "1", "prompt_0": pid, "version_0": "1",
                                         "expected_0": "2", "reason": payload}).status_code == 303
    eve.post(f"{base}/webhooks", {"url": "https://127.0.0.1/hook", "events": "*", "description": payload})
    rendered = eve.post(f"{base}/prompts/{pid}/render", {"version": "2"})
    assert rendered.status_code == 200 and "Bye &lt;script&gt;" in rendered.text and INJECT in rendered.text
    pages = [f"{base}/prompts", f"{base}/prompts?q=script", f"{base}/prompts?folder=xss", f"{base}/prompts/{pid}",
             f"{base}/prompts/{pid}/versions/1", f"{base}/prompts/{pid}/diff?from=1&to=2", f"{base}/prompts/{pid}/edit",
             f"{base}/prompts/{pid}?as_of=2100-01-01T00:00:00Z", f"{base}/reviews", f"{base}/reviews/{review}",
             f"{base}/releases", f"{base}/audit", f"{base}/members", f"{base}/api-keys", f"{base}/webhooks",
             f"{base}/admin"]
    for url in pages:
        r = eve.get(url)
        assert r.status_code == 200, (url, r.text[:500])
        _assert_inert(r.text, url)
        shown = r.text.replace("<mark>script</mark>", "script")  # search results highlight the word
        assert "&lt;script&gt;" in shown or "&lt;img src=x" in shown, f"{url} shows a payload (escaped)"
    page = eve.get(f"{base}/prompts/{pid}").text
    assert "Bye &lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt; {{7*7}}" in page
    assert "second &lt;script&gt;" in page and ">49<" not in page


# -- one 404 page ------------------------------------------------------------------------------
def test_another_orgs_urls_give_the_same_404_page_as_missing_ones(api, ada):
    org = _org(ada)
    mine = _prompt(ada, org)
    email, _ = _user(api, "Mallory")
    other = Console(api)
    other.sign_in(email)
    theirs_org = _org(other, "Other")
    theirs = _prompt(other, theirs_org, "secret/plan")
    urls = [f"/console/orgs/{theirs_org}/prompts/{theirs}", f"/console/orgs/{theirs_org}/prompts",
            f"/console/orgs/{theirs_org}/audit", f"/console/orgs/{org}/prompts/{theirs}",
            f"/console/orgs/{org}/prompts/{theirs}/diff", f"/console/orgs/{org}/prompts/{uuid.uuid4()}",
            f"/console/orgs/{uuid.uuid4()}/prompts", f"/console/orgs/not-an-id/prompts",
            f"/console/orgs/{org}/prompts/{mine}/versions/99", f"/console/orgs/{org}/reviews/{uuid.uuid4()}",
            "/console/no-such-page"]
    bodies = set()
    for url in urls:
        r = ada.get(url)
        assert r.status_code == 404, url
        bodies.add(r.text)
    assert len(bodies) == 1, "every 404 is the same page"
    assert "secret/plan" not in bodies.pop()
    ada.get(f"/console/orgs/{org}/prompts")
    r = ada.post(f"/console/orgs/{theirs_org}/prompts/{theirs}/labels/move",
                 {"label": "staging", "version": "1", "expected_version": "0"})
    assert r.status_code == 404
    assert api.container.catalogue.get(theirs_org, theirs)["labels"] == {}


def test_signed_out_visitors_are_sent_to_sign_in(api):
    r = api.client.get(f"/console/orgs/{uuid.uuid4()}/prompts", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=/console/orgs/")
    r = api.client.get(f"/console/orgs/{uuid.uuid4()}/prompts", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 204 and r.headers["hx-redirect"].startswith("/console/login")


# -- flows -------------------------------------------------------------------------------------
def test_revise_from_a_stale_base_shows_the_changes_and_keeps_the_authors_text(api, ada):
    org = _org(ada)
    pid = _prompt(ada, org, template="Line one\nHi {{name}}")
    edit = f"/console/orgs/{org}/prompts/{pid}/edit"
    ada.get(edit)
    other = Console(api)
    other.sign_in(ada.email)
    other.get(edit)
    assert other.post(edit, {"base_version": "1", "template": "Line one\nHello {{name}}", "message": "theirs"}
                      ).status_code == 303
    r = ada.post(edit, {"base_version": "1", "template": "Line one!\nHi {{name}}", "message": "mine"})
    assert r.status_code == 409
    assert "Someone saved a new version" in r.text and "<ins>ello</ins>" in r.text  # Hi -> Hello, theirs
    assert "Line one!" in r.text and 'name="base_version" value="2"' in r.text
    assert api.container.catalogue.get(org, pid)["latest_version"] == 2, "nothing was overwritten"
    r = ada.post(edit, {"base_version": "2", "template": "Line one!\nHello {{name}}", "message": "mine, re-applied"})
    page = ada.follow(r)
    assert "New version saved." in page.text and "mine, re-applied" in page.text
    assert api.container.catalogue.get(org, pid)["latest_version"] == 3


def test_diff_render_and_labels(api, ada):
    org = _org(ada)
    pid = _prompt(ada, org, template="Refund {{amount}} to {{name}}",
                  variables='[{"name": "amount", "type": "number"}, {"name": "name", "type": "string"}]')
    base = f"/console/orgs/{org}/prompts/{pid}"
    ada.get(f"{base}/edit")
    ada.post(f"{base}/edit", {"base_version": "1", "template": "Refund {{amount}} EUR to {{name}}", "message": "eur",
                              "variables": '[{"name": "amount", "type": "number"}, {"name": "name", "type": "string"}]'})
    diff = ada.get(f"{base}/diff").text
    assert "<ins>EUR </ins>" in diff and "v1" in diff and "v2" in diff
    r = ada.post(f"{base}/render", {"version": "2", "var_amount": "ten", "var_name": ""})
    assert r.status_code == 422
    assert "amount is not a number" in r.text
    r = ada.post(f"{base}/render", {"version": "2", "var_amount": "10"})
    assert r.status_code == 422 and "name is required" in r.text and 'aria-invalid="true"' in r.text
    r = ada.post(f"{base}/render", {"version": "2", "var_amount": "10", "var_name": "Ada"})
    assert r.status_code == 200 and "Refund 10 EUR to Ada" in r.text
    move = f"{base}/labels/move"
    assert ada.post(move, {"label": "staging", "version": "1", "expected_version": "0"}).status_code == 303
    stale = ada.post(move, {"label": "staging", "version": "2", "expected_version": "0"})
    assert stale.status_code == 409 and "Someone moved it since this page was loaded" in stale.text
    protected = ada.post(move, {"label": "production", "version": "2", "expected_version": "0"})
    assert protected.status_code == 409 and "request a review" in protected.text
    page = ada.follow(ada.post(move, {"label": "staging", "version": "2", "expected_version": "1"}))
    assert "Label moved." in page.text and "staging → v2" in ada.get(f"/console/orgs/{org}/prompts").text
    old = ada.get(f"{base}?as_of=" + _created_at(api, org, pid, 1)).text
    assert "Refund {{amount}} to {{name}}" in old and "as it was at" in old and "staging</td>" not in old
    before = ada.get(f"{base}?as_of=2000-01-01T00:00")  # the datetime-local input's format: UTC
    assert before.status_code == 200 and "did not exist yet" in before.text


def _created_at(api, org: str, pid: str, version: int) -> str:
    from interfaces.console.rendering import iso

    return iso(api.container.catalogue.version(org, pid, version)["created_at"])


def test_review_requested_by_one_member_and_approved_by_another(api, ada):
    org = _org(ada)
    pid = _prompt(ada, org)
    bob_email, _ = _user(api, "Bob")
    ada.get(f"/console/orgs/{org}/members")
    assert ada.post(f"/console/orgs/{org}/members", {"email": bob_email, "role": "reviewer"}).status_code == 303
    r = ada.post(f"/console/orgs/{org}/reviews", {"prompt_id": pid, "label": "production", "version": "1",
                                                  "expected_version": "0", "reason": "ship it"})
    review_url = r.headers["location"].split("?")[0]
    page = ada.get(review_url)
    assert "open" in page.text and "<ins>Hi {{name}}</ins>" in page.text
    r = ada.post(review_url + "/decide", {"decision": "approve", "comment": "mine"})
    assert r.status_code == 403 and "requester" in r.text.lower()
    bob = Console(api)
    bob.sign_in(bob_email)
    inbox = bob.get(f"/console/orgs/{org}/reviews").text
    assert "ship it" in inbox
    bob.get(review_url)
    done = bob.follow(bob.post(review_url + "/decide", {"decision": "approve", "comment": "looks right"}))
    assert "Approved and applied." in done.text and "looks right" in done.text
    assert api.container.catalogue.get(org, pid)["labels"] == {"production": 1}
    history = bob.get(f"/console/orgs/{org}/prompts/{pid}").text
    assert "requested by Ada" in history and "approved by Bob" in history


def test_api_key_shown_once_then_revoked(api, ada):
    org = _org(ada)
    ada.get(f"/console/orgs/{org}/api-keys")
    r = ada.post(f"/console/orgs/{org}/api-keys", {"name": "bot", "permissions": "prompts:read"})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    raw = re.search(r'id="raw-key"[^>]*value="(pfk_[^"]+)"', r.text).group(1)
    assert api.get(f"/v1/orgs/{org}/prompts", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    listing = ada.get(f"/console/orgs/{org}/api-keys").text
    assert raw not in listing and "bot" in listing
    key_id = re.search(r"/api-keys/([0-9a-f-]{36})/revoke", listing).group(1)
    page = ada.follow(ada.post(f"/console/orgs/{org}/api-keys/{key_id}/revoke"))
    assert "API key revoked." in page.text and "revoked" in page.text
    assert api.get(f"/v1/orgs/{org}/prompts", headers={"Authorization": f"Bearer {raw}"}).status_code == 401


def test_a_viewer_sees_no_edit_and_is_refused_a_revision(api, ada):
    org = _org(ada)
    pid = _prompt(ada, org)
    email, _ = _user(api, "Vic")
    ada.get(f"/console/orgs/{org}/members")
    ada.post(f"/console/orgs/{org}/members", {"email": email, "role": "viewer"})
    vic = Console(api)
    vic.sign_in(email)
    page = vic.get(f"/console/orgs/{org}/prompts/{pid}").text
    assert "Edit (new version)" not in page and "Render preview" in page
    r = vic.post(f"/console/orgs/{org}/prompts/{pid}/edit", {"base_version": "1", "template": "Hi {{name}}!"})
    assert r.status_code == 403
    assert vic.get(f"/console/orgs/{org}/api-keys").status_code == 403


def test_releases_preview_apply_and_roll_back(api, ada):
    org = _org(ada)
    a, b = _prompt(ada, org, "rel/a"), _prompt(ada, org, "rel/b")
    ada.get(f"/console/orgs/{org}/releases")
    preview = ada.post(f"/console/orgs/{org}/releases/preview", {"label": "staging", "lines": "rel/a 1\nrel/b 1",
                                                                  "reason": "spring"})
    assert preview.status_code == 200 and "Apply the release" in preview.text
    fields = dict(re.findall(r'name="(prompt_\d|version_\d|expected_\d|count|label|reason)" value="([^"]*)"',
                             preview.text))
    page = ada.follow(ada.post(f"/console/orgs/{org}/releases", fields))
    assert "Release applied." in page.text
    assert [api.container.catalogue.get(org, p)["labels"] for p in (a, b)] == [{"staging": 1}] * 2
    release_url = str(page.url).split("?")[0]
    page = ada.follow(ada.post(release_url + "/rollback", {"reason": "oops"}))
    assert "Release rolled back." in page.text
    assert [api.container.catalogue.get(org, p)["labels"] for p in (a, b)] == [{}, {}]


def test_the_prompt_list_filters_and_searches(api, ada):
    org = _org(ada)
    for i in range(3):
        _prompt(ada, org, f"sales/pitch-{i}", f"Pitch number {i} {{{{x}}}}", tags="sales")
    _prompt(ada, org, "support/refund", "Refund {{x}}")
    base = f"/console/orgs/{org}/prompts"
    listing = ada.get(base).text
    assert listing.count('class="prompt-link"') == 4 and f'hx-get="{base}/folders"' in listing
    tree = ada.get(f"{base}/folders", headers={"HX-Request": "true"}).text
    assert "sales/</a> <small>(3)</small>" in tree and "support/</a>" in tree and "<html" not in tree
    assert "sales/</a>" in ada.get(f"{base}/folders").text  # a page of its own without JavaScript
    assert ada.get(f"{base}?folder=sales").text.count('class="prompt-link"') == 3
    assert ada.get(f"{base}?tag=sales").text.count('class="prompt-link"') == 3
    found = ada.get(f"{base}?q=refund").text
    assert "<mark>refund</mark>" in found and "support/<mark>refund</mark>" in found
    fragment = ada.get(f"{base}?q=refund", headers={"HX-Request": "true", "HX-Target": "results"}).text
    assert fragment.startswith('<div id="results"') or fragment.lstrip().startswith('<div id="results"')


def test_the_live_stream_sends_the_prompts_changes_as_escaped_html(api, ada):
    """Against a real server (SSE through TestClient would buffer): a revision by someone else
    arrives as an `event: change` whose data is an escaped notice."""
    import httpx

    from tests.e2e.test_changes import serving

    org = _org(ada)
    pid = _prompt(ada, org, name="live/<b>bold</b>")
    row = api.container.catalogue.get(org, pid)
    with serving(api.container) as url, httpx.Client(base_url=url, timeout=10) as http:
        http.cookies.set("pf_console", ada.client.cookies.get("pf_console"), path="/console")
        with http.stream("GET", f"/console/orgs/{org}/prompts/{pid}/live?after={row['position']}") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines).startswith("retry:")
            api.container.app.revise_prompt(_principal(ada), uuid.UUID(org),
                                            uuid.UUID(pid), base_version=1, template="Hi there {{name}}",
                                            message="by the API", request_id="t")
            event = []
            for line in lines:
                if line.startswith(("event:", "data:")):
                    event.append(line)
                if event and line == "":
                    break
    assert event[0] == "event: change"
    data = "".join(line[5:] for line in event[1:])
    assert "saved version 2" in data and "live/&lt;b&gt;bold&lt;/b&gt;" in data and "<b>" not in data


def _principal(console: Console):
    from application import Principal

    return Principal.user(uuid.UUID(console.user_id))


def test_chat_prompts_dependencies_and_the_audit_filter(api, ada):
    org = _org(ada)
    base = f"/console/orgs/{org}/prompts"
    ada.get(f"{base}/new")
    r = ada.post(f"{base}/new", {"name": "chat/support", "type": "chat", "rows": "3", "role_0": "system",
                                 "content_0": "You are {{tone}}.", "role_1": "placeholder", "content_1": "history",
                                 "role_2": "user", "content_2": ""})
    chat = re.search(r"/prompts/([0-9a-f-]{36})", r.headers["location"]).group(1)
    page = ada.get(f"{base}/{chat}/edit").text
    assert 'name="rows" value="2"' in page and ">You are {{tone}}.</textarea>" in page
    r = ada.post(f"{base}/{chat}/edit", {"base_version": "1", "rows": "2", "role_0": "system",
                                          "content_0": "You are {{tone}} and brief.", "role_1": "placeholder",
                                          "content_1": "history", "message": "brief"})
    assert r.status_code == 303, r.text[:2000]
    diff = ada.get(f"{base}/{chat}/diff").text
    assert "Message 1: system → system" in diff and "<ins> and brief</ins>" in diff
    shown = ada.get(f"{base}/{chat}").text
    assert '<span class="role">system</span>' in shown and "<code>history</code>" in shown
    assert 'id="ph-history"' in shown, "the render form asks for the placeholder"
    rendered = ada.post(f"{base}/{chat}/render", {"version": "2", "var_tone": "kind",
                                                  "ph_history": '[{"role": "user", "content": "hi"}]'})
    assert rendered.status_code == 200 and "You are kind and brief." in rendered.text and ">hi</pre>" in rendered.text

    tone = _prompt(ada, org, "shared/tone", "Be kind.")
    ada.post(f"{base}/{tone}/labels/move", {"label": "staging", "version": "1", "expected_version": "0"})
    user = _prompt(ada, org, "support/answer", "{{> shared/tone@staging}} Answer {{q}}")
    page = ada.get(f"{base}/{user}").text
    dependencies = page[page.index('id="deps-h"'):page.index("Dependents")]
    assert f'{base}/{tone}">shared/tone</a> v1 (via staging)' in dependencies
    dependents = ada.get(f"{base}/{tone}").text
    assert f'{base}/{user}">support/answer</a>' in dependents[dependents.index("Dependents"):]

    audit = ada.get(f"/console/orgs/{org}/audit?action=prompt.label_moved").text
    assert audit.count("<code>prompt.label_moved</code>") == 1 and "prompt.created</code>" not in audit
    everything = ada.get(f"/console/orgs/{org}/audit?actor=user:{ada.user_id}").text
    assert "prompt.created" in everything and "organisation.created" in everything
