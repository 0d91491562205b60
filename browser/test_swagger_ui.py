"""A learner's first minutes in Swagger UI: sign up, Authorize, /users/me, log out, then a 401."""

from __future__ import annotations

import json
import uuid

from playwright.sync_api import BrowserContext, Locator, Page, expect
from watch import PageWatch

PASSWORD = "correct horse battery staple"
# Long enough for a slow CI machine: one Argon2 hash takes about a tenth of a second of CPU.
SECONDS = 20_000


def operation(page: Page, operation_id: str) -> Locator:
    """Open one operation's panel and press "Try it out"."""
    block = page.locator(f"[id$='-{operation_id}']")
    block.locator(".opblock-summary").first.click()
    block.get_by_role("button", name="Try it out").click()
    return block


def execute(block: Locator, status: int) -> Locator:
    """Press Execute and wait for the live response with this status."""
    block.get_by_role("button", name="Execute").click()
    live = block.locator(".live-responses-table .response")
    expect(live.locator(".response-col_status").first).to_have_text(str(status), timeout=SECONDS)
    return live


def test_sign_up_authorize_read_me_log_out_and_get_401(
    context: BrowserContext, service_url: str
) -> None:
    page = context.new_page()
    watch = PageWatch(page)
    email = f"learner-{uuid.uuid4().hex[:8]}@example.com"
    page.goto(f"{service_url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Workshop user service")

    sign_up = operation(page, "create_user_api_v1_users_post")
    # The documented answers: the 201's example is an ordinary user, the 422 a problem.
    documented = sign_up.locator(".responses-wrapper .responses-table").last
    expect(documented.locator("tr[data-code='201']")).to_contain_text('"is_admin": false')
    expect(documented.locator("tr[data-code='422']")).to_contain_text("application/problem+json")
    example = json.loads(sign_up.locator("textarea.body-param__text").input_value())
    assert example.keys() >= {"email", "password"}, example
    body = {"email": email, "password": PASSWORD, "full_name": "Ada Lovelace"}
    sign_up.locator("textarea.body-param__text").fill(json.dumps(body))
    created = execute(sign_up, 201)
    expect(created.locator(".response-col_description")).to_contain_text(email)

    page.locator(".auth-wrapper .btn.authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    expect(dialog).to_contain_text("username")
    expect(dialog).to_contain_text("email address")
    dialog.locator("#oauth_username").fill(email)
    dialog.locator("#oauth_password").fill(PASSWORD)
    dialog.locator("button.modal-btn.authorize").click()
    expect(dialog.locator("button", has_text="Logout")).to_be_visible(timeout=SECONDS)
    dialog.locator("button.btn-done").click()

    me = operation(page, "read_me_api_v1_users_me_get")
    expect(execute(me, 200).locator(".response-col_description")).to_contain_text(email)

    logout = operation(page, "logout_api_v1_auth_logout_post")
    logout.locator("textarea.body-param__text").fill("")
    execute(logout, 204)

    # The token Swagger UI still holds is revoked: the service refuses it at once.
    watch.expect(401)
    again = execute(me, 401).locator(".response-col_description")
    expect(again).to_contain_text("application/problem+json")
    watch.assert_clean()


def test_redoc_renders_and_its_csp_blocks_the_one_outside_load(
    context: BrowserContext, service_url: str
) -> None:
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(f"{service_url}/redoc")
    expect(page.locator("h1").first).to_contain_text("Workshop user service", timeout=SECONDS)
    expect(page.get_by_role("heading", name="Create User")).to_be_visible()
    # ReDoc's attribution logo is the one file it asks another origin for; the
    # page's policy allows only this one, so the browser refuses it.
    outside = [line for line in watch.problems if "cdn.redoc.ly" in line]
    assert outside, "ReDoc loaded its logo from elsewhere: the CSP did not block it"
    watch.problems = [line for line in watch.problems if "cdn.redoc.ly" not in line]
    watch.assert_clean()


def test_the_watch_reports_swagger_ui_without_its_script(
    context: BrowserContext, service_url: str
) -> None:
    # What the suite sees when Swagger UI's files are missing, as they were from a CDN offline.
    page = context.new_page()
    page.route("**/docs-assets/swagger-ui-bundle.js", lambda route: route.fulfill(status=404))
    watch = PageWatch(page)
    page.goto(f"{service_url}/docs")
    page.wait_for_load_state("load")
    assert any("SwaggerUIBundle is not defined" in line for line in watch.problems), watch.problems
    assert any("HTTP 404" in line for line in watch.problems), watch.problems
