"""Console pages that test_console_http.py does not reach: the organisation switcher, the prompt
list's label filter and its pages, rejecting a review request, changing a member's role, a
webhook's deliveries (to a real local receiver) and the admin page's projections. Plain HTTP
(TestClient), on SQLite and Postgres, with the same one-browser helper as test_console_http.py.

Every test checks what the page says (parsed rows, specific text), not only status codes."""
from __future__ import annotations

import html
import re
import uuid
from dataclasses import replace

import pytest

from application import Principal
from tests.e2e.test_console_http import Console, _org, _prompt, _user
from tests.e2e.test_webhooks import FAST, Receiver
from tests.support.waiting import until

_LINK = re.compile(r'<a href="/console/orgs/[0-9a-f-]{36}/prompts/([0-9a-f-]{36})" class="prompt-link">([^<]*)</a>')
_OPTION = re.compile(r'<option value="([0-9a-f-]{36})"( selected)?>([^<]*)</option>')


def _signed_in(api, name: str) -> Console:
    email, user_id = _user(api, name)
    console = Console(api)
    console.sign_in(email)
    console.email, console.user_id = email, user_id
    return console


def _listed(page: str) -> list[tuple[str, str]]:
    """(prompt id, name) of each row of the prompt list, in page order."""
    return [(pid, html.unescape(name)) for pid, name in _LINK.findall(page)]


def _switcher(page: str) -> list[tuple[str, bool, str]]:
    """(org id, selected, name) of each option of the header's organisation switcher."""
    form = re.search(r'<form class="switcher" action="/console/switch" method="get">(.*?)</form>', page, re.S)
    assert form, "the page has the organisation switcher"
    return [(oid, bool(sel), html.unescape(name)) for oid, sel, name in _OPTION.findall(form.group(1))]


def _flash(page: str) -> str | None:
    found = re.search(r'<p role="status" class="flash ok">([^<]*)</p>', page)
    return found.group(1) if found else None


def _settle(api, position: int | None) -> None:
    assert api.container.supervisor.wait_for(position or 0, 10), "the read models caught up"


def _add_member(owner: Console, org: str, email: str, role: str) -> None:
    owner.get(f"/console/orgs/{org}/members")
    r = owner.post(f"/console/orgs/{org}/members", {"email": email, "role": role})
    assert r.status_code == 303, r.text[:2000]


# -- 1. the organisation switcher ----------------------------------------------------------------
def test_the_switcher_moves_between_the_users_organisations_and_refuses_others(api):
    ada = _signed_in(api, "Ada")
    alpha = _org(ada, "Alpha & Co")
    beta = _org(ada, "Beta <Labs>")
    in_alpha = _prompt(ada, alpha, "alpha/only")
    mallory = _signed_in(api, "Mallory")
    theirs = _org(mallory, "Mallory Secret Org")

    page = ada.get(f"/console/orgs/{alpha}/prompts").text
    assert _switcher(page) == [(alpha, True, "Alpha & Co"), (beta, False, "Beta <Labs>")], \
        "both of her organisations (by name), the current one selected, no one else's"
    assert "Beta &lt;Labs&gt;</option>" in page and "Mallory Secret Org" not in page
    assert '<span class="org-name" title="Current organisation">Alpha &amp; Co</span>' in page

    r = ada.get(f"/console/switch?org={beta}")
    assert r.status_code == 303 and r.headers["location"] == f"/console/orgs/{beta}/prompts"
    page = ada.follow(r).text
    assert '<span class="org-name" title="Current organisation">Beta &lt;Labs&gt;</span>' in page
    assert _switcher(page) == [(alpha, False, "Alpha & Co"), (beta, True, "Beta <Labs>")]
    assert _listed(page) == [] and "No prompts here yet." in page, "Beta's list, not Alpha's"
    back = ada.follow(ada.get(f"/console/switch?org={alpha}")).text
    assert _listed(back) == [(in_alpha, "alpha/only")]

    # Someone else's organisation, a made-up one and a malformed id: the one 404 page.
    not_found = ada.get("/console/no-such-page").text
    for target in (theirs, str(uuid.uuid4())):
        r = ada.get(f"/console/switch?org={target}")
        assert r.status_code == 303
        refused = ada.get(r.headers["location"])
        assert refused.status_code == 404 and refused.text == not_found
        assert "Mallory Secret Org" not in refused.text
    malformed = ada.get("/console/switch?org=not-an-id")
    assert malformed.status_code == 404 and malformed.text == not_found
    assert ada.get("/console/switch").status_code == 400, "no organisation chosen"

    # Signed out: sent to sign in, and back to the switch afterwards.
    r = Console(api).get(f"/console/switch?org={beta}")
    assert r.status_code == 303 and r.headers["location"] == f"/console/login?next=/console/switch?org={beta}"


