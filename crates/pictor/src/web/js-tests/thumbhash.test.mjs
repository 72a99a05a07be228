// The JavaScript ThumbHash decoder against the Rust side's: the fixture
// holds the hash pictor-imaging makes for a test photo and what the Rust
// `thumbhash` crate decodes from it (a pictor-imaging test keeps it true).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import {
  THUMBHASH_EDGE, thumbHashFromBase64, thumbHashToRgba, thumbHashAverageRgba, thumbHashAspectRatio, thumbHashToDataUrl,
} from '../static/thumbhash.js';

const fixture = JSON.parse(
  readFileSync(new URL('../../../../../testdata/thumbhash/mpl-grace-hopper.json', import.meta.url), 'utf8'),
);
// As the Image JSON carries it.
const base64 = Buffer.from(fixture.hash).toString('base64');

test('a base64 thumbhash decodes to its bytes', () => {
  assert.deepEqual(Array.from(thumbHashFromBase64(base64)), fixture.hash);
});

test('the decoded picture has the size the rust decoder gives, portrait like the photo', () => {
  const { width, height, rgba } = thumbHashToRgba(thumbHashFromBase64(base64));
  assert.deepEqual([width, height], [fixture.width, fixture.height]);
  assert.equal(Math.max(width, height), THUMBHASH_EDGE);
  assert.ok(width < height, `512 x 600 is portrait, got ${width} x ${height}`);
  assert.equal(rgba.length, width * height * 4);
  assert.ok(thumbHashAspectRatio(thumbHashFromBase64(base64)) < 1);
});

test('every decoded pixel is within 2 levels of the rust decoder, and most are equal', () => {
  const { rgba } = thumbHashToRgba(thumbHashFromBase64(base64));
  let worst = 0;
  let equal = 0;
  for (let i = 0; i < rgba.length; i++) {
    const gap = Math.abs(rgba[i] - fixture.rgba[i]);
    worst = Math.max(worst, gap);
    if (gap === 0) equal++;
  }
  assert.ok(worst <= 2, `a channel differs by ${worst}`);
  assert.ok(equal / rgba.length > 0.95, `only ${equal} of ${rgba.length} channels are equal`);
});

test('the average colour matches the rust side and the picture averages to it', () => {
  const average = thumbHashAverageRgba(thumbHashFromBase64(base64));
  const [r, g, b, a] = fixture.average;
  for (const [got, want] of [[average.r, r], [average.g, g], [average.b, b], [average.a, a]]) {
    assert.ok(Math.abs(got - want) < 0.001, `average ${JSON.stringify(average)} vs ${fixture.average}`);
  }
  // The DC term is the mean of the picture, give or take the clamping.
  const { rgba } = thumbHashToRgba(thumbHashFromBase64(base64));
  const pixels = rgba.length / 4;
  const mean = [0, 1, 2].map((c) => rgba.filter((_, i) => i % 4 === c).reduce((s, v) => s + v, 0) / pixels / 255);
  assert.ok(Math.abs(mean[0] - r) < 0.03 && Math.abs(mean[1] - g) < 0.03 && Math.abs(mean[2] - b) < 0.03, `${mean}`);
});

test('bytes too short to be a thumbhash are refused, and a data url needs a page', () => {
  assert.throws(() => thumbHashToRgba(new Uint8Array([1, 2, 3])), /not a ThumbHash/);
  assert.throws(() => thumbHashToRgba(thumbHashFromBase64(base64).slice(0, 8)), /too short/);
  assert.equal(thumbHashToDataUrl(base64), null, 'no document under node');
});
