// The admin pages: Retry, Cancel and "retry all failed", and live job states.
import { retryJob, cancelJob, retryAllFailed } from './pictor-client.js';

const message = document.getElementById('admin-message');

function say(text) {
  if (message) message.textContent = text;
}

function showJob(job) {
  for (const el of document.querySelectorAll(`[data-job-id="${job.id}"] [data-field="status"]`)) {
    el.textContent = job.status;
    el.className = `badge job-${job.status.toLowerCase()}`;
  }
  for (const el of document.querySelectorAll(`[data-job-id="${job.id}"] [data-field="attempts"]`)) {
    el.textContent = `${job.attempts} of ${job.maxAttempts}`;
  }
  for (const el of document.querySelectorAll(`[data-job-id="${job.id}"]`)) el.dataset.status = job.status;
}

for (const button of document.querySelectorAll('button[data-action]')) {
  button.addEventListener('click', async () => {
    const id = button.dataset.jobId;
    button.disabled = true;
    try {
      if (button.dataset.action === 'retry') {
        const job = await retryJob(id);
        showJob(job);
        say(`Job ${id} retried: it is ${job.status} now.`);
      } else if (button.dataset.action === 'cancel') {
        const job = await cancelJob(id);
        showJob(job);
        say(`Job ${id} cancelled.`);
      } else if (button.dataset.action === 'retry-all') {
        const { retried } = await retryAllFailed();
        say(`${retried} failed job(s) retried.`);
      }
    } catch (e) {
      say(e.message);
    } finally {
      button.disabled = false;
    }
  });
}

if (typeof EventSource !== 'undefined') {
  const source = new EventSource('/api/events');
  source.addEventListener('job', (e) => {
    try {
      showJob(JSON.parse(e.data));
    } catch (_) {
      // ignore a malformed event
    }
  });
}
