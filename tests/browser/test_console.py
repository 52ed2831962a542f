"""The console in Chromium: sign in, create and revise a prompt, diff, render with variables, labels,
a review requested and approved by two people in two browsers, live updates, time travel, API keys,
another organisation's URL, nothing executing from user text, CSRF from another site, and an
accessibility check (axe-core) of every page. Screenshots of the main pages go to docs/console/."""
from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import AXE, PASSWORD, new_context, screenshot, sign_in

SCRIPT = "<script>window.__pwned = 1</script>"
IMG = "<img src=x onerror=\"window.__pwned = 1\">"


@pytest.fixture(scope="module")
def team(site):
    """Ada owns Acme (production protected, the default); Bob reviews there."""
    ada = site.person("Ada", f"ada-{uuid.uuid4().hex[:6]}@example.com")
    bob = site.person("Bob", f"bob-{uuid.uuid4().hex[:6]}@example.com")
    app = site.container.app
    org = app.create_organisation(ada["principal"], "Acme", "setup").id
    app.update_organisation(ada["principal"], org, "setup", plan="PRO")
    app.add_member(ada["principal"], org, "reviewer", "setup", email=bob["email"])
    site.settle()
    return {"org": org, "ada": ada, "bob": bob}


@pytest.fixture(scope="module")
def ada_context(browser, site, team):
    context = new_context(browser, site)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    sign_in(context, site, "Ada").close()
    yield context
    context.close()


@pytest.fixture(scope="module")
def bob_context(browser, site, team):
    context = new_context(browser, site)
    sign_in(context, site, "Bob").close()
    yield context
    context.close()


def _refund_prompt(site, team) -> str:
    """The prompt the journey creates through the pages; made through the application when a test
    runs on its own (`-k`)."""
    if "pid" not in team:
        app, ada = site.container.app, team["ada"]["principal"]
        pid = app.create_prompt(ada, team["org"], name="support/refund-reply", message="first draft", request_id="t",
                                template="You support {{product}}.\nBe brief.\nAnswer: {{question}}").id
        app.revise_prompt(ada, team["org"], pid, base_version=1, request_id="t", message="kinder",
                          template="You kindly support {{product}}.\nBe brief.\nAnswer: {{question}}")
        app.move_label(ada, team["org"], pid, "staging", 2, "t", expected_version=0)
        site.settle()
        team["pid"] = str(pid)
    return team["pid"]


def _prompt_id(url: str) -> str:
    return re.search(r"/prompts/([0-9a-f-]{36})", url).group(1)


def test_register_and_sign_in_with_the_keyboard(browser, site):
    context = new_context(browser, site)
    page = context.new_page()
    page.goto("/")
    assert page.url.endswith("/console/login")
    screenshot(page, "sign-in")
    page.get_by_role("link", name="Register").first.click()
    email = f"carol-{uuid.uuid4().hex[:6]}@example.com"
    page.get_by_label("Email").fill(email)
    page.get_by_label("Display name").fill("Carol")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Register").click()
    page.wait_for_url("**/console/login?done=registered")
    # Keyboard only: the email field has the focus, Tab to the password, Enter submits. The browser
    # applies `autofocus` after the load event, so wait for it: keys typed before it are lost.
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/orgs/new")
    page.get_by_label("Name").fill("Carol's team")
    page.get_by_label("Name").press("Enter")
    page.wait_for_url("**/prompts?done=org_created")
    assert page.get_by_role("status").inner_text() == "Organisation created."
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/login?done=signed_out")
    page.goto("/console/")
    assert "/console/login" in page.url
    context.close()


