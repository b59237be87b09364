//! The operator console at `/console`: server-rendered pages (askama) over the services the
//! admin API uses, htmx (vendored into the binary) for live updates, a signed session cookie
//! after an admin-token login, and a CSRF token on every change. Every page reads without
//! JavaScript; htmx only refreshes parts of it.

mod chart;
mod ledger;
mod pages;
mod payments;
mod session;
mod upstreams;

use crate::state::AppState;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use session::{COOKIE as SESSION_COOKIE, SESSION_HOURS, Session};

/// htmx, vendored (2.0.11, BSD Zero-Clause: `assets/htmx-LICENSE`).
const HTMX: &[u8] = include_bytes!("../../assets/htmx-2.0.11.min.js");
const CSS: &[u8] = include_bytes!("../../assets/console.css");
/// Scripts and styles from the console itself only; no inline script, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::home))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console/approvals", get(pages::approvals))
        .route("/console/approvals/{id}", get(pages::approval))
        .route("/console/alerts", get(pages::alerts))
        .route("/console/alerts/{id}/ack", post(pages::acknowledge_alert))
        .route("/console/dead-letters", get(pages::dead_letters))
        .route("/console/settlements", get(pages::settlements))
        .route("/console/remittances/{id}/retry", post(pages::retry_remittance))
        .route("/console/upstreams", get(upstreams::upstreams))
        .route("/console/cancels", get(upstreams::cancels))
        .route("/console/ledger", get(ledger::audit))
        .route("/console/payments", get(payments::payments))
        .route("/console/payments/{id}", get(payments::payment))
        .route("/console/assets/htmx.min.js", get(|| asset(HTMX, "text/javascript")))
        .route("/console/assets/console.css", get(|| asset(CSS, "text/css")))
        .layer(axum::middleware::map_response(secure_headers))
}

async fn asset(body: &'static [u8], content_type: &'static str) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "public, max-age=3600")],
        body,
    )
        .into_response()
}

async fn secure_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    res
}

/// A logged-in operator: the request carried a valid session cookie. Otherwise the browser
/// is sent to the login page.
pub struct Operator {
    session: Session,
    /// The session's CSRF token, for the page's forms and htmx requests.
    pub csrf: String,
    admin_token: String,
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let admin_token = state.admin_token.expose().to_owned();
        let now = state.wallet.clock().now();
        let session = cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|value| Session::verify(value, &admin_token, now))
            .ok_or_else(|| Redirect::to("/console/login").into_response())?;
        Ok(Self {
            csrf: session.csrf(&admin_token),
            session,
            admin_token,
        })
    }
}

impl Operator {
    /// Refuses a change whose CSRF token (form field `csrf`, or the `X-CSRF-Token` header htmx
    /// sends) is not this session's.
    pub fn check_csrf(&self, headers: &HeaderMap, form_token: Option<&str>) -> Result<(), CsrfRefused> {
        let token = form_token.or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
        match token {
            Some(t) if self.session.csrf_matches(&self.admin_token, t) => Ok(()),
            _ => Err(CsrfRefused),
        }
    }
}

/// A change without this session's CSRF token: `403`, nothing changed.
pub struct CsrfRefused;

impl IntoResponse for CsrfRefused {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            Html("the form has expired: reload the page and try again"),
        )
            .into_response()
    }
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// `Secure` when the server runs in production (behind TLS).
fn session_cookie(state: &AppState, value: &str, max_age_s: i64) -> String {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}")
}

async fn login_form() -> Response {
    pages::render(&pages::LoginPage { problem: None })
}

#[derive(serde::Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login(
    State(state): State<AppState>,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let token = form.map(|f| f.0.token).unwrap_or_default();
    if !state.admin_token.matches(token.trim()) {
        tracing::info!("a console login with a wrong token");
        let page = pages::render(&pages::LoginPage {
            problem: Some("That is not the admin token.".into()),
        });
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    let session = Session::start(state.wallet.clock().now());
    let value = session.cookie_value(state.admin_token.expose());
    let set = session_cookie(&state, &value, SESSION_HOURS * 3_600);
    ([(SET_COOKIE, set)], Redirect::to("/console")).into_response()
}

/// A change an operator asked for: a logged-in session whose request carries that session's
/// CSRF token (form field `csrf`, or the `X-CSRF-Token` header htmx sends). Anything else is
/// refused before the handler runs.
pub struct Change;

#[derive(serde::Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

impl FromRequest<AppState> for Change {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let op = Operator::from_request_parts(&mut parts, state).await?;
        let headers = parts.headers.clone();
        let form = axum::Form::<CsrfField>::from_request(Request::from_parts(parts, body), state).await;
        let token = form.as_ref().ok().and_then(|f| f.csrf.as_deref());
        op.check_csrf(&headers, token).map_err(IntoResponse::into_response)?;
        Ok(Self)
    }
}

async fn logout(State(state): State<AppState>, _change: Change) -> Response {
    (
        [(SET_COOKIE, session_cookie(&state, "", 0))],
        Redirect::to("/console/login"),
    )
        .into_response()
}
