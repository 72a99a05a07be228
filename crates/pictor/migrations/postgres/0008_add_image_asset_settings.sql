-- What made each image's assets: the thumbnails' and the preview's settings
-- (sizes, edge, formats, quality, imaging engine version), written with the
-- assets by the job that made them. NULL (every image stored before this
-- migration) reads as outdated: `pictor reprocess` regenerates it.
ALTER TABLE image ADD COLUMN thumbnail_settings TEXT;
ALTER TABLE image ADD COLUMN preview_settings TEXT;
