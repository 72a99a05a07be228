// The admin pages: Retry, Cancel and "retry all failed", and live job
// states. After an action, and as job events arrive, a job's badge, attempts
// and buttons follow its state (each button says in `data-shown-when` which
// states it belongs to); the job page reads the whole job again for its
// details (retry info, lock, times).
import { retryJob, cancelJob, retryAllFailed, getJob } from './pictor-client.js';

const message = document.getElementById('admin-message');
/** The job page's job (absent on the list). */
const jobPage = document.getElementById('job');

function say(text) {
  if (message) message.textContent = text;
}

function fields(id, name) {
  return document.querySelectorAll(`[data-job-id="${CSS.escape(String(id))}"] [data-field="${name}"]`);
}

function fill(id, name, text) {
  for (const el of fields(id, name)) el.textContent = text;
}

/** Badge, attempts and buttons of a job (a list row, or the job page). */
function showJob(job) {
  for (const el of fields(job.id, 'status')) {
    el.textContent = job.status;
    el.className = `badge job-${job.status.toLowerCase()}`;
  }
  fill(job.id, 'attempts', `${job.attempts} of ${job.maxAttempts}`);
  for (const el of document.querySelectorAll(`[data-job-id="${CSS.escape(String(job.id))}"]`)) {
    el.dataset.status = job.status;
    if (el.matches('button[data-shown-when]')) el.hidden = !el.dataset.shownWhen.split(' ').includes(job.status);
  }
}

/** Everything the job page shows of `detail` (`GET /api/admin/jobs/{id}`). */
function showDetail(detail) {
  showJob(detail);
  const info = detail.retryInfo || {};
  let locked = 'no';
  if (detail.locked) {
    locked = 'yes';
    if (detail.lockedBy) locked += `, by ${detail.lockedBy}`;
    if (detail.lockedUntil) locked += ` until ${detail.lockedUntil}`;
  }
  fill(detail.id, 'locked', locked);
  fill(detail.id, 'updated', detail.updatedAt);
  fill(detail.id, 'finished', detail.finishedAt || '—');
  fill(detail.id, 'attempt', `${info.attempt} of ${info.maxAttempts}`);
  fill(detail.id, 'next-run', info.nextRunAt || '—');
  fill(detail.id, 'last-error', info.lastError || '—');
}

/** On the job page, reads the job again and shows it; elsewhere shows `job` as it is. */
async function refresh(job) {
  showJob(job);
  if (!jobPage || String(job.id) !== jobPage.dataset.jobId) return;
  try {
    showDetail(await getJob(job.id));
  } catch (e) {
    say(e.message);
  }
}

for (const button of document.querySelectorAll('button[data-action]')) {
  button.addEventListener('click', async () => {
    const id = button.dataset.jobId;
    button.disabled = true;
    try {
      if (button.dataset.action === 'retry') {
        const job = await retryJob(id);
        await refresh(job);
        say(`Job ${id} retried: it is ${job.status} now.`);
      } else if (button.dataset.action === 'cancel') {
        const job = await cancelJob(id);
        await refresh(job);
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
    let job;
    try {
      job = JSON.parse(e.data);
    } catch (_) {
      return; // a malformed event
    }
    refresh(job);
  });
  // Leaving the page closes the stream at once, rather than as an error.
  window.addEventListener('pagehide', () => source.close());
}
