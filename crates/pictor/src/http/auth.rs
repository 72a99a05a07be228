//! The gate in front of every route once `PICTOR_ADMIN_TOKEN` is set: admin
//! endpoints and pages, `/metrics` and every mutation need the token, sent as
//! `Authorization: Bearer TOKEN` or through a browser session opened on the
//! login page ([`crate::sessions`]). Reads of images, pages and assets stay
//! open unless `PICTOR_PUBLIC_READ=false`; health checks, static files and
//! the login page are always open. The event stream sends a caller without
//! the token image events only (job events carry internals such as
//! `lastError`).

use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Redirect, Response};

use crate::api_error::ApiError;
use crate::sessions::{Sessions, session_cookie};

/// The login page, where a page needing the token sends a browser.
pub const LOGIN_PATH: &str = "/admin/login";
/// Ends a browser session.
pub const LOGOUT_PATH: &str = "/admin/logout";

/// What a request may see, set on every request by [`require_token`] as an
/// extension: everything when no token is configured or it sent the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Job internals included.
    Full,
    /// Public data only: images and assets.
    Public,
}

/// The gate's settings.
#[derive(Debug, Clone)]
pub struct Gate {
    /// The token and its sessions; `None` leaves everything open.
    pub sessions: Option<Sessions>,
    /// Whether images, pages and assets can be read without the token.
    pub public_read: bool,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Nothing: health checks, static files, login and logout.
    Nothing,
    /// To read public data.
    Read,
    /// The token.
    Token,
}

fn need(method: &Method, path: &str) -> Need {
    let open = matches!(path, "/healthz" | "/readyz" | LOGIN_PATH | LOGOUT_PATH) || path.starts_with("/static/");
    let admin = path.starts_with("/api/admin") || path == "/metrics" || path.starts_with("/admin/");
    match () {
        () if open => Need::Nothing,
        () if admin => Need::Token,
        () if matches!(*method, Method::GET | Method::HEAD) => Need::Read,
        () => Need::Token,
    }
}

/// Lets a request through when it may have what it asks for, and records
/// its [`Access`]. A page refused for want of the token is sent to the login
/// page instead of an error.
///
/// # Errors
/// [`ApiError::Unauthorized`] for an API request without the token it needs.
pub async fn require_token(State(gate): State<Gate>, mut request: Request, next: Next) -> Result<Response, ApiError> {
    let access = match &gate.sessions {
        None => Access::Full,
        Some(sessions) if holds_token(request.headers(), sessions) => Access::Full,
        Some(_) => Access::Public,
    };
    let path = request.uri().path();
    let allowed = match need(request.method(), path) {
        Need::Nothing => true,
        Need::Read => access == Access::Full || gate.public_read,
        Need::Token => access == Access::Full,
    };
    if !allowed {
        let api = path.starts_with("/api/") || path.starts_with("/assets/") || path == "/metrics";
        if *request.method() == Method::GET && !api {
            let back = request.uri().path_and_query().map_or(path, |p| p.as_str());
            let query = serde_urlencoded::to_string([("next", back)]).unwrap_or_default();
            return Ok(Redirect::to(&format!("{LOGIN_PATH}?{query}")).into_response());
        }
        return Err(ApiError::Unauthorized);
    }
    request.extensions_mut().insert(access);
    Ok(next.run(request).await)
}

/// Whether the request carries the token as a bearer or an open session.
fn holds_token(headers: &HeaderMap, sessions: &Sessions) -> bool {
    let text = |name| headers.get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
    let bearer = text(header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|sent| sessions.is_token(sent)) {
        return true;
    }
    let now = SystemTime::now();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(session_cookie)
        .any(|session| sessions.is_open(session, now))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::config::Secret;

    fn sessions() -> Sessions {
        Sessions::new(Secret::new("secret-token"), false)
    }

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn the_bearer_token_or_an_open_session_holds_the_token() {
        let session = sessions().open(SystemTime::now());
        assert!(holds_token(&with(header::AUTHORIZATION, "Bearer secret-token"), &sessions()));
        assert!(!holds_token(&with(header::AUTHORIZATION, "Bearer secret-tokeN"), &sessions()));
        assert!(!holds_token(&with(header::AUTHORIZATION, "secret-token"), &sessions()));
        assert!(!holds_token(&HeaderMap::new(), &sessions()));
        assert!(holds_token(&with(header::COOKIE, &format!("x=1; pictor_session={session}")), &sessions()));
        assert!(!holds_token(&with(header::COOKIE, "pictor_session=secret-token"), &sessions()));
    }

    #[test]
    fn routes_need_what_they_expose() {
        assert_eq!(need(&Method::GET, "/healthz"), Need::Nothing);
        assert_eq!(need(&Method::POST, LOGIN_PATH), Need::Nothing);
        assert_eq!(need(&Method::GET, "/static/app.css"), Need::Nothing);
        assert_eq!(need(&Method::GET, "/api/images"), Need::Read);
        assert_eq!(need(&Method::GET, "/assets/x/thumb_64.jpg"), Need::Read);
        assert_eq!(need(&Method::GET, "/"), Need::Read);
        assert_eq!(need(&Method::GET, "/admin/jobs"), Need::Token);
        assert_eq!(need(&Method::GET, "/api/admin/jobs"), Need::Token);
        assert_eq!(need(&Method::GET, "/metrics"), Need::Token);
        assert_eq!(need(&Method::POST, "/api/upload"), Need::Token);
        assert_eq!(need(&Method::DELETE, "/api/images/x"), Need::Token);
    }
}
