// Pictor's JavaScript client: the reference card's client utils and actions
// over Pictor's HTTP API, plus the <pictor-upload-progress> element.
// Served at /static/pictor-client.js; an ES module with no dependencies.

/** Base URL of the API; '' means the page's own origin. Change with setApiBase. */
export let API_BASE = '';

/** Sets API_BASE (e.g. 'http://127.0.0.1:3000'); a trailing slash is dropped. */
export function setApiBase(base) {
  API_BASE = String(base || '').replace(/\/+$/, '');
}

/** The processing stages an image goes through, in order. */
export const STAGES = ['UPLOADED', 'INGESTED', 'PROCESSING', 'STORED'];

const STATUS_LABELS = {
  UPLOADED: 'Uploaded',
  INGESTED: 'Ingested',
  PROCESSING: 'Processing',
  STORED: 'Stored',
  FAILED: 'Failed',
};

/** A person-readable label for an image status ('STORED' → 'Stored'). */
export function getImageStatusLabel(status) {
  return STATUS_LABELS[status] || (status ? String(status) : 'Unknown');
}

/** True once the image's original and every asset exist. */
export function isImageReady(image) {
  return Boolean(image) && (image.isStored === true || image.status === 'STORED');
}

/** An absolute URL for an asset path such as '/assets/<id>/preview.jpg' (null stays null). */
export function getAssetUrl(path) {
  if (!path) return null;
  if (/^https?:\/\//.test(path)) return path;
  return `${API_BASE}${path.startsWith('/') ? '' : '/'}${path}`;
}

/**
 * The URL of an image's thumbnail: the smallest one at least `size` px
 * (default 256), else the largest there is; null before thumbnails exist.
 */
export function getThumbnailUrl(image, size = 256) {
  if (!image) return null;
  const sizes = Object.keys(image.thumbnails || {}).map(Number).filter(Number.isFinite).sort((a, b) => a - b);
  if (sizes.length === 0) return getAssetUrl(image.thumbnailPath || null);
  const pick = sizes.find((s) => s >= size) ?? sizes[sizes.length - 1];
  return getAssetUrl(image.thumbnails[String(pick)]);
}

/** A `srcset` value listing every thumbnail by width ('' before they exist). */
export function getThumbnailSrcset(image) {
  const thumbs = (image && image.thumbnails) || {};
  return Object.keys(thumbs)
    .map(Number)
    .sort((a, b) => a - b)
    .map((s) => `${getAssetUrl(thumbs[String(s)])} ${s}w`)
    .join(', ');
}

/** The URL of an image's web preview, or null before it exists. */
export function getPreviewUrl(image) {
  return image ? getAssetUrl(image.previewPath || null) : null;
}

/** Index of a status in STAGES (FAILED and unknown give -1). */
export function stageIndex(status) {
  return STAGES.indexOf(status);
}

/** Fraction (0–1) of the processing stages an image has passed. */
export function stageProgress(status) {
  const i = stageIndex(status);
  return i < 0 ? 0 : (i + 1) / STAGES.length;
}

const ERROR_WORDS = {
  file_too_large: 'This file is too large for Pictor.',
  unsupported_format: 'This file is not an image Pictor can read (JPEG, PNG, WebP, AVIF, GIF, TIFF…).',
  empty_file: 'This file is empty.',
  too_many_pixels: 'This image has too many pixels for Pictor.',
  corrupt_image: 'This image is damaged and cannot be read.',
  missing_file: 'No file was sent.',
  malformed_upload: 'The upload was cut off or malformed; try again.',
  field_too_long: 'The title or collection is too long.',
  foreign_origin: 'Pictor refused a change coming from another site.',
  unauthorized: 'This needs the admin token: log in at /admin/login.',
  not_found: 'It no longer exists.',
  wrong_state: 'The job is not in a state that allows this.',
  network: 'The connection to Pictor failed; check that it is running and try again.',
};

/**
 * Plain words for an API error: `code` is the API's error code (or
 * 'network'), `message` the server's own text, used when the code is unknown.
 */
export function describeError(code, message) {
  return ERROR_WORDS[code] || message || 'Something went wrong.';
}

/** An API error: `status` (HTTP, 0 for network), `code`, and plain-words `message`. */
export class PictorError extends Error {
  constructor(status, code, serverMessage) {
    super(describeError(code, serverMessage));
    this.name = 'PictorError';
    this.status = status;
    this.code = code;
    this.serverMessage = serverMessage || '';
  }
}

/** Builds '?a=1&b=2' from an object, leaving out null, undefined and '' values. */
export function queryString(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') q.set(key, String(value));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Turns a failed answer's status and body text into a PictorError. */
export function errorFromResponse(status, bodyText) {
  try {
    const body = JSON.parse(bodyText);
    if (body && body.error) return new PictorError(status, body.error.code, body.error.message);
  } catch (_) {
    // not JSON: fall through
  }
  return new PictorError(status, `http_${status}`, bodyText || `HTTP ${status}`);
}

async function request(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`${API_BASE}${path}`, init);
  } catch (e) {
    throw new PictorError(0, 'network', String(e));
  }
  if (response.status === 204) return null;
  const text = await response.text();
  if (!response.ok) throw errorFromResponse(response.status, text);
  return text ? JSON.parse(text) : null;
}

