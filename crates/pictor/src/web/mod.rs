//! The web UI, served by the same binary: server-rendered pages (askama
//! templates in `templates/`) with small ES modules and a stylesheet embedded
//! from `static/`. The pages call the JSON API and follow `GET /api/events`.

mod admin;
mod assets;
mod chart;
pub mod guard;
mod login;
mod pages;

use axum::Router;
use axum::routing::get;

use crate::images::{Images, Page};

/// What the pages share.
#[derive(Debug, Clone)]
pub struct PageState {
    /// The domain.
    pub images: Images,
    /// The admin token's sessions, when one is set: the login page opens
    /// them (the gate in front of the pages checks them).
    pub sessions: Option<crate::sessions::Sessions>,
    /// Whether pages can be read without the token.
    pub public_read: bool,
}

/// Images per gallery page.
pub const GALLERY_PAGE_SIZE: i64 = 24;
/// Jobs per admin page.
pub const JOBS_PAGE_SIZE: i64 = 25;

/// The pages and their static files.
pub fn router(state: PageState) -> Router {
    let pages = Router::new()
        .route("/", get(pages::gallery))
        .route("/upload", get(pages::upload))
        .route("/images/{id}", get(pages::image))
        .route("/admin/jobs", get(admin::jobs))
        .route("/admin/jobs/{id}", get(admin::job))
        .merge(login::router())
        .layer(axum::middleware::from_fn(guard::page_headers));
    pages.merge(assets::router()).with_state(state)
}

/// A `?query` from pairs, leaving out empty values; `""` when none is left.
fn query(pairs: &[(&str, String)]) -> String {
    let kept: Vec<(&str, &str)> = pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (*k, v.as_str())).collect();
    match serde_urlencoded::to_string(&kept) {
        Ok(q) if !q.is_empty() => format!("?{q}"),
        _ => String::new(),
    }
}

/// Previous/next page links and a "page N of M" label.
#[derive(Debug, Default)]
struct Pager {
    prev: Option<String>,
    next: Option<String>,
    label: String,
}

impl Pager {
    /// Links for `page` (1-based) of `total` items, `size` per page, keeping
    /// `pairs`. The next link carries `next_cursor` (the page's last item),
    /// so that it is read by a keyset seek however deep it is.
    fn new(
        path: &str,
        pairs: &[(&str, String)],
        page: i64,
        size: i64,
        total: i64,
        next_cursor: Option<String>,
    ) -> Self {
        let pages = ((total + size - 1) / size).max(1);
        let link = |p: i64, cursor: Option<String>| {
            let mut all = pairs.to_vec();
            all.push(("page", if p > 1 { p.to_string() } else { String::new() }));
            all.push(("after", cursor.unwrap_or_default()));
            format!("{path}{}", query(&all))
        };
        Self {
            prev: (page > 1).then(|| link(page - 1, None)),
            next: (page < pages).then(|| link(page + 1, next_cursor)),
            label: format!("Page {page} of {pages}"),
        }
    }
}

/// A `<select>` option.
#[derive(Debug)]
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

impl Choice {
    fn new(value: impl Into<String>, label: impl Into<String>, current: &str) -> Self {
        let value = value.into();
        let selected = value == current;
        Self { value, label: label.into(), selected }
    }
}

/// Page `number` of `size` items; read after `after` (the cursor a next
/// link carries, the last item of page `number - 1`) when there is one.
fn numbered_page(number: i64, size: i64, after: Option<String>) -> Page {
    match after.filter(|a| !a.is_empty()) {
        Some(after) => Page::numbered(1, size).after(Some(after)),
        None => Page::numbered(number, size),
    }
}

/// A page number from the query: 1 when absent or not a positive number.
fn page_number(page: Option<&str>) -> i64 {
    page.and_then(|p| p.parse::<i64>().ok()).filter(|p| *p >= 1).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_leave_out_empty_values_and_encode_the_rest() {
        assert_eq!(query(&[("collection", "a b&c".into()), ("status", String::new())]), "?collection=a+b%26c");
        assert_eq!(query(&[("status", String::new())]), "");
    }

    #[test]
    fn pager_links_keep_the_filters_and_stop_at_both_ends() {
        let pager = Pager::new("/", &[("status", "STORED".into())], 1, 24, 50, Some("5_a".into()));
        assert_eq!(pager.prev, None);
        assert_eq!(pager.next.as_deref(), Some("/?status=STORED&page=2&after=5_a"));
        assert_eq!(pager.label, "Page 1 of 3");
        let last = Pager::new("/", &[], 3, 24, 50, None);
        assert_eq!(last.prev.as_deref(), Some("/?page=2"));
        assert_eq!(last.next, None);
        assert_eq!(Pager::new("/", &[], 1, 24, 0, None).label, "Page 1 of 1");
    }

    #[test]
    fn a_cursor_replaces_the_offset_of_a_numbered_page() {
        assert_eq!(numbered_page(3, 24, None), Page::numbered(3, 24));
        let after = numbered_page(3, 24, Some("5_a".into()));
        assert_eq!((after.offset, after.cursor.as_deref()), (0, Some("5_a")));
    }

    #[test]
    fn page_numbers_default_to_one() {
        assert_eq!(page_number(None), 1);
        assert_eq!(page_number(Some("0")), 1);
        assert_eq!(page_number(Some("x")), 1);
        assert_eq!(page_number(Some("3")), 3);
    }
}