def test_the_switcher_is_a_navigation_that_changes_nothing(api):
    """Every state-changing form carries the CSRF token; the switcher is not one of them: it is a
    GET form (a token would leak into the URL, the history and Referer headers) whose handler only
    redirects to the organisation's pages, which check membership themselves. So a cross-site link
    to it does no more than a link to the page it redirects to, and POST is not accepted at all."""
    ada = _signed_in(api, "Ada")
    alpha, beta = _org(ada, "Alpha"), _org(ada, "Beta")
    page = ada.get(f"/console/orgs/{alpha}/prompts").text
    form = re.search(r'<form class="switcher" action="/console/switch" method="get">(.*?)</form>', page, re.S).group(1)
    assert "csrf_token" not in form, "no token in a GET form's URL"
    # Every POST form on the same page does carry it.
    posts = re.findall(r'<form[^>]*method="post"[^>]*>(.*?)</form>', page, re.S)
    assert posts and all(f'name="csrf_token" value="{ada.token}"' in f for f in posts)

    head = api.container.app.head_position()
    cross_site = ada.client.get(f"/console/switch?org={beta}",
                                headers={"Referer": "https://evil.example/page", "Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 303 and cross_site.headers["location"] == f"/console/orgs/{beta}/prompts"
    assert "set-cookie" not in cross_site.headers, "the switch stores nothing in the session"
    for refused in (ada.post("/console/switch", {"org": beta}), ada.post("/console/switch", {"org": beta}, token="")):
        assert refused.status_code == 405 and "This page does not accept that kind of request." in refused.text
    assert api.container.app.head_position() == head, "no event was written"


# -- 2. the prompt list: the label filter and its pages ---------------------------------------------
def test_the_label_filter_shows_the_prompts_with_that_label(api):
    ada = _signed_in(api, "Ada")
    org = _org(ada)
    a = _prompt(ada, org, "sales/a", tags="sales")
    b = _prompt(ada, org, "sales/b")
    c = _prompt(ada, org, "support/c", tags="sales")
    for pid in (a, c):
        r = ada.post(f"/console/orgs/{org}/prompts/{pid}/labels/move",
                     {"label": "staging", "version": "1", "expected_version": "0"})
        assert r.status_code == 303, r.text[:2000]
    r = ada.post(f"/console/orgs/{org}/prompts/{b}/labels/move", {"label": "canary", "version": "1",
                                                                   "expected_version": "0"})
    assert r.status_code == 303
    base = f"/console/orgs/{org}/prompts"

    staging = ada.get(f"{base}?label=staging").text
    assert _listed(staging) == [(a, "sales/a"), (c, "support/c")]
    assert 'id="label-filter" name="label" list="label-options" value="staging"' in staging, "the filter is shown"
    assert _listed(ada.get(f"{base}?label=%20Staging%20").text) == [(a, "sales/a"), (c, "support/c")], \
        "labels are matched as normalised (trimmed, lower case)"
    assert _listed(ada.get(f"{base}?label=canary").text) == [(b, "sales/b")]
    assert _listed(ada.get(f"{base}?label=staging&folder=support").text) == [(c, "support/c")]
    assert _listed(ada.get(f"{base}?label=staging&tag=sales").text) == [(a, "sales/a"), (c, "support/c")]
    assert _listed(ada.get(f"{base}?label=canary&tag=sales").text) == []
    assert len(_listed(ada.get(f"{base}?label=latest").text)) == 3, "every prompt has `latest`"
    assert _listed(ada.get(f"{base}?label=").text) == _listed(ada.get(base).text), "an empty filter is no filter"
    nothing = ada.get(f"{base}?label=production").text
    assert _listed(nothing) == [] and "No prompts here yet." in nothing
    # The label filter as htmx asks for it: the results fragment only.
    fragment = ada.get(f"{base}?label=canary", headers={"HX-Request": "true", "HX-Target": "results"}).text
    assert fragment.lstrip().startswith('<div id="results"') and "<html" not in fragment
    assert _listed(fragment) == [(b, "sales/b")]
    # Typed text is escaped back into the form, never interpreted.
    odd = ada.get(f"{base}?label=%3Cscript%3E").text
    assert _listed(odd) == [] and 'value="&lt;script&gt;"' in odd and "<script>" not in odd


def _bulk_prompts(api, console: Console, org: str, names: list[str], tags: dict[str, list[str]]) -> dict[str, str]:
    """Many prompts through the application (the console's forms are tested elsewhere): name -> id."""
    principal = Principal.user(uuid.UUID(console.user_id))
    ids, position = {}, 0
    for name in names:
        result = api.container.app.create_prompt(principal, uuid.UUID(org), name=name, template=f"Text of {name}",
                                                 tags=tags.get(name, []), request_id="bulk")
        ids[name], position = str(result.id), max(position, result.position or 0)
    _settle(api, position)
    return ids


def _pages(console: Console, url: str) -> list[list[tuple[str, str]]]:
    """Each page of the list, following "Next page" until there is none."""
    pages, seen = [], set()
    while url:
        assert url not in seen, "a next page link went back"
        seen.add(url)
        page = console.get(url)
        assert page.status_code == 200, page.text[:1000]
        pages.append(_listed(page.text))
        nxt = re.search(r'<a href="([^"]+)" rel="next">Next page</a>', page.text)
        url = html.unescape(nxt.group(1)) if nxt else None
        if len(pages) > 1:
            assert re.search(r'<a href="[^"]+">First page</a>', page.text), "later pages link to the first"
    return pages


def test_the_prompt_list_pages_through_every_prompt_once(api):
    from interfaces.console.pages.prompts import PAGE_SIZE

    ada = _signed_in(api, "Ada")
    org = _org(ada)
    count = PAGE_SIZE + 7
    names = [f"bulk/p-{i:03d}" for i in range(count)] + ["other/x", "other/y"]
    tagged = {n: ["paged"] for n in names[: PAGE_SIZE + 3]}
    ids = _bulk_prompts(api, ada, org, names, tagged)
    base = f"/console/orgs/{org}/prompts"

    pages = _pages(ada, base)
    assert [len(p) for p in pages] == [PAGE_SIZE, count + 2 - PAGE_SIZE]
    everything = [row for p in pages for row in p]
    assert len(everything) == len(set(everything)) == len(ids), "no duplicates, no gaps"
    assert everything == sorted(((ids[n], n) for n in names), key=lambda row: row[1]), "in name order, across pages"
    first = ada.get(base).text
    assert "First page" not in first, "the first page does not link to itself"

    # A filter travels with the next page link.
    tagged_pages = _pages(ada, f"{base}?tag=paged")
    assert [len(p) for p in tagged_pages] == [PAGE_SIZE, 3]
    assert sorted(name for p in tagged_pages for _, name in p) == sorted(tagged)
    folder_pages = _pages(ada, f"{base}?folder=bulk&tag=paged")
    assert [name for p in folder_pages for _, name in p] == sorted(tagged)
    # Exactly one page: no next page link.
    assert len(_pages(ada, f"{base}?folder=other")) == 1
    # A malformed cursor is refused with the console's page, not a 500.
    broken = ada.get(f"{base}?cursor=not-a-cursor")
    assert broken.status_code == 400 and "<h1>That did not work</h1>" in broken.text
    assert "<p>invalid or foreign cursor</p>" in broken.text


# -- 3. rejecting a review request -----------------------------------------------------------------
def test_a_reviewer_rejects_a_request_and_the_label_stays(api):
    ada = _signed_in(api, "Ada")  # owner, the requester
    org = _org(ada)
    pid = _prompt(ada, org, "support/reply", "Hi {{name}}")
    base = f"/console/orgs/{org}"
    ada.get(f"{base}/prompts/{pid}/edit")
    assert ada.post(f"{base}/prompts/{pid}/edit", {"base_version": "1", "template": "Hello {{name}}"}
                    ).status_code == 303
    bob = _signed_in(api, "Bob")
    _add_member(ada, org, bob.email, "reviewer")

    # production -> v1, approved by Bob: the label the rejected request will try to move.
    r = ada.post(f"{base}/reviews", {"prompt_id": pid, "label": "production", "version": "1",
                                     "expected_version": "0", "reason": "first"})
    first = r.headers["location"].split("?")[0]
    bob.get(first)
    assert "Approved and applied." in bob.follow(bob.post(first + "/decide", {"decision": "approve"})).text
    assert api.container.catalogue.get(org, pid)["labels"] == {"production": 1}

    r = ada.post(f"{base}/reviews", {"prompt_id": pid, "label": "production", "version": "2",
                                     "expected_version": "1", "reason": "ship v2"})
    assert r.status_code == 303
    review_url = r.headers["location"].split("?")[0]
    # A form without a decision it knows is refused, never taken for another one (it used to withdraw).
    for unclear in ({"comment": "no button"}, {"decision": "Reject"}, {"decision": ""}):
        r = ada.post(review_url + "/decide", unclear)
        assert r.status_code == 400 and "Choose to approve, reject or withdraw the request." in r.text, unclear
    assert '<strong class="review-status">open</strong>' in ada.get(review_url).text
    own = ada.post(review_url + "/decide", {"decision": "reject", "comment": "changed my mind"})
    assert own.status_code == 403 and "requester" in own.text.lower()
    assert '<strong class="review-status">open</strong>' in own.text, "still open"

    bob.get(review_url)
    done = bob.follow(bob.post(review_url + "/decide", {"decision": "reject", "comment": "<b>not</b> on a Friday"}))
    page = done.text
    assert _flash(page) == "Request rejected."
    assert '<strong class="review-status">rejected</strong>' in page
    assert "<dt>Decided by</dt><dd>Bob: “&lt;b&gt;not&lt;/b&gt; on a Friday”</dd>" in page
    assert 'id="decide-h"' not in page and "/decide" not in page, "nothing left to decide"
    assert api.container.catalogue.get(org, pid)["labels"] == {"production": 1}, "the label did not move"
    listing = bob.get(f"{base}/prompts").text
    assert '<span class="badge">production → v1</span>' in listing and "production → v2" not in listing

    rejected = bob.get(f"{base}/reviews?status=rejected").text
    row = re.search(rf'<a href="{review_url}">label: ship v2</a></td>\s*<td>production</td>\s*'
                    r"<td>support/reply → v2</td>\s*<td>Ada</td>\s*<td>rejected</td>", rejected)
    assert row and ": first</a>" not in rejected, "the rejected request, and only it, under `rejected`"
    assert "ship v2" not in bob.get(f"{base}/reviews?status=open").text
    again = bob.post(review_url + "/decide", {"decision": "reject", "comment": "twice"})
    assert again.status_code == 409 and "the request is rejected" in again.text
    assert ada.post(review_url + "/decide", {"decision": "withdraw"}).status_code == 409, "too late to withdraw"


# -- 4. changing a member's role -------------------------------------------------------------------
def _member_rows(page: str) -> dict[str, str]:
    """email -> role, from the members table."""
    rows = re.findall(r"<tr>\s*<td>[^<]*</td><td>([^<]+)</td><td>([^<]+)</td>", page)
    return {html.unescape(email): role for email, role in rows}


def test_an_owner_demotes_a_developer_and_the_last_owner_stays(api):
    ada = _signed_in(api, "Ada")
    org = _org(ada)
    pid = _prompt(ada, org)
    dev = _signed_in(api, "Dev")
    _add_member(ada, org, dev.email, "developer")
    base = f"/console/orgs/{org}"
    assert "Edit (new version)" in dev.get(f"{base}/prompts/{pid}").text, "a developer may edit"

    members = ada.get(f"{base}/members").text
    assert _member_rows(members) == {ada.email: "owner", dev.email: "developer"}
    assert f'action="{base}/members/{dev.user_id}"' in members
    page = ada.follow(ada.post(f"{base}/members/{dev.user_id}", {"role": "viewer"})).text
    assert _flash(page) == "Role changed."
    assert _member_rows(page) == {ada.email: "owner", dev.email: "viewer"}
    assert re.search(rf'<select id="role-{dev.user_id}" name="role">.*?<option value="viewer" selected>', page)

    # The demoted member's next request already has the viewer's rights.
    prompt_page = dev.get(f"{base}/prompts/{pid}").text
    assert "Edit (new version)" not in prompt_page and "Render preview" in prompt_page
    refused = dev.post(f"{base}/prompts/{pid}/edit", {"base_version": "1", "template": "Hi {{name}}!"})
    assert refused.status_code == 403
    assert "<strong>Not done:</strong> role &#39;viewer&#39; lacks permission &#39;prompts:write&#39;" in refused.text
    assert api.container.catalogue.get(org, pid)["latest_version"] == 1, "no version was saved"
    # Nor do the pages holding those forms open for them (they could only end in that refusal).
    for form_page in (f"{base}/prompts/{pid}/edit", f"{base}/prompts/new"):
        page = dev.get(form_page)
        assert page.status_code == 403 and "<h1>Not allowed</h1>" in page.text, form_page
        assert "lacks permission &#39;prompts:write&#39;" in page.text and 'name="template"' not in page.text
    their_members = dev.get(f"{base}/members").text
    assert "Change role" not in their_members and "Add a member" not in their_members
    assert dev.post(f"{base}/members/{ada.user_id}", {"role": "viewer"}).status_code == 403

    # The last owner cannot be demoted: the members page again, with the reason; nothing changed.
    ada.get(f"{base}/members")
    last = ada.post(f"{base}/members/{ada.user_id}", {"role": "admin"})
    assert last.status_code == 409 and "text/html" in last.headers["content-type"]
    assert "the last owner cannot be demoted" in last.text
    assert _member_rows(last.text) == {ada.email: "owner", dev.email: "viewer"}
    assert _member_rows(ada.get(f"{base}/members").text)[ada.email] == "owner"
    # An unknown role is a message too, not a 500.
    unknown = ada.post(f"{base}/members/{dev.user_id}", {"role": "<b>superuser</b>"})
    assert unknown.status_code == 422 and "Unknown role" in unknown.text and "<b>superuser" not in unknown.text
    assert _member_rows(ada.get(f"{base}/members").text)[dev.email] == "viewer"


# -- 5. webhook deliveries and the admin page ------------------------------------------------------
def _delivery_rows(page: str) -> list[dict[str, str]]:
    rows = re.findall(r"<tr>\s*<td><code>([^<]+)</code> #(\d+)</td>\s*<td>([^<]+)</td>\s*<td>(\d+)</td>"
                      r"\s*<td><time[^>]*>[^<]*</time></td>\s*<td>([^<]*)</td>", page)
    return [{"type": t, "position": p, "state": s, "attempts": a, "last": html.unescape(last)}
            for t, p, s, a, last in rows]


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


def test_the_deliveries_page_shows_each_delivery_and_its_last_attempt(api_factory, receiver):
    api = api_factory(**FAST)
    ada = _signed_in(api, "Ada")
    org = _org(ada)
    base = f"/console/orgs/{org}"
    receiver.mode = "fail"
    ada.get(f"{base}/webhooks")
    created = ada.post(f"{base}/webhooks", {"url": receiver.url, "events": "prompt.created", "description": "ci"})
    assert created.status_code == 201, created.text[:2000]
    hook = re.search(rf'<a href="{base}/webhooks/([0-9a-f-]{{36}})">', created.text).group(1)
    page_url = f"{base}/webhooks/{hook}"
    empty = ada.get(page_url).text
    assert f"<h1>Deliveries to {receiver.url}</h1>" in empty and "No delivery yet." in empty
    assert "Enabled · events: prompt.created" in empty

    pid = _prompt(ada, org, "hooked/one")
    position = api.container.catalogue.get(org, pid)["position"]
    assert len(receiver.wait_for(2, accepted=False)) >= 2  # the first attempt and a retry, both answered 500
    failing = _delivery_rows(ada.get(page_url).text)
    assert len(failing) == 1, failing
    (row,) = failing
    assert (row["type"], row["position"], row["state"]) == ("prompt.created", str(position), "pending")
    assert int(row["attempts"]) >= 2 and row["last"].startswith("failed (HTTP 500)")

    receiver.mode = "ok"
    delivered = until(lambda: [r for r in _delivery_rows(ada.get(page_url).text) if r["state"] == "delivered"],
                       message="the delivery to succeed")
    (row,) = delivered
    sent = [r for r in receiver.requests if r.event_id == position]
    assert row["type"] == "prompt.created" and row["position"] == str(position)
    assert int(row["attempts"]) == len(sent) >= 3 and row["last"] == "ok (HTTP 200)"
    assert [r.status for r in sent] == [500] * (len(sent) - 1) + [200]
    # The page agrees with the API's log of the same delivery.
    log = api.container.deliveries.log(org, hook)
    assert [a["status_code"] for a in log[0]["log"]] == [r.status for r in sent]

    # Only org:manage sees it; another organisation's webhook is the 404 page.
    dev = _signed_in(api, "Dev")
    _add_member(ada, org, dev.email, "developer")
    assert dev.get(page_url).status_code == 403
    other = _org(dev, "Other")
    assert dev.get(f"/console/orgs/{other}/webhooks/{hook}").status_code == 404
    assert ada.get(f"{base}/webhooks/{uuid.uuid4()}").status_code == 404


def test_the_admin_page_lists_every_projection_with_its_position_and_lag(api, monkeypatch):
    ada = _signed_in(api, "Ada")
    org = _org(ada)
    _prompt(ada, org)
    container = api.container
    head = container.app.head_position()
    _settle(api, head)
    page = ada.get(f"/console/orgs/{org}/admin").text
    shown_head = int(re.search(r"Head of the event log: <strong>(\d+)</strong>", page).group(1))
    assert shown_head == head
    rows = re.findall(r"<tr>\s*<td>([^<]+)</td><td>(\d+)</td><td>(\d+)</td><td>([\d.]+)</td>\s*<td>([^<]*)</td>", page)
    names = [name for name, *_ in rows]
    assert names == container.supervisor.names and len(names) == len(set(names)) >= 5
    assert {"catalogue", "memberships"} <= set(names)
    for name, position, lag, seconds, status in rows:
        assert int(position) + int(lag) == head, (name, position, lag)
        assert int(position) == head and int(lag) == 0 and status == "current", name
        assert float(seconds) == 0.0

    # A lagging projection is shown as such: the numbers are the supervisor's status, as it gives them.
    real = container.supervisor.status
    monkeypatch.setattr(container.supervisor, "status", lambda: [
        replace(s, position=s.position - 3, lag_events=3, lag_seconds=1.5) if s.name == "catalogue" else s
        for s in real()])
    lagging = ada.get(f"/console/orgs/{org}/admin").text
    monkeypatch.undo()
    row = re.search(r"<tr>\s*<td>catalogue</td>(.*?)</tr>", lagging, re.S).group(1)
    assert re.fullmatch(rf"<td>{head - 3}</td><td>3</td><td>1\.5</td>\s*<td>catching up</td>\s*", row), row
    assert "<td>memberships</td><td>%d</td><td>0</td>" % head in lagging, "the others are still current"

    # The admin page is for org:manage only.
    dev = _signed_in(api, "Dev")
    _add_member(ada, org, dev.email, "admin")
    refused = dev.get(f"/console/orgs/{org}/admin")
    assert refused.status_code == 403 and "Projections" not in refused.text
