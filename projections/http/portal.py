"""The customer portal at `/portal`: server-rendered HTML, no script, no CDN.

Charts are inline SVG: bars drawn here, the trend line in `charts`. A customer comes
with a link (`?token=`, a signed token), exchanged for a server-side session whose id
alone goes into an HttpOnly cookie, the URL cleaned by a redirect
(`projections.http.sessions`); the page is then read with the session.
Everything shown is read from the read models only, escaped on output.
"""

# No `from __future__ import annotations`: FastAPI must see the route signatures
# evaluated, including the `Annotated` dependencies defined inside the factory.

import html
from decimal import Decimal
from importlib import resources
from string import Template
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from projections.http import views
from projections.http.auth import Authenticator, request_address
from projections.http.charts import trend_chart
from projections.http.sessions import LEGACY_COOKIE, SESSION_COOKIE, Session, Sessions
from projections.read.errors import RateLimited, Unauthenticated
from projections.read.store import ReadModelStore

MAX_TOKEN_CHARS = 2000
_PAGE = Template(resources.files("projections").joinpath("templates/portal.html").read_text())
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def percent(part: Decimal, whole: Decimal) -> Decimal:
    """part/whole in percent, clamped to [0, 100], two decimals (display only)."""
    if whole <= 0:
        return Decimal(100) if part > 0 else Decimal(0)
    value = part * 100 / whole
    return min(max(value, Decimal(0)), Decimal(100)).quantize(Decimal("0.01"))


def bar(fill: Decimal, label: str, color: str) -> str:
    return (
        f'<svg viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label="{e(label)}">'
        '<rect width="100" height="10" fill="#e5e7eb"/>'
        f'<rect width="{fill}" height="10" fill="{color}"/></svg>'
    )


def _usage_section(usage: dict[str, Any]) -> str:
    rows = []
    for f in usage["features"]:
        fid = e(f["feature_id"])
        used = Decimal(f["used"])
        if f["allowance"] is not None:
            pct = percent(used, Decimal(f["allowance"]))
            color = "#dc2626" if pct >= 100 else "#d97706" if pct >= 80 else "#2563eb"
            right = (
                f'<span><b data-testid="used-{fid}">{e(f["used"])}</b> of '
                f'<span data-testid="allowance-{fid}">{e(f["allowance"])}</span></span>'
            )
            label = f"{f['feature_id']}: {pct}% of the allowance used"
        elif f["remaining"] is not None:
            pct, color = Decimal(100), "#dc2626"
            right = (
                f'<span><b data-testid="used-{fid}">{e(f["used"])}</b> · allowance used up</span>'
            )
            label = f"{f['feature_id']}: allowance used up"
        else:  # no allowance on this plan (credits, balance): a number, no bar
            right = f'<span><b data-testid="used-{fid}">{e(f["used"])}</b> used</span>'
            rows.append(
                f'<div class="meter"><div class="label"><span>{fid}</span>{right}</div></div>'
            )
            continue
        remaining = (
            f'<div class="muted">remaining <span data-testid="remaining-{fid}">'
            f"{e(f['remaining'])}</span></div>"
            if f["remaining"] is not None
            else ""
        )
        rows.append(
            f'<div class="meter"><div class="label"><span>{fid}</span>{right}</div>'
            f"{bar(pct, label, color)}{remaining}</div>"
        )
    body = "".join(rows) or '<p class="muted">No usage this period yet.</p>'
    period = f"{e(usage['period_start'])[:10]} → {e(usage['period_end'])[:10]}"
    return (
        f'<section class="wide" id="usage"><h2>Usage this period</h2>'
        f'<p class="muted">{period}</p>{body}</section>'
    )


def _balance_section(bal: dict[str, Any]) -> str:
    model = bal["model"]
    allowed = (
        '<span class="status-ok" data-testid="allowed">Active</span>'
        if bal["allowed"]
        else '<span class="status-bad" data-testid="allowed">Blocked: top up to continue</span>'
    )
    if model not in ("credits", "balance"):
        return f'<section id="balance"><h2>Status</h2><p>{allowed}</p></section>'
    title = "Credits" if model == "credits" else f"Balance ({e(bal['currency'])})"
    current = bal["credits_remaining"] if model == "credits" else bal["balance"]
    trend = ""
    if bal["last_topup"] is not None and current is not None:
        topup, now = Decimal(bal["last_topup"]), Decimal(current)
        pct = percent(now, topup)
        trend = (
            f'<div class="meter"><div class="label"><span>since last top-up of '
            f'<span data-testid="last-topup">{e(bal["last_topup"])}</span></span>'
            f'<span>used <b data-testid="used-since-topup">{e(bal["used_since_topup"])}</b>'
            f"</span></div>"
            f"{bar(pct, f'{pct}% of the last top-up remains', '#059669')}"
            f'<div class="muted">{pct}% of the last top-up remains</div></div>'
        )
    return (
        f'<section id="balance"><h2>{title}</h2>'
        f'<div class="big" data-testid="current-balance">{e(current)}</div>'
        f"{trend}{_trend_section(bal)}<p>{allowed}</p></section>"
    )


