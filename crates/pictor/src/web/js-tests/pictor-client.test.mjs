// Unit tests of the JS client's pure functions, run by `node --test`
// (cargo test runs them through tests/api/web.rs).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  API_BASE, setApiBase, getAssetUrl, getThumbnailUrl, getThumbnailSrcset, getPreviewUrl, isImageReady,
  getImageStatusLabel, stageIndex, stageProgress, describeError, errorFromResponse, queryString, STAGES,
} from '../static/pictor-client.js';

const image = {
  id: 'a1',
  status: 'STORED',
  isStored: true,
  thumbnailPath: '/assets/a1/thumb-256.jpg',
  thumbnails: { 64: '/assets/a1/thumb-64.jpg', 128: '/assets/a1/thumb-128.jpg', 256: '/assets/a1/thumb-256.jpg', 512: '/assets/a1/thumb-512.jpg' },
  previewPath: '/assets/a1/preview.jpg',
};

test('status labels are plain words and unknown statuses pass through', () => {
  assert.equal(getImageStatusLabel('STORED'), 'Stored');
  assert.equal(getImageStatusLabel('PROCESSING'), 'Processing');
  assert.equal(getImageStatusLabel('FAILED'), 'Failed');
  assert.equal(getImageStatusLabel('WEIRD'), 'WEIRD');
  assert.equal(getImageStatusLabel(undefined), 'Unknown');
});

test('an image is ready only once stored', () => {
  assert.equal(isImageReady(image), true);
  assert.equal(isImageReady({ status: 'PROCESSING', isStored: false }), false);
  assert.equal(isImageReady(null), false);
});

test('asset urls follow API_BASE and leave absolute urls alone', () => {
  setApiBase('');
  assert.equal(getAssetUrl('/assets/x.jpg'), '/assets/x.jpg');
  setApiBase('http://pictor.local:3000/');
  assert.equal(API_BASE, 'http://pictor.local:3000');
  assert.equal(getAssetUrl('/assets/x.jpg'), 'http://pictor.local:3000/assets/x.jpg');
  assert.equal(getAssetUrl('https://cdn.example/x.jpg'), 'https://cdn.example/x.jpg');
  assert.equal(getAssetUrl(null), null);
  setApiBase('');
});

test('thumbnail urls pick the smallest size at least as large as asked', () => {
  assert.equal(getThumbnailUrl(image), '/assets/a1/thumb-256.jpg');
  assert.equal(getThumbnailUrl(image, 100), '/assets/a1/thumb-128.jpg');
  assert.equal(getThumbnailUrl(image, 2000), '/assets/a1/thumb-512.jpg');
  assert.equal(getThumbnailUrl({ thumbnails: {}, thumbnailPath: null }), null);
  assert.equal(getThumbnailSrcset(image).split(', ')[0], '/assets/a1/thumb-64.jpg 64w');
  assert.equal(getThumbnailSrcset({}), '');
});

test('preview urls are null until the preview exists', () => {
  assert.equal(getPreviewUrl(image), '/assets/a1/preview.jpg');
  assert.equal(getPreviewUrl({ previewPath: null }), null);
});

test('stages advance from uploaded to stored and failed is off the track', () => {
  assert.deepEqual(STAGES, ['UPLOADED', 'INGESTED', 'PROCESSING', 'STORED']);
  assert.equal(stageIndex('INGESTED'), 1);
  assert.equal(stageIndex('FAILED'), -1);
  assert.equal(stageProgress('STORED'), 1);
  assert.equal(stageProgress('FAILED'), 0);
});

test('api errors become plain words and keep the server text for unknown codes', () => {
  assert.match(describeError('file_too_large'), /too large/);
  assert.match(describeError('unsupported_format'), /not an image/);
  assert.equal(describeError('something_new', 'server says'), 'server says');
  const e = errorFromResponse(413, '{"error":{"code":"file_too_large","message":"over 50 MiB"}}');
  assert.equal(e.status, 413);
  assert.equal(e.code, 'file_too_large');
  assert.equal(e.serverMessage, 'over 50 MiB');
  assert.equal(errorFromResponse(502, 'Bad Gateway').message, 'Bad Gateway');
});

test('query strings leave out empty values', () => {
  assert.equal(queryString({ status: 'FAILED', type: '', limit: 10, offset: 0, imageId: null }), '?status=FAILED&limit=10&offset=0');
  assert.equal(queryString({}), '');
});