/** `GET /api/images` with `{collection, status, limit, offset, cursor}` → `{data, collections, count, pagination}`; `cursor` is a page's `pagination.nextCursor`. */
export function getImages(filters = {}) {
  return request('GET', `/api/images${queryString(filters)}`);
}

/** `GET /api/images/:id` → an Image. */
export function getImage(id) {
  return request('GET', `/api/images/${encodeURIComponent(id)}`);
}

/** `GET /api/admin/jobs` with `{status, type, imageId, limit, offset, cursor}` → `{jobs, pagination}`; `cursor` is a page's `pagination.nextCursor`. */
export function getJobs(filters = {}) {
  return request('GET', `/api/admin/jobs${queryString(filters)}`);
}

/** `GET /api/admin/jobs/:id` → a job with payload, retryInfo and image. */
export function getJob(id) {
  return request('GET', `/api/admin/jobs/${encodeURIComponent(id)}`);
}

/** Re-queues a FAILED or CANCELLED job → the job. */
export function retryJob(id) {
  return request('POST', `/api/admin/jobs/${encodeURIComponent(id)}/retry`);
}

/** Cancels a PENDING or FAILED job → the job. */
export function cancelJob(id) {
  return request('POST', `/api/admin/jobs/${encodeURIComponent(id)}/cancel`);
}

/** Re-queues every FAILED job → `{retried}`. */
export function retryAllFailed() {
  return request('POST', '/api/admin/jobs/retry-failed');
}

async function settle(promise) {
  try {
    return { data: await promise, error: null };
  } catch (error) {
    return { data: null, error };
  }
}

/** The card's action: `{data: Image[], error}` (never throws). */
export async function fetchImages(filters = {}) {
  const { data, error } = await settle(getImages(filters));
  return { data: data ? data.data : null, error };
}

/** Edits `{title, collection}` (collection null clears it) → `{data: Image, error}`. */
export function updateImage(id, changes) {
  return settle(request('PATCH', `/api/images/${encodeURIComponent(id)}`, changes));
}

/** Deletes an image and its assets → `{data: null, error}`. */
export function deleteImage(id) {
  return settle(request('DELETE', `/api/images/${encodeURIComponent(id)}`));
}

/**
 * Uploads a File or Blob with optional `title` and `collection`;
 * `onProgress(loaded, total)` follows the bytes sent. Resolves
 * `{data: {imageId, status, checksum, sizeBytes, uploadedAt}, error}`; never throws.
 * A FormData may be given instead of a file, as in the card.
 */