def _trend_section(bal: dict[str, Any]) -> str:
    """The line of the credits or balance since the last top-up, with a text summary."""
    points = bal["trend"]
    if not points:
        return ""
    first, last = points[0], points[-1]
    since = e(first["at"])[:16].replace("T", " ")
    what = "credits" if bal["model"] == "credits" else "balance"
    topup = None if bal["last_topup"] is None else Decimal(bal["last_topup"])
    label = f"{what} since {since}: from {first['value']} to {last['value']}"
    return (
        f'<div class="trend">{trend_chart(points, topup, label)}'
        f'<div class="muted">since <span data-testid="trend-since">{since}</span>: '
        f'<span data-testid="trend-first">{e(first["value"])}</span> → '
        f'<span data-testid="trend-last">{e(last["value"])}</span></div></div>'
    )


def _alerts_section(alerts: list[dict[str, Any]], history: list[dict[str, Any]]) -> str:
    items = "".join(
        f'<li data-testid="alert"><b>{e(a["kind"]).replace("_", " ")}</b> '
        f"{e(a['feature_id'] or '')} crossed {e(a['threshold_percent'])}% "
        f'<span class="muted">({e(a["value"])} of {e(a["reference"])}, '
        f"{e(a['timestamp'])[:16].replace('T', ' ')})</span></li>"
        for a in alerts
    )
    body = f'<ul class="alerts">{items}</ul>' if items else '<p class="muted">No active alerts.</p>'
    return f'<section id="alerts"><h2>Alerts</h2>{body}{_history_list(history)}</section>'


def _history_list(history: list[dict[str, Any]]) -> str:
    """The recent alert events below the active ones, newest first."""
    items = "".join(
        f'<li data-testid="alert-event" data-event="{e(a["event"])}">'
        f"<b>{'Resolved' if a['event'] == 'resolved' else 'Raised'}</b> "
        f"{e(a['kind']).replace('_', ' ')} {e(a['feature_id'] or '')} "
        f"{e(a['threshold_percent'])}% "
        f'<span class="muted">({e(a["value"])}'
        f"{'' if a['reference'] is None else ' of ' + e(a['reference'])}, "
        f"{e(a['timestamp'])[:16].replace('T', ' ')})</span></li>"
        for a in history
    )
    body = (
        f'<ol class="history" data-testid="alert-history">{items}</ol>'
        if items
        else '<p class="muted">No alert history yet.</p>'
    )
    return f"<h3>Recent alert history</h3>{body}"


def _lines_table(invoice: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{e(line['description'])}</td><td class='num'>{e(line['quantity'])}</td>"
        f"<td class='num'>{e(line['amount'])}</td></tr>"
        for line in invoice["lines"]
    )
    return (
        '<div class="table-wrap"><table><thead><tr><th>Line</th><th class="num">Qty</th>'
        f'<th class="num">Amount</th></tr></thead><tbody>{rows}</tbody>'
        f'<tfoot><tr><th colspan="2">Total</th><th class="num">{e(invoice["total"])} '
        f"{e(invoice['currency'])}</th></tr></tfoot></table></div>"
    )


def _invoice_sections(upcoming: dict[str, Any] | None, invoices: list[dict[str, Any]]) -> str:
    preview = (
        f'<p>Amount due so far: <b data-testid="upcoming-total">{e(upcoming["total"])}</b> '
        f"{e(upcoming['currency'])}</p>{_lines_table(upcoming)}"
        if upcoming
        else '<p class="muted">Nothing due this period so far.</p>'
    )
    issued = "".join(
        f'<details data-testid="invoice"{" open" if n == 0 else ""}>'
        f"<summary><span>{e(i['kind'])} · "
        f"{e(i['period_start'])[:10]} → {e(i['period_end'])[:10]}</span>"
        f'<b data-testid="invoice-total">{e(i["total"])} {e(i["currency"])}</b></summary>'
        f'<p class="muted">{e(i["invoice_id"])}</p>{_lines_table(i)}</details>'
        for n, i in enumerate(invoices)
    )
    return (
        f'<section class="wide" id="upcoming"><h2>Upcoming invoice</h2>{preview}</section>'
        f'<section class="wide" id="invoices"><h2>Invoices</h2>'
        f"{issued or '<p class=muted>No invoices yet.</p>'}</section>"
    )


