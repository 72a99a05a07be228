-- The image list filters by status and/or collection, newest first: with
-- these, a filtered page and its count read only the matching index range
-- (the gallery, the admin pages and clients polling for STORED ask this
-- often). Either index is read backwards for created_at DESC, id DESC.
CREATE INDEX image_status_created ON image (status, created_at, id);
DROP INDEX image_collection;
CREATE INDEX image_collection_created ON image (collection, created_at, id);
-- Ascending id too, so that reading it backwards gives the list's order
-- (created_at DESC, id DESC) without a sort.
DROP INDEX image_created;
CREATE INDEX image_created ON image (created_at, id);
