// The gallery: badges and thumbnails follow image changes live.
import { getImageStatusLabel, getThumbnailUrl, getThumbnailSrcset } from './pictor-client.js';

if (typeof EventSource !== 'undefined') {
  const source = new EventSource('/api/events');
  source.addEventListener('image', (e) => {
    let image;
    try {
      image = JSON.parse(e.data);
    } catch (_) {
      return;
    }
    const card = document.querySelector(`[data-image-id="${CSS.escape(image.id)}"]`);
    if (!card) return;
    card.dataset.status = image.status;
    const title = card.querySelector('.card-title');
    if (title) title.textContent = image.title;
    const badge = card.querySelector('.badge');
    if (badge) {
      badge.textContent = getImageStatusLabel(image.status);
      badge.className = `badge status-${image.status.toLowerCase()}`;
      badge.hidden = image.status === 'STORED';
    }
    const placeholder = card.querySelector('.placeholder');
    if (image.status === 'STORED' && placeholder) {
      const img = document.createElement('img');
      img.src = getThumbnailUrl(image, 256);
      img.srcset = getThumbnailSrcset(image);
      img.sizes = '(max-width: 600px) 45vw, 220px';
      img.alt = image.title;
      img.loading = 'lazy';
      placeholder.replaceWith(img);
    }
  });
  source.addEventListener('image-deleted', (e) => {
    try {
      const { id } = JSON.parse(e.data);
      document.querySelector(`[data-image-id="${CSS.escape(id)}"]`)?.remove();
    } catch (_) {
      // ignore a malformed event
    }
  });
}
