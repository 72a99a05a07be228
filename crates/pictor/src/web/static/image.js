// The image page: edit title and collection, delete with confirmation.
import { updateImage, deleteImage } from './pictor-client.js';

const root = document.getElementById('image-page');
const id = root.dataset.imageId;
const form = document.getElementById('edit-form');
const message = document.getElementById('edit-message');

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const title = form.elements.title.value.trim();
  const collection = form.elements.collection.value.trim();
  if (!title) {
    message.textContent = 'The title must not be empty.';
    form.elements.title.focus();
    return;
  }
  message.textContent = 'Saving…';
  const { data, error } = await updateImage(id, { title, collection: collection || null });
  if (error) {
    message.textContent = `Not saved: ${error.message}`;
    return;
  }
  document.getElementById('image-title').textContent = data.title;
  document.title = `${data.title} · Pictor`;
  message.textContent = 'Saved.';
});

const dialog = document.getElementById('delete-dialog');
document.getElementById('delete-button').addEventListener('click', () => dialog.showModal());
document.getElementById('delete-cancel').addEventListener('click', () => dialog.close());
document.getElementById('delete-confirm').addEventListener('click', async () => {
  const { error } = await deleteImage(id);
  if (error) {
    dialog.close();
    message.textContent = `Not deleted: ${error.message}`;
    return;
  }
  window.location.assign('/');
});