def test_create_revise_diff_render_and_move_a_label(site, team, ada_context):
    page = ada_context.new_page()
    page.goto(site.org_url(team["org"], "prompts"))
    page.get_by_role("button", name="New prompt").click()
    page.get_by_label("Name", exact=False).first.fill("support/refund-reply")
    page.get_by_label("Template (text prompts)").fill("You support {{product}}.\nBe brief.\nAnswer: {{question}}")
    page.get_by_label("Tags").fill("support")
    page.get_by_text("Model config and variables").click()
    page.get_by_label("Model config").fill('{"model": "gpt-4o-mini", "temperature": 0.2}')
    page.get_by_label("Commit message").fill("first draft")
    page.get_by_role("button", name="Create prompt").click()
    page.wait_for_url("**/prompts/*?done=created")
    pid = _prompt_id(page.url)
    team["pid"] = pid
    assert page.get_by_role("heading", name="support/refund-reply").is_visible()

    page.get_by_role("button", name="Edit (new version)").click()
    page.get_by_label("Template", exact=True).fill("You kindly support {{product}}.\nBe brief.\nAnswer: {{question}}")
    page.get_by_label("Commit message").fill("kinder")
    page.get_by_role("button", name="Save version").click()
    page.wait_for_url("**?done=revised")
    assert "Current version (v2)" in page.get_by_role("heading", name=re.compile("Current version")).inner_text()
    screenshot(page, "prompt")

    page.get_by_role("button", name="Compare versions").click()
    assert page.locator("table.diff ins").first.inner_text().strip() == "kindly"
    assert page.locator("table.diff tr.changed").count() == 1
    screenshot(page, "diff")

    page.goto(site.org_url(team["org"], "prompts", pid))
    page.get_by_label("product").fill("PromptForge")
    page.get_by_role("button", name="Render v2").click()
    problem = page.locator("#var-question-error")
    problem.wait_for()
    assert problem.inner_text() == "question is required", "validation errors are shown inline"
    assert page.get_by_label("question").get_attribute("aria-invalid") == "true"
    page.get_by_label("question").fill("Where is my refund?")
    page.get_by_role("button", name="Render v2").click()
    output = page.locator("pre.rendered")
    output.wait_for()
    assert output.inner_text() == "You kindly support PromptForge.\nBe brief.\nAnswer: Where is my refund?"
    assert page.url.endswith(pid), "rendered in place, no navigation"

    page.get_by_label("Label", exact=True).fill("staging")
    page.get_by_label("Version", exact=True).first.select_option("1")
    page.get_by_role("button", name="Set label").click()
    page.wait_for_url("**?done=label_moved")
    page.get_by_label("Move staging to").select_option("2")
    page.get_by_role("button", name="Move", exact=True).click()
    page.wait_for_url("**?done=label_moved")
    assert "staging" in page.locator("#labels").inner_text() and page.get_by_label("Move staging to").input_value() == "2"
    page.goto(site.org_url(team["org"], "prompts"))
    assert "staging → v2" in page.locator("#results").inner_text()
    page.get_by_label("Search (hybrid: meaning and words)").fill("refund")
    page.locator("#results mark").first.wait_for()
    assert page.locator("#results mark").first.inner_text().lower() == "refund"
    page.get_by_label("Search (hybrid: meaning and words)").fill("")
    page.wait_for_function("() => !document.querySelector('#results mark')")
    page.locator("#folder-tree ul.tree").wait_for()  # loaded by htmx after the page
    assert "support/" in page.locator("#folder-tree").inner_text()
    screenshot(page, "prompts")
    page.close()


def test_review_by_two_people_with_live_updates(site, team, ada_context, bob_context):
    pid = _refund_prompt(site, team)
    prompt_url = site.org_url(team["org"], "prompts", pid)
    watching = ada_context.new_page()  # Ada keeps the prompt open, never reloading it
    watching.goto(prompt_url)
    asking = ada_context.new_page()
    asking.goto(prompt_url)
    form = asking.locator("form", has=asking.get_by_label("Reason", exact=True)).last
    form.get_by_label("Version").select_option("2")
    form.get_by_label("Reason").fill("kinder wording")
    form.get_by_role("button", name="Request review").click()
    asking.wait_for_url("**/reviews/*?done=review_requested")
    review_url = asking.url.split("?")[0]
    asking.close()

    bob = bob_context.new_page()
    bob.goto(site.org_url(team["org"], "reviews"))
    bob.get_by_role("link", name=re.compile("kinder wording")).click()
    assert bob.url.split("?")[0] == review_url
    assert "kindly" in bob.locator("table.diff").first.inner_text()
    screenshot(bob, "review")
    bob.get_by_label("Comment").fill("reads well")
    started = time.monotonic()
    bob.get_by_role("button", name="Approve").click()
    bob.wait_for_url("**?done=applied")
    assert bob.locator(".review-status").inner_text() == "applied"
    notice = watching.locator("#live .live-notice", has_text="moved production to version 2")
    notice.wait_for(timeout=5000)
    assert time.monotonic() - started < 3, "the live update arrives promptly"
    assert "Bob" in notice.inner_text()

    bob.goto(prompt_url)  # now Bob watches while Ada saves a new version
    edit = ada_context.new_page()
    edit.goto(prompt_url + "/edit")
    edit.get_by_label("Template", exact=True).fill("You kindly support {{product}}.\nAnswer: {{question}}")
    edit.get_by_label("Commit message").fill("shorter")
    started = time.monotonic()
    edit.get_by_role("button", name="Save version").click()
    edit.wait_for_url("**?done=revised")
    live = bob.locator("#live .live-notice", has_text="saved version 3")
    live.wait_for(timeout=5000)
    assert time.monotonic() - started < 3 and "Ada" in live.inner_text()
    assert bob.url.split("?")[0] == prompt_url, "no reload"
    edit.close()
    watching.close()
    bob.close()


