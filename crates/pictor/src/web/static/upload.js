// The upload page: choose or drop several files, upload them at once with a
// byte progress bar each, then follow each image's stages live.
import { uploadImage } from './pictor-client.js';

const form = document.getElementById('upload-form');
const input = document.getElementById('file');
const drop = document.getElementById('drop-zone');
const list = document.getElementById('uploads');
const chosen = document.getElementById('chosen');
let pending = [];

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function showChosen() {
  chosen.textContent = pending.length === 0 ? 'No files chosen.' : `${pending.length} file(s) chosen: ${pending.map((f) => f.name).join(', ')}`;
}

input.addEventListener('change', () => {
  pending = Array.from(input.files || []);
  showChosen();
});

for (const name of ['dragenter', 'dragover']) {
  drop.addEventListener(name, (e) => {
    e.preventDefault();
    drop.classList.add('dragging');
  });
}
for (const name of ['dragleave', 'drop']) {
  drop.addEventListener(name, () => drop.classList.remove('dragging'));
}
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  pending = Array.from(e.dataTransfer.files || []);
  showChosen();
});

function startOne(file, fields) {
  const item = document.createElement('li');
  item.className = 'upload-item';
  const name = document.createElement('p');
  name.className = 'upload-name';
  name.textContent = `${file.name} (${formatBytes(file.size)})`;
  const bar = document.createElement('progress');
  bar.max = file.size || 1;
  bar.value = 0;
  bar.setAttribute('aria-label', `Upload of ${file.name}`);
  const state = document.createElement('p');
  state.className = 'upload-state';
  state.setAttribute('role', 'status');
  state.textContent = 'Uploading…';
  item.append(name, bar, state);
  list.append(item);

  const run = async () => {
    item.classList.remove('failed');
    state.textContent = 'Uploading…';
    const { data, error } = await uploadImage(file, {
      ...fields,
      onProgress: (loaded, total) => {
        bar.max = total || file.size || 1;
        bar.value = loaded;
        state.textContent = `Uploading… ${formatBytes(loaded)} of ${formatBytes(total || file.size)}`;
      },
    });
    if (error) {
      item.classList.add('failed');
      state.textContent = error.message;
      const again = document.createElement('button');
      again.type = 'button';
      again.textContent = 'Try again';
      again.addEventListener('click', () => {
        again.remove();
        run();
      });
      state.append(' ', again);
      return;
    }
    bar.value = bar.max;
    state.textContent = 'Uploaded';
    const progress = document.createElement('pictor-upload-progress');
    progress.setAttribute('image-id', data.imageId);
    progress.setAttribute('status', data.status);
    progress.addEventListener('complete', (e) => {
      item.classList.add('stored');
      const link = document.createElement('a');
      link.href = `/images/${encodeURIComponent(e.detail.id)}`;
      link.textContent = `Open “${e.detail.title}”`;
      state.textContent = '';
      state.append(link);
    });
    progress.addEventListener('error', (e) => {
      item.classList.add('failed');
      state.textContent = 'Pictor could not process this image (the reason is above); its failed jobs can be retried from ';
      const admin = document.createElement('a');
      admin.href = `/admin/jobs?status=FAILED`;
      admin.textContent = 'the admin page';
      state.append(admin, '.');
    });
    item.insertBefore(progress, state);
  };
  run();
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  if (pending.length === 0) {
    chosen.textContent = 'Choose or drop at least one image first.';
    input.focus();
    return;
  }
  const fields = {
    title: form.elements.title.value.trim(),
    collection: form.elements.collection.value.trim(),
  };
  for (const file of pending) startOne(file, fields);
  pending = [];
  form.reset();
  showChosen();
});
