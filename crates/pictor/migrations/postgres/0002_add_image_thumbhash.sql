-- ThumbHash of each image (base64), so that UIs can paint a placeholder at once.
ALTER TABLE image ADD COLUMN thumbhash TEXT;