def test_time_travel_to_before_the_change(site, team, ada_context):
    page = ada_context.new_page()
    page.goto(site.org_url(team["org"], "prompts", _refund_prompt(site, team)))
    assert "staging" in page.locator("#labels").inner_text()
    page.locator("ol.versions li", has_text="first draft").get_by_role("link", name="as of this version").click()
    assert "as it was at" in page.get_by_role("status").first.inner_text()
    assert page.locator("pre.template").first.inner_text().startswith("You support {{product}}")
    labels = page.locator("#labels").inner_text()
    assert "production" not in labels.split("Open review")[0] and "staging" not in labels, labels
    page.get_by_role("link", name="Now").click()
    assert "You kindly support" in page.locator("pre.template").first.inner_text()
    page.close()


def test_create_copy_and_revoke_an_api_key(site, team, ada_context):
    page = ada_context.new_page()
    page.goto(site.org_url(team["org"], "api-keys"))
    page.get_by_label("Name", exact=True).fill("support-bot")
    page.get_by_role("button", name="Create key").click()
    raw = page.get_by_label("The new API key").input_value()
    assert raw.startswith("pfk_")
    page.get_by_role("button", name="Copy").click()
    page.get_by_text("Copied to the clipboard.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == raw
    url = f"{site.url}/v1/orgs/{team['org']}/prompts"
    assert httpx.get(url, headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    page.goto(site.org_url(team["org"], "api-keys"))
    assert raw not in page.content(), "the raw key is shown once"
    screenshot(page, "api-keys")
    page.get_by_role("button", name="Revoke support-bot").click()
    page.wait_for_url("**?done=key_revoked")
    assert httpx.get(url, headers={"Authorization": f"Bearer {raw}"}).status_code == 401
    page.close()


def test_another_orgs_prompt_url_is_the_404_page(site, team, ada_context):
    mallory = site.person("Mallory", f"mallory-{uuid.uuid4().hex[:6]}@example.com")
    app = site.container.app
    other = app.create_organisation(mallory["principal"], "Other", "setup").id
    secret = app.create_prompt(mallory["principal"], other, name="secret/plan", template="top secret", request_id="s").id
    site.settle()
    page = ada_context.new_page()
    foreign = page.goto(site.org_url(other, "prompts", str(secret)))
    foreign_text = page.locator("main").inner_text()
    missing = page.goto(site.org_url(team["org"], "prompts", str(uuid.uuid4())))
    assert foreign.status == missing.status == 404
    assert foreign_text == page.locator("main").inner_text() and "top secret" not in foreign_text
    assert page.goto(site.org_url(team["org"], "prompts", str(secret))).status == 404
    page.close()


def test_user_text_never_executes_or_evaluates(site, team, ada_context):
    app, ada = site.container.app, team["ada"]["principal"]
    payload = f"{SCRIPT} {IMG} {{{{7*7}}}}"
    pid = app.create_prompt(ada, team["org"], name=f"xss/{IMG}", template=f"Hi {payload}", template_format="plain",
                            message=f"m {payload}", request_id="x").id
    site.settle()
    page = ada_context.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    base = site.org_url(team["org"], "prompts", str(pid))
    for url in (site.org_url(team["org"], "prompts"), site.org_url(team["org"], "prompts") + "?q=pwned", base,
                base + "/edit", base + "/versions/1", site.org_url(team["org"], "audit")):
        page.goto(url)
        assert page.evaluate("window.__pwned") is None, url
    page.goto(base)
    assert page.locator("pre.template").first.inner_text() == f"Hi {payload}"
    page.get_by_role("button", name="Render v1").click()
    page.locator("pre.rendered").wait_for()
    assert page.locator("pre.rendered").inner_text() == f"Hi {payload}", "{{7*7}} stays literal"
    assert page.evaluate("window.__pwned") is None and not dialogs
    page.close()


def test_a_form_posted_from_another_site_is_refused(browser, site, team, ada_context):
    page = ada_context.new_page()
    target = site.org_url(team["org"], "prompts", _refund_prompt(site, team), "labels/move")
    page.set_content(f'<form method="post" action="{target}"><input name="label" value="evil">'
                     '<input name="version" value="1"><input name="expected_version" value="0">'
                     '<button>go</button></form>')
    with page.expect_navigation():
        page.click("button")
    assert "Request refused" in page.content()
    assert "evil" not in site.container.catalogue.get(str(team["org"]), team["pid"])["labels"]
    page.close()


def _axe(page) -> list[dict]:
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
        return {passes: r.passes.length, violations: r.violations.map(v => ({id: v.id, impact: v.impact,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))};
    }""")
    assert result["passes"] > 10, "axe-core ran"
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_every_page_is_accessible_and_fits_a_narrow_window(browser, site, team, ada_context):
    org, pid = team["org"], _refund_prompt(site, team)
    reviews = site.container.reviews.list(str(org), limit=1)
    review = reviews[0]["review_id"] if reviews else site.container.app.request_review(
        team["ada"]["principal"], org, prompt_id=uuid.UUID(pid), label="production", version=1, expected_version=0,
        reason="a11y", request_id="a11y").id
    hook = site.container.app.create_webhook(team["ada"]["principal"], org, url="https://hooks.example.com/pf",
                                             events=["*"], request_id="a11y").id
    site.settle()
    pages = ["/console/login", "/console/register", "/console/orgs/new", site.org_url(org, "prompts"),
             site.org_url(org, "prompts") + "?q=refund", site.org_url(org, "prompts") + "?folder=support",
             site.org_url(org, "prompts/folders"),
             site.org_url(org, "prompts/new"), site.org_url(org, "prompts", pid), site.org_url(org, "prompts", pid, "edit"),
             site.org_url(org, "prompts", pid, "versions/1"), site.org_url(org, "prompts", pid, "diff"),
             site.org_url(org, "prompts", pid) + "?as_of=2000-01-01T00:00:00Z", site.org_url(org, "reviews"),
             site.org_url(org, "reviews", review), site.org_url(org, "releases"), site.org_url(org, "audit"),
             site.org_url(org, "members"), site.org_url(org, "api-keys"), site.org_url(org, "webhooks"),
             site.org_url(org, "webhooks", str(hook)), site.org_url(org, "admin"), "/console/no-such-page"]
    cookies = ada_context.cookies()
    problems = {}
    for viewport in ({"width": 1280, "height": 800}, {"width": 390, "height": 844}):
        context = new_context(browser, site, viewport=viewport)
        context.add_cookies(cookies)
        context.add_init_script(path=str(AXE))  # not subject to the page's CSP, which stays on
        page = context.new_page()
        for url in pages:
            if "/login" in url or "/register" in url:
                continue
            page.goto(url)
            if viewport["width"] < 500:
                width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
                if width[0] > width[1] + 1:
                    problems[f"{url} @{viewport['width']}px"] = f"scrolls sideways: {width}"
                continue
            violations = _axe(page)
            if violations:
                problems[url] = violations
        if viewport["width"] < 500:
            page.goto(site.org_url(org, "prompts", pid))
            screenshot(page, "prompt-narrow")
        context.close()
    anonymous = new_context(browser, site)
    anonymous.add_init_script(path=str(AXE))
    page = anonymous.new_page()
    for url in ("/console/login", "/console/register"):
        page.goto(url)
        if violations := _axe(page):
            problems[url] = violations
    anonymous.close()
    assert not problems, problems
