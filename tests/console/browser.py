"""The web console in a real browser (Debian's Chromium, driven by Playwright).

Run by tests/console.rs, which starts the test IdP (idp.py), PostgreSQL and Airlock and
passes their addresses in the environment. Each scenario drives the console as a person
would and judges by effect: psql's own output and exit status, what the page shows.
Prints one `ok <scenario>` line per scenario; exits non-zero on the first failure,
with a screenshot of the page beside the others.
"""

import json
import os
import subprocess
import sys
import time
import traceback

from playwright.sync_api import expect, sync_playwright

CONSOLE = os.environ["CONSOLE"]
CONNINFO = os.environ["PG_CONNINFO"]
AGENT_KEY = os.environ["AGENT_KEY"]
ADA_AGENT_KEY = os.environ["ADA_AGENT_KEY"]
BOB_KEY = os.environ["BOB_KEY"]
SHOTS = os.environ["SHOTS"]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000


def psql(sql, key=AGENT_KEY):
    """Starts psql running `sql` as an agent; returns the process."""
    env = dict(os.environ, PGPASSWORD=key, PGCONNECT_TIMEOUT="10")
    return subprocess.Popen(
        ["psql", CONNINFO, "-X", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc, timeout=20):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def sign_in_oidc(browser, user, viewport=DESKTOP):
    """A fresh browser context signed in through the IdP as `user`."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(CONSOLE + "/console/")
    page.get_by_role("link", name="Sign in with your identity provider").click()
    page.get_by_role("button", name=f"Sign in as {user}").click()
    return context, page


def card_for(page, text):
    return page.locator("article.request", has_text=text)


def scenario_oidc_login(browser, state):
    context, page = sign_in_oidc(browser, "ada")
    expect(page).to_have_url(CONSOLE + "/console/approvals")
    expect(page.get_by_role("heading", name="Pending approvals")).to_be_visible()
    expect(page.locator(".who .subject")).to_have_text("ada")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    cookies = {c["name"]: c for c in context.cookies()}
    login = cookies["airlock_console"]
    assert login["httpOnly"] and login["sameSite"] == "Strict", login
    state["ada"] = (context, page)


def scenario_approve(browser, state):
    _, page = state["ada"]
    page.evaluate("window.__noReload = 1")
    proc = psql("DROP TABLE console_approve")
    card = card_for(page, "console_approve")
    expect(card).to_be_visible()  # arrives on the live list
    assert page.evaluate("window.__noReload") == 1, "the page reloaded"
    expect(card.locator(".statement .k").first).to_have_text("DROP")
    expect(card.locator(".class[data-class=destructive]")).to_be_visible()
    expect(card.locator(".left")).to_contain_text("left")
    # The screenshots for the README, with a request waiting.
    page.screenshot(path=os.path.join(SHOTS, "approvals-desktop.png"), full_page=True)
    phone = page.context.browser.new_context(viewport=PHONE, device_scale_factor=2)
    phone.add_cookies(page.context.cookies())
    phone_page = phone.new_page()
    phone_page.goto(CONSOLE + "/console/approvals")
    expect(card_for(phone_page, "console_approve")).to_be_visible()
    phone_page.screenshot(path=os.path.join(SHOTS, "approvals-phone.png"), full_page=True)
    phone.close()
    card.get_by_role("button", name="Approve once").click()
    code, out, err = finish(proc)
    assert code == 0 and "DROP TABLE" in out, (code, out, err)
    expect(card).to_have_count(0)  # gone from the live list
    assert page.evaluate("window.__noReload") == 1, "the page reloaded"


def scenario_deny(browser, state):
    _, page = state["ada"]
    proc = psql("DROP TABLE console_deny")
    card = card_for(page, "console_deny")
    expect(card).to_be_visible()
    card.get_by_placeholder("Reason (the agent sees it)").fill("not during the change freeze")
    card.get_by_role("button", name="Deny").click()
    code, out, err = finish(proc)
    assert code != 0, (code, out, err)
    assert "not during the change freeze" in err, err
    expect(card).to_have_count(0)


def scenario_recorded_text_cannot_disguise_itself(browser, state):
    _, page = state["ada"]
    # A CR pair would end a Server-Sent Event early and start one of the statement's
    # making (blanking the live list); a right-to-left override would reorder the
    # statement on the card.
    fake = "\r\revent: pending\rdata: <p class=empty>Nothing is waiting for a decision.</p>\r\r"
    proc = psql(f"DROP TABLE console_deny; SELECT 'kept \u202e', '{fake}'")
    card = card_for(page, "console_deny")
    expect(card).to_be_visible()
    expect(card.locator(".statement")).to_contain_text("⟨U+202E⟩")
    expect(card.locator(".statement")).to_contain_text("⟨U+000D⟩")
    page.wait_for_timeout(300)  # anything the injected event did would show by now
    expect(card).to_be_visible()
    expect(page.locator("#pending .empty")).to_have_count(0)
    card.get_by_placeholder("Reason (the agent sees it)").fill("disguised")
    card.get_by_role("button", name="Deny").click()
    code, out, err = finish(proc)
    assert code != 0 and "disguised" in err, (code, out, err)


def scenario_cross_site_sign_in_is_refused(browser, state):
    # Another site submits the token form with the attacker's key, to sign the victim
    # in as the attacker: no binding cookie goes with it, and the origin is not ours.
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(os.environ["IDP"] + "/elsewhere")
    page.evaluate(
        """([action, token]) => {
            const form = document.createElement('form');
            form.method = 'POST'; form.action = action;
            for (const [k, v] of [['token', token], ['binding', ''], ['next', '/console/']]) {
                const input = document.createElement('input');
                input.type = 'hidden'; input.name = k; input.value = v; form.appendChild(input);
            }
            document.body.appendChild(form); form.submit();
        }""",
        [CONSOLE + "/console/login", BOB_KEY],
    )
    page.wait_for_load_state()
    expect(page.locator("[role=alert]")).to_contain_text("another site")
    assert not any(c["name"] == "airlock_console" for c in context.cookies()), context.cookies()
    context.close()


def scenario_self_approval(browser, state):
    _, page = state["ada"]
    proc = psql("DROP TABLE console_self", key=ADA_AGENT_KEY)
    card = card_for(page, "console_self")
    expect(card).to_be_visible()
    expect(card.locator(".own")).to_contain_text("another approver must decide")
    expect(card.get_by_role("button", name="Approve once")).to_have_count(0)
    # Forged past the UI: the same request the button would send.
    request_id = card.get_attribute("data-id")
    csrf = page.locator("#pending").get_attribute("data-csrf")
    status, body = forged_post(page, f"/console/approvals/{request_id}/approve", csrf)
    assert status == 403, (status, body)
    assert "own request" in body, body
    state["self"] = (proc, request_id)


def scenario_auditor_cannot_approve(browser, state):
    proc, request_id = state.pop("self")
    context, page = sign_in_oidc(browser, "carol")
    expect(page).to_have_url(CONSOLE + "/console/sessions")
    page.goto(CONSOLE + "/console/approvals")
    card = card_for(page, "console_self")
    expect(card).to_be_visible()
    expect(page.locator(".notice")).to_contain_text("only approvers")
    expect(card.get_by_role("button")).to_have_count(0)
    csrf = page.locator("#pending").get_attribute("data-csrf")
    status, body = forged_post(page, f"/console/approvals/{request_id}/approve", csrf)
    assert status == 403 and "not an approver" in body, (status, body)
    # The statement still waits: the agent gives up, and nothing was run.
    assert proc.poll() is None, "psql ended while nobody approved"
    proc.kill()
    proc.wait()
    state["carol"] = (context, page)


def forged_post(page, path, csrf, fields=None):
    body = {"csrf": csrf, **(fields or {})}
    result = page.evaluate(
        """async ([path, body]) => {
            const r = await fetch(path, { method: 'POST', headers: { 'X-Requested-With': 'fetch' },
                                          body: new URLSearchParams(body) });
            return [r.status, await r.text()];
        }""",
        [path, body],
    )
    return result[0], result[1]


def scenario_replay_shows_masked_rows(browser, state):
    _, page = state["carol"]
    rows = page.locator("table.sessions tbody tr", has_text="ci-bot")
    page.goto(CONSOLE + "/console/sessions")
    before = rows.count()
    code, out, err = finish(psql("SELECT id, email FROM console_people ORDER BY id"))
    assert code == 0 and "[MASKED:email]" in out and "grace@example.com" not in out, (out, err)
    # The recorder indexes a session as it closes, a moment after psql exits.
    deadline = time.monotonic() + 10
    while True:
        page.goto(CONSOLE + "/console/sessions")
        if rows.count() > before or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    row = rows.first
    expect(row).to_be_visible()
    row.locator("a").first.click()
    expect(page.get_by_role("heading", name="Session")).to_be_visible()
    table = page.locator("table.result", has_text="email")
    expect(table).to_be_visible()
    expect(table.locator("td", has_text="[MASKED:email]").first).to_be_visible()
    html = page.content()
    assert "grace@example.com" not in html, "the replay shows the unmasked value"
    expect(page.locator(".stmt .tag", has_text="SELECT 2")).to_be_visible()
    page.screenshot(path=os.path.join(SHOTS, "replay-desktop.png"), full_page=True)
    phone = browser.new_context(viewport=PHONE, device_scale_factor=2)
    phone.add_cookies(page.context.cookies())
    phone_page = phone.new_page()
    phone_page.goto(page.url)
    expect(phone_page.locator("table.result")).to_be_visible()
    phone_page.screenshot(path=os.path.join(SHOTS, "replay-phone.png"), full_page=True)
    phone.close()
    # The approvals from earlier are in their sessions, as policy events.
    page.goto(CONSOLE + "/console/sessions?verdict=denied")
    expect(page.locator("table.sessions tbody tr")).to_have_count(2)
    page.locator("table.sessions tbody tr a").nth(1).click()  # newest first: the first denial
    expect(page.locator(".policy[data-event=denied]")).to_contain_text("not during the change freeze")


def scenario_ssh_player(browser, state):
    _, page = state["carol"]
    page.goto(CONSOLE + "/console/sessions?protocol=ssh")
    page.locator("table.sessions tbody tr a").first.click()
    expect(page.locator(".command[data-kind=exec]")).to_contain_text("echo player-marker; uname -s")
    player = page.locator(".player[data-cast]")
    expect(player).to_have_attribute("data-state", "paused")
    player.get_by_role("button", name="Play").click()
    expect(player).to_have_attribute("data-state", "ended")
    expect(player.locator("pre.term")).to_contain_text("player-marker")
    expect(player.locator("pre.term")).to_contain_text("Linux")
    page.screenshot(path=os.path.join(SHOTS, "replay-ssh-desktop.png"), full_page=True)


def scenario_http_replay(browser, state):
    _, page = state["carol"]
    page.goto(CONSOLE + "/console/sessions?protocol=http")
    page.locator("table.sessions tbody tr a").first.click()
    exchange = page.locator("details.exchange").first
    expect(exchange.locator(".method")).to_have_text("GET")
    expect(exchange.locator(".url")).to_contain_text("/api/json")
    expect(exchange.locator(".status")).to_have_text("200")
    expect(exchange.locator("pre.body")).to_contain_text("[MASKED")
    assert "alice@example.com" not in page.content(), "the replay shows the unmasked email"


def scenario_live_replay(browser, state):
    _, page = state["carol"]
    env = dict(os.environ, PGPASSWORD=AGENT_KEY)
    proc = subprocess.Popen(["psql", CONNINFO, "-X", "-A", "-t"], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdin.write("select 'live-one';\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "live-one"  # the session is open and recorded
    # Recorded blocks reach the index within the recorder's flush interval: look
    # again until the open session is listed, as a person would.
    open_row = page.locator("table.sessions tbody tr", has=page.locator(".open")).first
    for _ in range(50):
        page.goto(CONSOLE + "/console/sessions")
        if open_row.count():
            break
        time.sleep(0.1)
    expect(open_row).to_be_visible()
    page.evaluate("window.__noReload = 1")
    open_row.locator("a").first.click()
    expect(page.locator("#replay-live")).to_have_attribute("data-state", "live")
    page.evaluate("window.__noReload = 1")
    expect(page.locator("#transcript")).to_contain_text("live-one")
    proc.stdin.write("select 'live-two';\n")
    proc.stdin.flush()
    expect(page.locator("#transcript")).to_contain_text("live-two")  # without a reload
    assert page.evaluate("window.__noReload") == 1, "the page reloaded"
    proc.stdin.close()
    proc.wait(timeout=10)
    expect(page.locator("#replay-live")).to_have_text("ended")
    expect(page.locator("#transcript .end")).to_be_visible()


def scenario_verify(browser, state):
    _, page = state["carol"]
    page.goto(CONSOLE + "/console/verify")
    page.get_by_role("button", name="Run verify").click()
    expect(page.locator(".verdict[data-state=ok]")).to_contain_text("Verified")


def scenario_approver_without_audit_role(browser, state):
    _, page = state["ada"]
    response = page.goto(CONSOLE + "/console/sessions")
    assert response.status == 403, response.status
    expect(page.locator("[role=alert]")).to_contain_text("auditors")


def scenario_no_role(browser, state):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(CONSOLE + "/console/")
    page.get_by_role("link", name="Sign in with your identity provider").click()
    page.get_by_role("button", name="Sign in as dave").click()
    expect(page.locator("[role=alert]")).to_contain_text("no role")
    assert not any(c["name"] == "airlock_console" for c in context.cookies()), context.cookies()
    context.close()


def scenario_token_login_and_logout(browser, state):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(CONSOLE + "/console/login")
    page.get_by_label("Token or API key").fill("not-a-token")
    page.get_by_role("button", name="Sign in with a token").click()
    expect(page.locator(".error")).to_contain_text("refused")
    page.get_by_label("Token or API key").fill(BOB_KEY)
    page.get_by_role("button", name="Sign in with a token").click()
    expect(page.locator(".who .subject")).to_have_text("bob")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(CONSOLE + "/console/login")
    page.goto(CONSOLE + "/console/approvals")
    expect(page).to_have_url(CONSOLE + "/console/login?next=%2Fconsole%2Fapprovals")
    context.close()


SCENARIOS = [
    scenario_oidc_login,
    scenario_approve,
    scenario_deny,
    scenario_recorded_text_cannot_disguise_itself,
    scenario_self_approval,
    scenario_auditor_cannot_approve,
    scenario_replay_shows_masked_rows,
    scenario_ssh_player,
    scenario_http_replay,
    scenario_live_replay,
    scenario_verify,
    scenario_approver_without_audit_role,
    scenario_no_role,
    scenario_cross_site_sign_in_is_refused,
    scenario_token_login_and_logout,
]


def main():
    os.makedirs(SHOTS, exist_ok=True)
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        state = {}
        for scenario in SCENARIOS:
            name = scenario.__name__.removeprefix("scenario_")
            started = time.monotonic()
            try:
                scenario(browser, state)
            except Exception:
                traceback.print_exc()
                for i, ctx in enumerate(browser.contexts):
                    for j, pg in enumerate(ctx.pages):
                        try:
                            pg.screenshot(path=os.path.join(SHOTS, f"failed-{name}-{i}-{j}.png"), full_page=True)
                        except Exception:
                            pass
                print(f"FAILED {name}", flush=True)
                errors.append(name)
                break
            print(f"ok {name} ({time.monotonic() - started:.2f}s)", flush=True)
        browser.close()
    print(json.dumps({"failed": errors}))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
