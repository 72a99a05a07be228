//! The login page: typing the admin token opens a browser session (an
//! `HttpOnly; SameSite=Strict` cookie, see [`crate::sessions`]) that the
//! admin pages and the API then accept; logout ends it.

use std::time::{Duration, SystemTime};

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Router};
use serde::Deserialize;

use super::PageState;
use super::pages::notice;

/// Where a login without a (valid) `next` goes.
const DEFAULT_NEXT: &str = "/admin/jobs";
/// A wrong token waits this long, which slows guessing from one client.
const WRONG_TOKEN_DELAY: Duration = Duration::from_secs(1);

/// `GET`/`POST /admin/login` and `POST /admin/logout`.
pub fn router() -> Router<PageState> {
    Router::new()
        .route("/admin/login", axum::routing::get(form).post(log_in))
        .route("/admin/logout", axum::routing::post(log_out))
}

#[derive(Template, WebTemplate)]
#[template(path = "login.html", config = "src/web/askama.toml")]
struct LoginPage {
    active: &'static str,
    next: String,
    error: Option<&'static str>,
    public_read: bool,
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Only a path on this site: never `//host` or a URL, so a link cannot make
/// the login send the browser elsewhere.
fn local_path(next: Option<String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| DEFAULT_NEXT.to_owned())
}

fn no_token_set() -> Response {
    notice(StatusCode::NOT_FOUND, "No login needed", "PICTOR_ADMIN_TOKEN is not set, so every page is open.".to_owned())
}

/// `GET /admin/login`: the form.
async fn form(State(state): State<PageState>, Query(q): Query<NextQuery>) -> Response {
    if state.sessions.is_none() {
        return no_token_set();
    }
    LoginPage { active: "jobs", next: local_path(q.next), error: None, public_read: state.public_read }.into_response()
}

/// `POST /admin/login`: opens a session for the right token and goes on to
/// `next`; a wrong token gets the form again, with a 401, after a delay.
async fn log_in(State(state): State<PageState>, Form(login): Form<LoginForm>) -> Response {
    let Some(sessions) = &state.sessions else { return no_token_set() };
    let next = local_path(login.next);
    if !sessions.is_token(&login.token) {
        tracing::warn!("a login with a wrong admin token was refused");
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        let page = LoginPage {
            active: "jobs",
            next,
            error: Some("That is not the admin token."),
            public_read: state.public_read,
        };
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    let cookie = sessions.set_cookie(&sessions.open(SystemTime::now()));
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

/// `POST /admin/logout`: removes the session cookie and goes to the gallery.
async fn log_out(State(state): State<PageState>) -> Response {
    let Some(sessions) = &state.sessions else { return Redirect::to("/").into_response() };
    ([(header::SET_COOKIE, sessions.clear_cookie())], Redirect::to("/")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_local_path_is_followed_after_login() {
        assert_eq!(local_path(Some("/admin/jobs/7?x=1".into())), "/admin/jobs/7?x=1");
        assert_eq!(local_path(Some("//evil.example/".into())), DEFAULT_NEXT);
        assert_eq!(local_path(Some("https://evil.example/".into())), DEFAULT_NEXT);
        assert_eq!(local_path(Some("/\\evil.example".into())), DEFAULT_NEXT);
        assert_eq!(local_path(None), DEFAULT_NEXT);
    }
}
