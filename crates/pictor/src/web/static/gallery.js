// The gallery, live: it follows `GET /api/events` (image events only, so it
// works without the admin token) and, without a reload, adds new arrivals,
// moves badges along (Processing → Stored or Failed), paints each image's
// ThumbHash at once and swaps in its thumbnail once that has loaded, and
// drops deleted images. New arrivals go on the first page only, and only
// when they match its filters; deeper pages keep the images they were read
// with (a card that stops matching a status filter stays until a reload).
// EventSource reconnects by itself.
import { getImageStatusLabel, getThumbnailUrl, getThumbnailSrcset } from './pictor-client.js';
import { thumbHashToDataUrl } from './thumbhash.js';

/** The thumbnail edge the `src` uses and the laid-out size (as the page renders them). */
const THUMB_EDGE = 256;
const THUMB_SIZES = '(max-width: 600px) 45vw, 220px';

const grid = document.getElementById('gallery');

/** `(width, height)` scaled so the longest edge is `edge`, never up. */
function fit(width, height, edge) {
  const longest = Math.max(width, height);
  if (longest <= edge || longest === 0) return [width, height];
  const scale = edge / longest;
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** An empty card for `image`, shaped as the page renders one; `show` fills it. */
function newCard(image) {
  const card = element('li', 'card');
  card.dataset.imageId = image.id;
  const link = element('a');
  link.href = `/images/${encodeURIComponent(image.id)}`;
  const thumb = element('div', 'thumb');
  thumb.append(element('span', 'placeholder'));
  const meta = element('div', 'meta');
  meta.append(element('p', 'card-title'), element('p', 'sub'));
  link.append(thumb, meta);
  card.append(link, element('span', 'badge'));
  return card;
}

/** Paints the ThumbHash behind everything else in the card, once. */
function paintThumbHash(card, image) {
  const thumb = card.querySelector('.thumb');
  if (!image.thumbhash || thumb.querySelector('img.backdrop')) return;
  const url = thumbHashToDataUrl(image.thumbhash);
  if (!url) return;
  const backdrop = element('img', 'backdrop');
  backdrop.alt = '';
  backdrop.setAttribute('aria-hidden', 'true');
  backdrop.src = url;
  thumb.prepend(backdrop);
}

/** Loads the thumbnail out of sight and puts it in place of the placeholder once loaded. */
function swapInThumbnail(card, image) {
  const placeholder = card.querySelector('.placeholder');
  const src = getThumbnailUrl(image, THUMB_EDGE);
  if (!placeholder || !src || card.dataset.loading === src) return;
  card.dataset.loading = src;
  const img = element('img');
  const [width, height] = fit(image.width, image.height, THUMB_EDGE);
  img.width = width;
  img.height = height;
  img.alt = image.title;
  img.sizes = THUMB_SIZES;
  img.srcset = getThumbnailSrcset(image);
  img.src = src;
  img.decode().then(
    () => {
      delete card.dataset.loading;
      card.querySelector('.placeholder')?.replaceWith(img);
    },
    // Not loadable (yet): the placeholder stays; the next event tries again.
    () => delete card.dataset.loading,
  );
}

/** Brings a card up to date with `image`. */
function show(card, image) {
  card.dataset.status = image.status;
  card.querySelector('.card-title').textContent = image.title;
  const size = `${image.width} × ${image.height}`;
  card.querySelector('.sub').textContent = image.collection ? `${image.collection} · ${size}` : size;
  const badge = card.querySelector('.badge');
  badge.textContent = getImageStatusLabel(image.status);
  badge.className = `badge status-${image.status.toLowerCase()}`;
  badge.hidden = image.status === 'STORED';
  const placeholder = card.querySelector('.placeholder');
  if (placeholder) {
    placeholder.textContent =
      image.status === 'FAILED' ? 'Processing failed' : `${getImageStatusLabel(image.status)}…`;
  }
  const thumbnail = card.querySelector('.thumb img:not(.backdrop)');
  if (thumbnail) thumbnail.alt = image.title;
  paintThumbHash(card, image);
  if (image.status === 'STORED') swapInThumbnail(card, image);
}

/** Shifts the "(N images)" count by `delta`. */
function count(delta) {
  const total = document.getElementById('gallery-total');
  if (!total) return;
  const n = Math.max(0, Number(total.dataset.total || 0) + delta);
  total.dataset.total = String(n);
  total.textContent = `(${n} image${n === 1 ? '' : 's'})`;
}

/** Whether an image the page does not show belongs at the top of this page. */
function isArrival(image) {
  const wanted = grid.dataset;
  if (wanted.firstPage !== 'true') return false;
  if (wanted.filterCollection && image.collection !== wanted.filterCollection) return false;
  if (wanted.filterStatus && image.status !== wanted.filterStatus) return false;
  // On connecting, the stream replays recent changes: older images are not new.
  const newest = Date.parse(wanted.newest || '');
  return Number.isNaN(newest) || Date.parse(image.uploadedAt) >= newest;
}

function cardOf(id) {
  return grid.querySelector(`[data-image-id="${CSS.escape(id)}"]`);
}

function onImage(image) {
  let card = cardOf(image.id);
  if (!card) {
    if (!isArrival(image)) return;
    card = newCard(image);
    grid.prepend(card);
    grid.hidden = false;
    document.getElementById('gallery-empty')?.remove();
    count(1);
  }
  show(card, image);
}

function onDeleted(id) {
  const card = cardOf(id);
  if (!card) return;
  card.remove();
  count(-1);
}

/** Parses an event's JSON; a malformed event is ignored. */
function data(event) {
  try {
    return JSON.parse(event.data);
  } catch (_) {
    return null;
  }
}

if (grid && typeof EventSource !== 'undefined') {
  const source = new EventSource('/api/events');
  source.addEventListener('image', (e) => {
    const image = data(e);
    if (image && image.id) onImage(image);
  });
  source.addEventListener('image-deleted', (e) => {
    const deleted = data(e);
    if (deleted && deleted.id) onDeleted(deleted.id);
  });
  // Leaving the page closes the stream at once, rather than as an error.
  window.addEventListener('pagehide', () => source.close());
}
