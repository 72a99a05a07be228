//! Who may see what once `PICTOR_ADMIN_TOKEN` is set: the token itself
//! (API clients send it as a bearer), and browser sessions opened by typing
//! it into the login page. A session cookie holds an expiry, a nonce and an
//! HMAC-SHA256 of both under a key derived from the token, never the token:
//! every process that knows the token can check it, changing the token ends
//! every session, and a session cannot be extended or forged without it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::config::Secret;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "pictor_session";
/// How long a session lasts after login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// The admin token and the sessions it signs.
#[derive(Clone)]
pub struct Sessions {
    token: Secret,
    /// SHA-256 of the token, zero-padded to HMAC-SHA256's block (as HMAC
    /// pads any shorter key), so that the MAC takes it without a check.
    key: [u8; 64],
    /// Whether cookies get `Secure` (Pictor is reached over https).
    secure: bool,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("secure", &self.secure).finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions for `token`; `secure` when the public URL is https.
    pub fn new(token: Secret, secure: bool) -> Self {
        let digest = Sha256::new().chain_update(b"pictor admin session v1\0").chain_update(token.expose()).finalize();
        let mut key = [0; 64];
        key[..32].copy_from_slice(&digest);
        Self { token, key, secure }
    }

    /// Whether `sent` is the token, compared in constant time so that timing
    /// does not reveal how much of a guess was right.
    pub fn is_token(&self, sent: &str) -> bool {
        bool::from(sent.as_bytes().ct_eq(self.token.expose().as_bytes()))
    }

    /// A new session's cookie value, valid for [`SESSION_LIFETIME`] from `now`.
    pub fn open(&self, now: SystemTime) -> String {
        let expires = unix_secs(now + SESSION_LIFETIME);
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let claims = format!("{expires}.{nonce}");
        let mac = self.mac(&claims);
        format!("{claims}.{mac}")
    }

    /// Whether `value` is a session this token opened that has not expired
    /// at `now`.
    pub fn is_open(&self, value: &str, now: SystemTime) -> bool {
        let Some((claims, mac)) = value.rsplit_once('.') else { return false };
        let Some(expires) = claims.split_once('.').and_then(|(e, _)| e.parse::<u64>().ok()) else { return false };
        bool::from(self.mac(claims).as_bytes().ct_eq(mac.as_bytes())) && unix_secs(now) < expires
    }

    /// The `Set-Cookie` value that stores `session`.
    pub fn set_cookie(&self, session: &str) -> String {
        self.cookie(session, SESSION_LIFETIME.as_secs())
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear_cookie(&self) -> String {
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
    }

    fn mac(&self, claims: &str) -> String {
        let mut mac = <Hmac<Sha256>>::new(&self.key.into());
        mac.update(claims.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The session cookie's value among a `Cookie` header's pairs.
pub fn session_cookie(cookie_header: &str) -> Option<&str> {
    cookie_header.split(';').find_map(|pair| pair.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(Secret::new("admin-token-1"), false)
    }

    #[test]
    fn a_session_is_open_until_it_expires_and_never_holds_the_token() {
        let now = SystemTime::now();
        let session = sessions().open(now);

        assert!(!session.contains("admin-token-1"));
        assert!(sessions().is_open(&session, now));
        assert!(sessions().is_open(&session, now + SESSION_LIFETIME - Duration::from_secs(1)));
        assert!(!sessions().is_open(&session, now + SESSION_LIFETIME + Duration::from_secs(1)));
    }

    #[test]
    fn a_changed_token_or_an_edited_session_is_refused() {
        let now = SystemTime::now();
        let session = sessions().open(now);
        let (expires, rest) = session.split_once('.').expect("expiry first");
        let extended = format!("{}.{rest}", expires.parse::<u64>().expect("number") + 86_400);
        let mut flipped = session.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };

        assert!(!Sessions::new(Secret::new("admin-token-2"), false).is_open(&session, now));
        assert!(!sessions().is_open(&extended, now));
        assert!(!sessions().is_open(&String::from_utf8(flipped).expect("ascii"), now));
        assert!(!sessions().is_open("", now));
        assert!(!sessions().is_open("1.2", now));
    }

    #[test]
    fn the_token_is_recognised_exactly() {
        assert!(sessions().is_token("admin-token-1"));
        assert!(!sessions().is_token("admin-token-"));
        assert!(!sessions().is_token("admin-token-12"));
    }

    #[test]
    fn the_cookie_is_found_among_others_and_is_http_only_and_strict() {
        assert_eq!(session_cookie("a=1; pictor_session=abc.def; b=2"), Some("abc.def"));
        assert_eq!(session_cookie("pictor_sessionx=1"), None);
        let set = Sessions::new(Secret::new("admin-token-1"), true).set_cookie("v");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Secure"), "{set}");
        assert!(sessions().clear_cookie().contains("Max-Age=0"));
    }
}
