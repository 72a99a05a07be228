//! The host allow-list, Pictor's defence against DNS rebinding: a page on
//! `evil.example` whose name is re-pointed at 127.0.0.1 reaches Pictor as
//! its *own* origin, so origin checks pass, but its `Host` still says
//! `evil.example`. Pictor answers only hosts it knows, on every route: IP
//! literals (a rebinding attack needs a name the attacker controls),
//! `localhost` and its subdomains (browsers resolve them to loopback
//! themselves), the host of `API_BASE`, and the names of
//! `PICTOR_ALLOWED_HOSTS`. Anything else gets 421 Misdirected Request.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::http::uri::Authority;
use axum::middleware::Next;
use axum::response::Response;

use crate::api_error::ApiError;

/// Which `Host` values Pictor answers.
#[derive(Debug, Clone)]
pub enum AllowedHosts {
    /// Every host: `PICTOR_ALLOWED_HOSTS=*` (no DNS-rebinding defence).
    Any,
    /// IP literals, `localhost`, and these lower-case names.
    Names(Arc<[String]>),
}

impl AllowedHosts {
    /// The allow-list from the configured names (`*` allows any) and the
    /// public base URL, whose host is always allowed.
    pub fn new(configured: &[String], api_base: &str) -> Self {
        if configured.iter().any(|name| name.trim() == "*") {
            return Self::Any;
        }
        let base_host = api_base.parse::<axum::http::Uri>().ok().and_then(|uri| uri.host().map(str::to_owned));
        let names = configured
            .iter()
            .map(String::as_str)
            .chain(base_host.as_deref())
            .map(normalise)
            .filter(|name| !name.is_empty())
            .collect();
        Self::Names(names)
    }

    /// Whether a request whose `Host` (or HTTP/2 authority) is `authority`
    /// (a host with an optional port) is answered.
    pub fn allows(&self, authority: &str) -> bool {
        let names = match self {
            Self::Any => return true,
            Self::Names(names) => names,
        };
        let Ok(authority) = authority.parse::<Authority>() else {
            return false;
        };
        let host = normalise(authority.host());
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        literal.parse::<IpAddr>().is_ok()
            || host == "localhost"
            || host.ends_with(".localhost")
            || names.contains(&host)
    }
}

/// Lower case, without the root's trailing dot (`Example.COM.` = `example.com`).
fn normalise(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Refuses a request for a host not on the list. A request without any host
/// (HTTP/1.0) comes from no browser and passes.
///
/// # Errors
/// [`ApiError::UnknownHost`], a 421.
pub async fn known_host(
    State(allowed): State<AllowedHosts>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|value| value.to_str().unwrap_or("\u{fffd}").to_owned())
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    match host {
        Some(host) if !allowed.allows(&host) => Err(ApiError::UnknownHost(host)),
        _ => Ok(next.run(request).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(configured: &[&str]) -> AllowedHosts {
        let configured: Vec<String> = configured.iter().map(|s| (*s).to_owned()).collect();
        AllowedHosts::new(&configured, "http://photos.example.org:3000")
    }

    #[test]
    fn ip_literals_localhost_and_the_api_base_host_are_allowed_by_default() {
        let allowed = list(&[]);
        for host in [
            "127.0.0.1:3000",
            "10.1.2.3",
            "[::1]:3000",
            "[fe80::1]",
            "localhost:3000",
            "LOCALHOST",
            "app.localhost:3000",
            "photos.example.org:3000",
            "Photos.Example.Org.",
        ] {
            assert!(allowed.allows(host), "{host}");
        }
    }

    #[test]
    fn other_names_and_malformed_hosts_are_refused() {
        let allowed = list(&[]);
        for host in [
            "evil.example:3000",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "",
            "a b",
            "x:y:z",
        ] {
            assert!(!allowed.allows(host), "{host}");
        }
    }

    #[test]
    fn configured_names_are_added_and_a_star_allows_every_host() {
        let allowed = list(&["Pictor.Internal", " cdn.example "]);
        assert!(allowed.allows("pictor.internal:8080"));
        assert!(allowed.allows("cdn.example"));
        assert!(!allowed.allows("evil.example"));
        assert!(list(&["*"]).allows("evil.example:3000"));
    }
}
