-- Every encoding of the preview, as a JSON map from format to storage key ({"jpeg": …, "webp": …}).
-- preview_path stays the JPEG's key, as the card has it.
ALTER TABLE image ADD COLUMN previews TEXT;
