//! Filters and paging of the list endpoints, turned into query pairs.

use crate::models::{ImageStatus, JobKind, JobStatus};

/// Filters and page of `GET /api/images`; `None` leaves the server's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageQuery {
    /// Only images in this collection.
    pub collection: Option<String>,
    /// Only images in this state.
    pub status: Option<ImageStatus>,
    /// Page size (server default 50, at most 1000).
    pub limit: Option<u64>,
    /// Images to skip.
    pub offset: Option<u64>,
    /// Start after this `nextCursor` of a previous page (keyset paging).
    pub cursor: Option<String>,
}

/// Filters and page of `GET /api/admin/jobs`; `None` leaves the server's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
    /// Only jobs of this type.
    pub kind: Option<JobKind>,
    /// Only the jobs of this image.
    pub image_id: Option<String>,
    /// Page size (server default 50, at most 1000).
    pub limit: Option<u64>,
    /// Jobs to skip.
    pub offset: Option<u64>,
    /// Start after this `nextCursor` of a previous page (keyset paging).
    pub cursor: Option<String>,
}

/// A query string's pairs, in order.
pub(crate) type Pairs = Vec<(&'static str, String)>;

fn paging(pairs: &mut Pairs, limit: Option<u64>, offset: Option<u64>, cursor: Option<&String>) {
    pairs.extend(limit.map(|l| ("limit", l.to_string())));
    pairs.extend(offset.map(|o| ("offset", o.to_string())));
    pairs.extend(cursor.map(|c| ("cursor", c.clone())));
}

impl ImageQuery {
    pub(crate) fn pairs(&self) -> Pairs {
        let mut pairs = Pairs::new();
        pairs.extend(self.collection.clone().map(|c| ("collection", c)));
        pairs.extend(self.status.map(|s| ("status", s.as_str().to_owned())));
        paging(&mut pairs, self.limit, self.offset, self.cursor.as_ref());
        pairs
    }
}

impl JobQuery {
    pub(crate) fn pairs(&self) -> Pairs {
        let mut pairs = Pairs::new();
        pairs.extend(self.status.map(|s| ("status", s.as_str().to_owned())));
        pairs.extend(self.kind.map(|k| ("type", k.as_str().to_owned())));
        pairs.extend(self.image_id.clone().map(|id| ("imageId", id)));
        paging(&mut pairs, self.limit, self.offset, self.cursor.as_ref());
        pairs
    }
}
