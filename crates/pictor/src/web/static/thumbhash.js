// ThumbHash decoding: a hash of about 25 bytes becomes a picture of at most
// 32 × 32 px with the image's colours and shape, painted at once while the
// thumbnail loads. Written for Pictor from the published ThumbHash format
// (Evan Wallace, https://evanw.github.io/thumbhash/, MIT): a DCT of
// lightness (L), two colour channels (P, Q) and optionally alpha (A).

/** The longest edge of a decoded ThumbHash, in pixels. */
export const THUMBHASH_EDGE = 32;

/** The bytes of a base64 ThumbHash (as the Image JSON's `thumbhash` carries it). */
export function thumbHashFromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The fields of the 5-byte header (and the alpha byte, when there is one). */
function readHeader(hash) {
  if (!hash || hash.length < 5) throw new Error('not a ThumbHash: too short');
  const low = hash[0] | (hash[1] << 8) | (hash[2] << 16);
  const high = hash[3] | (hash[4] << 8);
  const hasAlpha = (low >> 23) !== 0;
  const isLandscape = (high >> 15) !== 0;
  const longSide = hasAlpha ? 5 : 7;
  const shortSide = high & 7;
  if (hasAlpha && hash.length < 6) throw new Error('not a ThumbHash: no alpha byte');
  return {
    lDc: (low & 63) / 63,
    pDc: ((low >> 6) & 63) / 31.5 - 1,
    qDc: ((low >> 12) & 63) / 31.5 - 1,
    lScale: ((low >> 18) & 31) / 31,
    hasAlpha,
    pScale: ((high >> 3) & 63) / 63,
    qScale: ((high >> 9) & 63) / 63,
    // Lightness coefficients across and down: the long side has 7 (5 with
    // alpha), the short side as many as the header says. Their ratio is the
    // image's shape; the decoder uses at least 3 each way.
    ratio: isLandscape ? longSide / shortSide : shortSide / longSide,
    lx: Math.max(3, isLandscape ? longSide : shortSide),
    ly: Math.max(3, isLandscape ? shortSide : longSide),
    aDc: hasAlpha ? (hash[5] & 15) / 15 : 1,
    aScale: hasAlpha ? (hash[5] >> 4) / 15 : 0,
  };
}

/** Width over height of the image the hash was made from (roughly). */
export function thumbHashAspectRatio(hash) {
  return readHeader(hash).ratio;
}

/** L, P, Q (and alpha) as red, green, blue (and alpha), each 0–1. */
function toRgb(l, p, q) {
  const b = l - (2 / 3) * p;
  const r = (3 * l - b + q) / 2;
  const g = r - q;
  return [r, g, b];
}

const clamp01 = (v) => Math.max(0, Math.min(1, v));

/** The average colour `{r, g, b, a}` (each 0–1) the hash stores. */
export function thumbHashAverageRgba(hash) {
  const h = readHeader(hash);
  const [r, g, b] = toRgb(h.lDc, h.pDc, h.qDc);
  return { r: clamp01(r), g: clamp01(g), b: clamp01(b), a: h.aDc };
}

/**
 * The AC coefficients of one channel, `nx` × `ny` in a triangle (the
 * low-frequency corner), 4 bits each, read from `nibbles` in order.
 */
function readChannel(nibbles, nx, ny, scale) {
  const coefficients = [];
  for (let cy = 0; cy < ny; cy++) {
    for (let cx = cy === 0 ? 1 : 0; cx * ny < nx * (ny - cy); cx++) {
      coefficients.push((nibbles.next() / 7.5 - 1) * scale);
    }
  }
  return coefficients;
}

/** Adds a channel's AC terms at one pixel (`fx`, `fy`: the cosines there). */
function sumChannel(dc, coefficients, nx, ny, fx, fy) {
  let value = dc;
  let j = 0;
  for (let cy = 0; cy < ny; cy++) {
    const fy2 = fy[cy] * 2;
    for (let cx = cy === 0 ? 1 : 0; cx * ny < nx * (ny - cy); cx++) value += coefficients[j++] * fx[cx] * fy2;
  }
  return value;
}

/**
 * Decodes a ThumbHash (bytes) to `{width, height, rgba}`: at most
 * THUMBHASH_EDGE px on the longest side, RGBA bytes row by row.
 * Throws on bytes too short to be a ThumbHash.
 */
export function thumbHashToRgba(hash) {
  const h = readHeader(hash);
  const start = h.hasAlpha ? 6 : 5;
  let index = 0;
  const nibbles = {
    next() {
      const byte = hash[start + (index >> 1)];
      if (byte === undefined) throw new Error('not a ThumbHash: too short for its coefficients');
      const nibble = (byte >> ((index & 1) << 2)) & 15;
      index++;
      return nibble;
    },
  };
  const lAc = readChannel(nibbles, h.lx, h.ly, h.lScale);
  const pAc = readChannel(nibbles, 3, 3, h.pScale * 1.25);
  const qAc = readChannel(nibbles, 3, 3, h.qScale * 1.25);
  const aAc = h.hasAlpha ? readChannel(nibbles, 5, 5, h.aScale) : null;

  const { ratio } = h;
  const width = Math.round(ratio > 1 ? THUMBHASH_EDGE : THUMBHASH_EDGE * ratio);
  const height = Math.round(ratio > 1 ? THUMBHASH_EDGE / ratio : THUMBHASH_EDGE);
  const rgba = new Uint8ClampedArray(width * height * 4);
  const nx = Math.max(h.lx, h.hasAlpha ? 5 : 3);
  const ny = Math.max(h.ly, h.hasAlpha ? 5 : 3);
  const fx = new Float64Array(nx);
  const fy = new Float64Array(ny);
  for (let y = 0, i = 0; y < height; y++) {
    for (let cy = 0; cy < ny; cy++) fy[cy] = Math.cos((Math.PI / height) * (y + 0.5) * cy);
    for (let x = 0; x < width; x++, i += 4) {
      for (let cx = 0; cx < nx; cx++) fx[cx] = Math.cos((Math.PI / width) * (x + 0.5) * cx);
      const l = sumChannel(h.lDc, lAc, h.lx, h.ly, fx, fy);
      const p = sumChannel(h.pDc, pAc, 3, 3, fx, fy);
      const q = sumChannel(h.qDc, qAc, 3, 3, fx, fy);
      const a = aAc ? sumChannel(h.aDc, aAc, 5, 5, fx, fy) : 1;
      const [r, g, b] = toRgb(l, p, q);
      // Truncated, not rounded, as the reference decoder does.
      rgba[i] = Math.trunc(255 * clamp01(r));
      rgba[i + 1] = Math.trunc(255 * clamp01(g));
      rgba[i + 2] = Math.trunc(255 * clamp01(b));
      rgba[i + 3] = Math.trunc(255 * clamp01(a));
    }
  }
  return { width, height, rgba };
}

/**
 * A base64 ThumbHash painted as a PNG data URL (through a canvas), or null
 * where there is no canvas or the hash does not decode. The pages' CSP
 * allows `img-src data:` for exactly this.
 */
export function thumbHashToDataUrl(base64) {
  if (typeof document === 'undefined' || !base64) return null;
  try {
    const { width, height, rgba } = thumbHashToRgba(thumbHashFromBase64(base64));
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext('2d');
    if (!context) return null;
    context.putImageData(new ImageData(rgba, width, height), 0, 0);
    return canvas.toDataURL('image/png');
  } catch (_) {
    return null;
  }
}