def render(store: ReadModelStore, customer_id: str) -> str:
    state = store.state(customer_id)
    if not state:
        body = '<section class="wide"><p>No billing data yet.</p></section>'
        return _PAGE.substitute(title="Billing", heading=e(customer_id), subheading="", body=body)
    usage = views.usage(state)
    bal = views.balance(state, views.trend(store, customer_id))
    upcoming = views.upcoming_invoice(state)["invoice"]
    fresh = views.freshness(state)
    body = "".join(
        [
            _usage_section(usage),
            _balance_section(bal),
            _alerts_section(
                views.alerts(store, customer_id), views.alert_history(store, customer_id)
            ),
            _invoice_sections(upcoming, views.invoices(store, customer_id)),
        ]
    )
    sub = f"Plan {e(usage['plan_id'])} · as of {e(fresh.updated_at or '')[:19].replace('T', ' ')}"
    return _PAGE.substitute(
        title=f"Billing · {e(customer_id)}", heading=e(customer_id), subheading=sub, body=body
    )


def _notice(title: str, body_html: str, status: int) -> HTMLResponse:
    """A portal page that shows no account, only a notice (`body_html`: markup,
    inserted as it is)."""
    page = _PAGE.substitute(
        title=title,
        heading="Billing portal",
        subheading="",
        body=f'<section class="wide">{body_html}</section>',
    )
    return HTMLResponse(page, status_code=status, headers=_HEADERS)


def _unauthorized() -> HTMLResponse:
    return _notice("Sign in", "<p>This link is invalid or has expired. Ask for a new one.</p>", 401)


def _other_session() -> HTMLResponse:
    return _notice(
        "Signed in as another customer",
        "<p>This browser is signed in to the portal as another customer. Sign out first,"
        " then open the link again.</p>"
        '<form method="post" action="/portal/sign-out"><button type="submit">Sign out'
        "</button></form>",
        409,
    )


def _too_many(exc: RateLimited) -> HTMLResponse:
    page = _notice(
        "Too many requests",
        f"<p>Too many requests; try again in {exc.retry_after} seconds.</p>",
        429,
    )
    page.headers["Retry-After"] = str(exc.retry_after)
    return page


def _set_session(response: Response, session: Session) -> None:
    response.set_cookie(
        SESSION_COOKIE, session.session_id, max_age=session.ttl_seconds, httponly=True,
        secure=True, samesite="strict", path="/portal",
    )  # fmt: skip
    _clear(response, LEGACY_COOKIE)  # a token cookie from before sessions: gone


def _clear(response: Response, name: str) -> None:
    response.delete_cookie(name, httponly=True, secure=True, samesite="strict", path="/portal")


def portal_router(store: ReadModelStore, auth: Authenticator, sessions: Sessions) -> APIRouter:
    """`/portal` and `/portal/sign-out` over the read models; links are exchanged for
    sessions (`projections.http.sessions`)."""
    router = APIRouter(tags=["portal"])

    @router.get(
        "/portal",
        response_class=HTMLResponse,
        responses={401: {}, 303: {}, 409: {}, 429: {}},
    )
    def portal(
        request: Request,
        token: Annotated[str | None, Query(description="at most 2000 characters")] = None,
        sb_session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None,
    ) -> Response:
        """The customer's billing page. A link (`?token=`, the signed token) starts a
        server-side session and redirects to `/portal`: the cookie (`Secure`,
        `HttpOnly`, `SameSite=Strict`) carries only the session id, never the token. A
        link for another customer never replaces a live session (409, sign out
        first); the same customer's link starts a fresh session in place of the old.

        Rates (429 with `Retry-After`): following a link counts against the client
        address's unproven requests before the token is checked, as does a page
        without a live session; a session's page counts against its customer."""
        try:
            return page(request_address(request.scope), token, sb_session)
        except RateLimited as exc:
            return _too_many(exc)

    def page(address: str, token: str | None, session_id: str | None) -> Response:
        if token is not None:
            auth.anonymous_request(address)
            if len(token) > MAX_TOKEN_CHARS:
                return _unauthorized()  # no token is that long: as for any bad one
            try:
                claims = auth.claims(token)
            except Unauthenticated:
                return _unauthorized()
            current = sessions.customer(session_id)
            if current is not None and current != claims.customer_id:
                return _other_session()
            sessions.end(session_id)  # the same customer's earlier session, if any
            redirect = RedirectResponse("/portal", status_code=303, headers=_HEADERS)
            _set_session(redirect, sessions.start(claims))  # the token leaves the URL
            return redirect
        customer = sessions.customer(session_id)
        if customer is None:
            auth.anonymous_request(address)
            return _unauthorized()
        auth.customer_request(customer)
        return HTMLResponse(render(store, customer), headers=_HEADERS)

    @router.post("/portal/sign-out", responses={303: {}, 429: {}})
    def sign_out(
        request: Request,
        sb_session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None,
    ) -> Response:
        """End the portal session: deleted on the server, the cookie cleared; back to
        the sign-in page. The link that started it works again until it expires.
        Counts against the client address's unproven requests (429 past them)."""
        try:
            auth.anonymous_request(request_address(request.scope))
        except RateLimited as exc:
            return _too_many(exc)
        sessions.end(sb_session)
        redirect = RedirectResponse("/portal", status_code=303, headers=_HEADERS)
        _clear(redirect, SESSION_COOKIE)
        _clear(redirect, LEGACY_COOKIE)
        return redirect

    return router