export function uploadImage(file, { title, collection, onProgress, signal } = {}) {
  let form = file;
  if (typeof FormData !== 'undefined' && !(file instanceof FormData)) {
    form = new FormData();
    form.append('file', file, file && file.name ? file.name : 'upload');
    if (title) form.append('title', title);
    if (collection) form.append('collection', collection);
  }
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${API_BASE}/api/upload`);
    xhr.setRequestHeader('Accept', 'application/json');
    if (onProgress) {
      xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.lengthComputable ? e.total : 0));
    }
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve({ data: JSON.parse(xhr.responseText), error: null });
        } catch (e) {
          resolve({ data: null, error: new PictorError(xhr.status, 'bad_answer', String(e)) });
        }
      } else {
        resolve({ data: null, error: errorFromResponse(xhr.status, xhr.responseText) });
      }
    });
    xhr.addEventListener('error', () => resolve({ data: null, error: new PictorError(0, 'network', '') }));
    xhr.addEventListener('abort', () => resolve({ data: null, error: new PictorError(0, 'aborted', 'Upload cancelled.') }));
    if (signal) signal.addEventListener('abort', () => xhr.abort());
    xhr.send(form);
  });
}

/**
 * Polls an image every `intervalMs` (default 1000), calling `onUpdate(image)`
 * on each answer. Resolves with the image once STORED; rejects with an Error
 * once FAILED (its `image` property holds the image), or after `timeoutMs`.
 */
export function pollImageStatus(imageId, onUpdate, { intervalMs = 1000, timeoutMs = 600000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = async () => {
      let image;
      try {
        image = await getImage(imageId);
      } catch (e) {
        if (e.code === 'network' && Date.now() < deadline) {
          setTimeout(tick, intervalMs);
          return;
        }
        reject(e);
        return;
      }
      if (onUpdate) onUpdate(image);
      if (image.status === 'STORED') return resolve(image);
      if (image.status === 'FAILED') {
        const err = new Error(image.error || 'Processing failed.');
        err.image = image;
        return reject(err);
      }
      if (Date.now() >= deadline) return reject(new Error(`image ${imageId} still ${image.status}`));
      setTimeout(tick, intervalMs);
    };
    tick();
  });
}

let sharedSource = null;
const imageListeners = new Map();

/**
 * Calls `listener(image)` on every `image` event of `GET /api/events` for
 * `imageId` (one EventSource per page). Returns an unsubscribe function,
 * or null where EventSource is missing (use pollImageStatus then).
 */
export function watchImage(imageId, listener) {
  if (typeof EventSource === 'undefined') return null;
  if (!sharedSource) {
    sharedSource = new EventSource(`${API_BASE}/api/events`);
    sharedSource.addEventListener('image', (e) => {
      let image;
      try {
        image = JSON.parse(e.data);
      } catch (_) {
        return;
      }
      for (const fn of imageListeners.get(image.id) || []) fn(image);
    });
  }
  if (!imageListeners.has(imageId)) imageListeners.set(imageId, new Set());
  imageListeners.get(imageId).add(listener);
  return () => {
    const set = imageListeners.get(imageId);
    if (set) set.delete(listener);
  };
}

/** The shared EventSource of watchImage (null before the first watch). */
export function eventSource() {
  return sharedSource;
}

function defineUploadProgress() {
  if (typeof customElements === 'undefined' || customElements.get('pictor-upload-progress')) return;

  /**
   * <pictor-upload-progress image-id="…">: the card's ImageUploadProgress.
   * Shows the stages live (events, with polling as fallback); fires
   * `complete` (detail: image) at STORED and `error` (detail: {message, image}) at FAILED.
   */
  class PictorUploadProgress extends HTMLElement {
    connectedCallback() {
      if (this._started) return;
      this._started = true;
      this.classList.add('pictor-upload-progress');
      this.innerHTML = '';
      this._list = document.createElement('ol');
      this._list.className = 'stages';
      for (const stage of STAGES) {
        const li = document.createElement('li');
        li.dataset.stage = stage;
        li.textContent = getImageStatusLabel(stage);
        this._list.append(li);
      }
      this._status = document.createElement('p');
      this._status.className = 'stage-status';
      this._status.setAttribute('role', 'status');
      this.append(this._list, this._status);
      this._show({ status: this.getAttribute('status') || 'INGESTED' });
      this._start();
    }

    disconnectedCallback() {
      if (this._unwatch) this._unwatch();
      this._done = true;
    }

    _start() {
      const id = this.getAttribute('image-id');
      if (!id) return;
      this._unwatch = watchImage(id, (image) => this._show(image));
      // Also fetch once: the image may have moved on before the stream connected;
      // without EventSource, or if the stream fails, poll instead.
      const poll = () =>
        pollImageStatus(id, (image) => this._show(image), { intervalMs: this._unwatch ? 3000 : 1000 }).catch((e) => {
          if (!this._done) this._show(e.image || { status: 'FAILED', error: e.message });
        });
      poll();
    }

    _show(image) {
      if (this._done && image.status !== 'STORED' && image.status !== 'FAILED') return;
      const current = stageIndex(image.status);
      for (const li of this._list.children) {
        const i = stageIndex(li.dataset.stage);
        li.classList.toggle('done', current >= 0 && i <= current);
        li.classList.toggle('current', i === current);
        if (i === current) li.setAttribute('aria-current', 'step');
        else li.removeAttribute('aria-current');
      }
      this.dataset.status = image.status;
      this._status.textContent =
        image.status === 'FAILED' ? `Failed: ${image.error || 'processing failed'}` : getImageStatusLabel(image.status);
      if (this._finished) return;
      if (image.status === 'STORED') {
        this._finished = true;
        this._done = true;
        if (this._unwatch) this._unwatch();
        this.dispatchEvent(new CustomEvent('complete', { detail: image, bubbles: true }));
      } else if (image.status === 'FAILED') {
        this._finished = true;
        this._done = true;
        if (this._unwatch) this._unwatch();
        const message = image.error || 'Processing failed.';
        this.dispatchEvent(new CustomEvent('error', { detail: { message, image }, bubbles: true }));
      }
    }
  }
  customElements.define('pictor-upload-progress', PictorUploadProgress);
}

defineUploadProgress();
